//! Strategic merge patch (`application/strategic-merge-patch+json`), as `kubectl patch` and
//! kubectl's client-side apply send it.
//!
//! ```text
//!   original ──┐
//!              ├─ merge_map ──► maps merge recursively, `null` deletes a key
//!   patch ─────┘      │        keyed lists merge element-wise by merge key
//!                     │        other lists are replaced whole
//!                     └─► directives: $patch, $retainKeys, $setElementOrder/<f>,
//!                          $deleteFromPrimitiveList/<f> (never left in the result)
//! ```
//!
//! Where it knowingly differs from kube-apiserver:
//! - Merge keys come from [`list_shape`](super::resources::list_shape) (a fixed table for the kinds the sandbox serves),
//!   not from Go struct tags. kube-apiserver refuses strategic patches on custom resources
//!   (415); that is the server's decision, not this module's.
//! - As in kube, `$patch: merge` is refused (in maps: "unknown patch type"; in lists:
//!   "merging lists cannot yet be specified"). `$patch: delete` on a map removes the field,
//!   where kube leaves an empty map that Go's encoder then omits: the stored result is the same.
//! - Primitive lists with the `merge` strategy are only `metadata.finalizers`.

use serde_json::{Map, Value};

use super::resources::patch_merge_key;

/// Why a strategic merge patch could not be applied (answered as 422/400 by the server).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Lists of primitives that merge as sets (`patchStrategy:"merge"` on a `[]string`).
fn is_primitive_merge_list(field: &str, parent_path: &[&str]) -> bool {
    field == "finalizers" && parent_path == ["metadata"]
}

/// Applies `patch` to `original` with strategic-merge semantics and returns the result.
pub fn strategic_merge(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let patch = match patch {
        Value::Object(p) => p,
        // Go decodes `null` into an empty patch.
        Value::Null => return Ok(original.clone()),
        other => {
            return Err(PatchError(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                type_name(other)
            )));
        }
    };
    let empty = Map::new();
    let original = match original {
        Value::Object(m) => m,
        _ => &empty,
    };
    match merge_map(original, patch, &mut Vec::new())? {
        Some(m) => Ok(Value::Object(m)),
        // `$patch: delete` at the root empties the object.
        None => Ok(Value::Object(Map::new())),
    }
}

/// The JSON type names Go's `UnmarshalTypeError` uses.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `%v` rendering of a map, which kube's patch errors quote (`map[image:nginx]`).
fn go_format(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        Value::Array(a) => {
            let inner: Vec<String> = a.iter().map(go_format).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_string(),
        other => other.to_string(),
    }
}

/// Merges `patch` into `original`; `None` when the patch deletes the whole map.
fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get(PATCH) {
        None => {}
        Some(Value::String(s)) if s == "delete" => return Ok(None),
        Some(Value::String(s)) if s == "replace" => {
            let mut out = Map::new();
            for (k, v) in patch {
                if k != PATCH {
                    out.insert(k.clone(), strip_directives(v));
                }
            }
            return Ok(Some(out));
        }
        Some(other) => {
            return Err(PatchError(format!(
                "unknown patch type: {} in map: {}",
                go_format(other),
                go_format(&Value::Object(patch.clone()))
            )));
        }
    }

    let mut out = original.clone();
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let bad = || PatchError("invalid patch format of retainKeys".to_string());
        let Value::Array(keys) = retain else {
            return Err(bad());
        };
        let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        // Every field the patch sets must be retained (deleting ones need not be).
        let unlisted = patch
            .iter()
            .any(|(k, v)| !k.starts_with('$') && !v.is_null() && !keep.contains(&k.as_str()));
        if unlisted {
            return Err(bad());
        }
        out.retain(|k, _| keep.contains(&k.as_str()));
    }

    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let Value::Array(remove) = value else {
                return Err(PatchError(format!(
                    "{key} must be a list of values, got {}",
                    go_format(value)
                )));
            };
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                out.remove(key);
            }
            Value::Object(pm) => {
                let empty = Map::new();
                let om = match original.get(key) {
                    Some(Value::Object(om)) => om,
                    _ => &empty,
                };
                path.push(key.clone());
                let merged = merge_map(om, pm, path);
                path.pop();
                match merged? {
                    Some(m) => {
                        out.insert(key.clone(), Value::Object(m));
                    }
                    None => {
                        out.remove(key);
                    }
                }
            }
            Value::Array(pl) => {
                let parent: Vec<&str> = path.iter().map(String::as_str).collect();
                let merged = if let Some(merge_key) = patch_merge_key(key, &parent) {
                    let ol = match original.get(key) {
                        Some(Value::Array(ol)) => ol.as_slice(),
                        _ => &[],
                    };
                    path.push(key.clone());
                    let merged = merge_keyed_list(ol, pl, merge_key, path);
                    path.pop();
                    merged?
                } else if is_primitive_merge_list(key, &parent) {
                    merge_primitive_list(original.get(key), pl)
                } else {
                    replace_list(pl)
                };
                out.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                out.insert(key.clone(), scalar.clone());
            }
        }
    }

    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(PatchError(format!(
                "{key} must be a list, got {}",
                go_format(order)
            )));
        };
        let parent: Vec<&str> = path.iter().map(String::as_str).collect();
        let merge_key = patch_merge_key(field, &parent);
        let server_order = match original.get(field) {
            Some(Value::Array(a)) => a.as_slice(),
            _ => &[],
        };
        if let Some(Value::Array(list)) = out.get_mut(field) {
            reorder(list, order, server_order, merge_key)?;
        }
    }
    Ok(Some(out))
}

/// An atomic list: the patch's elements, minus any `{"$patch": "replace"}` marker.
fn replace_list(patch: &[Value]) -> Vec<Value> {
    patch
        .iter()
        .filter(|v| !is_patch_marker(v, "replace"))
        .map(strip_directives)
        .collect()
}

fn is_patch_marker(v: &Value, kind: &str) -> bool {
    v.as_object()
        .and_then(|m| m.get(PATCH))
        .and_then(Value::as_str)
        == Some(kind)
}

fn merge_primitive_list(original: Option<&Value>, patch: &[Value]) -> Vec<Value> {
    if patch.iter().any(|v| is_patch_marker(v, "replace")) {
        return replace_list(patch);
    }
    let mut out = match original {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    for v in patch {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

fn merge_keyed_list(
    original: &[Value],
    patch: &[Value],
    merge_key: &str,
    path: &mut Vec<String>,
) -> Result<Vec<Value>, PatchError> {
    if patch.iter().any(|v| is_patch_marker(v, "replace")) {
        return Ok(replace_list(patch));
    }
    let mut out: Vec<Value> = original.to_vec();
    for element in patch {
        let Value::Object(pm) = element else {
            // A primitive in a keyed list has nothing to merge on: append it if new.
            if !out.contains(element) {
                out.push(element.clone());
            }
            continue;
        };
        match pm.get(PATCH) {
            None => {}
            Some(d) if d == "delete" => {}
            Some(d) if d == "merge" => {
                return Err(PatchError(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ));
            }
            Some(other) => {
                return Err(PatchError(format!(
                    "unknown patch type: {} in map: {}",
                    go_format(other),
                    go_format(element)
                )));
            }
        }
        let Some(key_value) = pm.get(merge_key) else {
            return Err(PatchError(format!(
                "map: {} does not contain declared merge key: {merge_key}",
                go_format(element)
            )));
        };
        if is_patch_marker(element, "delete") {
            out.retain(|o| o.get(merge_key) != Some(key_value));
            continue;
        }
        let position = out.iter().position(|o| o.get(merge_key) == Some(key_value));
        match position {
            Some(i) => {
                let empty = Map::new();
                let om = out[i].as_object().unwrap_or(&empty).clone();
                match merge_map(&om, pm, path)? {
                    Some(m) => out[i] = Value::Object(m),
                    None => {
                        out.remove(i);
                    }
                }
            }
            None => {
                if let Some(m) = merge_map(&Map::new(), pm, path)? {
                    out.push(Value::Object(m));
                }
            }
        }
    }
    Ok(out)
}

/// Applies `$setElementOrder` as kube's `normalizeElementOrder` does: the listed elements
/// in the listed order, the server-only elements in their original order, the two merged so
/// that an element keeps its original place relative to server-only ones where both had one.
fn reorder(
    list: &mut Vec<Value>,
    order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), PatchError> {
    let identity = |v: &Value| -> Option<Value> {
        match merge_key {
            Some(k) => v.get(k).cloned(),
            None => Some(v.clone()),
        }
    };
    let mut wanted = Vec::with_capacity(order.len());
    for o in order {
        match identity(o) {
            Some(id) => wanted.push(id),
            None => {
                return Err(PatchError(format!(
                    "map: {} does not contain declared merge key: {}",
                    go_format(o),
                    merge_key.unwrap_or_default()
                )));
            }
        }
    }
    let rank =
        |v: &Value, ids: &[Value]| identity(v).and_then(|id| ids.iter().position(|x| *x == id));
    let (mut listed, mut server_only): (Vec<Value>, Vec<Value>) = std::mem::take(list)
        .into_iter()
        .partition(|v| rank(v, &wanted).is_some());
    listed.sort_by_key(|v| rank(v, &wanted));
    let server_ids: Vec<Value> = server_order.iter().filter_map(identity).collect();
    server_only.sort_by_key(|v| rank(v, &server_ids));

    let (mut left, mut right) = (
        listed.into_iter().peekable(),
        server_only.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                matches!((rank(l, &server_ids), rank(r, &server_ids)), (Some(a), Some(b)) if a < b)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        list.extend(next);
    }
    Ok(())
}

/// Removes every `$`-directive from a value that is inserted as a whole.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|v| !is_patch_marker(v, "replace"))
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "podinfo", "labels": {"app": "podinfo"}, "finalizers": ["a"]},
            "spec": {
                "replicas": 2,
                "template": {"spec": {
                    "containers": [
                        {"name": "podinfod", "image": "podinfo:6.0.0", "imagePullPolicy": "IfNotPresent",
                         "args": ["--a"], "ports": [{"containerPort": 9898, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "sidecar", "image": "proxy:1"}
                    ]
                }}
            }
        })
    }

    #[test]
    fn merges_containers_by_name_changing_only_the_image() {
        // The body of fixture case `patch-strategic-merge-containers`.
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.1"}
        ]}}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        let containers = out.pointer("/spec/template/spec/containers").unwrap();
        assert_eq!(containers.as_array().unwrap().len(), 2);
        assert_eq!(containers[0]["image"], "ghcr.io/stefanprodan/podinfo:6.0.1");
        assert_eq!(containers[0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(containers[0]["args"], json!(["--a"]));
        assert_eq!(containers[1]["name"], "sidecar");
    }

    #[test]
    fn null_deletes_a_key_and_maps_merge_recursively() {
        let patch =
            json!({"metadata": {"labels": {"app": null, "tier": "web"}}, "spec": {"replicas": 3}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"tier": "web"}));
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["metadata"]["name"], "podinfo");
    }

    #[test]
    fn appends_new_keyed_elements_after_the_original_ones() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "new", "image": "x:1"}, {"name": "podinfod", "image": "podinfo:7"}
        ]}}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["podinfod", "sidecar", "new"]);
    }

    #[test]
    fn replaces_lists_without_a_merge_key_atomically() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "podinfod", "args": ["--b"]}
        ]}}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["--b"])
        );
    }

    #[test]
    fn merges_env_by_name_and_container_ports_by_container_port() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "podinfod",
             "env": [{"name": "B", "value": "3"}],
             "ports": [{"containerPort": 9898, "name": "http"}, {"containerPort": 9999}]}
        ]}}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}])
        );
        assert_eq!(
            c["ports"],
            json!([{"containerPort": 9898, "protocol": "TCP", "name": "http"}, {"containerPort": 9999}])
        );
    }

    #[test]
    fn merges_service_ports_by_port() {
        let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
        let out = strategic_merge(&svc, &patch).unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
        );
    }

    #[test]
    fn deletes_a_keyed_element_with_the_delete_directive() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "$patch": "delete"}
        ]}}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        let containers = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0]["name"], "podinfod");
    }

    #[test]
    fn replaces_a_keyed_list_with_the_replace_directive() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"}, {"name": "only", "image": "x:1"}
        ]}}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "x:1"}])
        );
    }

    #[test]
    fn replaces_a_map_with_the_replace_directive() {
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "only": "this"}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"only": "this"}));
    }

    #[test]
    fn deletes_a_map_with_the_delete_directive() {
        let patch = json!({"metadata": {"labels": {"$patch": "delete"}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert!(out["metadata"].get("labels").is_none());
    }

    #[test]
    fn retain_keys_drops_the_fields_not_listed() {
        let orig = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = strategic_merge(&orig, &patch).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn set_element_order_reorders_the_merged_list() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "podinfod"}],
            "containers": [{"name": "sidecar", "image": "proxy:2"}]
        }}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        let containers = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers[0]["name"], "sidecar");
        assert_eq!(containers[0]["image"], "proxy:2");
        assert_eq!(containers[1]["name"], "podinfod");
        assert!(out.to_string().find("$setElementOrder").is_none());
    }

    #[test]
    fn set_element_order_keeps_server_only_elements_at_their_original_place() {
        let names = |out: &Value| -> Vec<String> {
            out["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        };
        let orig =
            json!({"spec": {"containers": [{"name": "a"}, {"name": "server"}, {"name": "b"}]}});
        let patch =
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            names(&strategic_merge(&orig, &patch).unwrap()),
            ["a", "server", "b"]
        );
        // kube's mergeSortedSlice: a server-only element goes first unless the next listed one
        // stood before it in the original.
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "new"}],
            "containers": [{"name": "new"}]
        }});
        assert_eq!(
            names(&strategic_merge(&orig, &patch).unwrap()),
            ["server", "b", "a", "new"]
        );
    }

    #[test]
    fn refuses_retain_keys_that_leave_out_a_patched_field() {
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}});
        let err = strategic_merge(&json!({}), &patch).unwrap_err();
        assert_eq!(err.0, "invalid patch format of retainKeys");
        let deleting = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}});
        assert!(strategic_merge(&json!({}), &deleting).is_ok());
    }

    #[test]
    fn refuses_a_merge_directive_in_a_map_as_kube_does() {
        let patch = json!({"metadata": {"labels": {"$patch": "merge", "a": "b"}}});
        let err = strategic_merge(&json!({}), &patch).unwrap_err();
        assert_eq!(
            err.0,
            "unknown patch type: merge in map: map[$patch:merge a:b]"
        );
    }

    #[test]
    fn refuses_a_merge_directive_in_a_list() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge", "name": "x"}]}}}});
        let err = strategic_merge(&deployment(), &patch).unwrap_err();
        assert_eq!(err.0, "merging lists cannot yet be specified in the patch");
    }

    #[test]
    fn delete_from_primitive_list_removes_the_values() {
        let orig = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}});
        let out = strategic_merge(&orig, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let patch = json!({"metadata": {"finalizers": ["b", "a"]}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
    }

    #[test]
    fn refuses_a_keyed_element_without_its_merge_key() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}});
        let err = strategic_merge(&deployment(), &patch).unwrap_err();
        assert_eq!(
            err.0,
            "map: map[image:nginx] does not contain declared merge key: name"
        );
    }

    #[test]
    fn refuses_an_unknown_patch_directive() {
        let patch = json!({"metadata": {"labels": {"$patch": "explode"}}});
        let err = strategic_merge(&deployment(), &patch).unwrap_err();
        assert!(
            err.0.starts_with("unknown patch type: explode in map:"),
            "{}",
            err.0
        );
    }

    #[test]
    fn refuses_a_patch_that_is_not_an_object() {
        let err = strategic_merge(&deployment(), &json!([1])).unwrap_err();
        assert_eq!(
            err.0,
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        assert_eq!(
            strategic_merge(&deployment(), &Value::Null).unwrap(),
            deployment()
        );
    }

    #[test]
    fn directives_in_new_maps_never_reach_the_result() {
        let patch = json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"a": "b"}}}});
        let out = strategic_merge(&json!({}), &patch).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}})
        );
    }
}
