//! Structural schemas of the custom resources the sandbox serves (TrafficSplit, HTTPRoute),
//! read from the CRDs in `deploy/crds/` (the same files users install on a real cluster), and
//! of Linkerd's ServiceProfile from a minimal CRD of the sandbox's own (`crds/`), and
//! the three things kube-apiserver does with them: pruning, defaulting and validation.
//!
//! Where it knowingly differs from kube-apiserver:
//! - CEL rules (`x-kubernetes-validations`) and `format` are not checked; `pattern` is
//!   matched with the `regex` crate (RE2 syntax, like Go's); a pattern it cannot compile is
//!   not checked.
//! - `x-kubernetes-list-type` uniqueness (set/map duplicates) is not checked.
//! - `metadata` of embedded resources is not pruned; root `metadata` is left to the generic
//!   ObjectMeta validation.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::{Cause, CauseKind};

const CRD_FILES: [&str; 3] = [
    include_str!("../../../deploy/crds/split.smi-spec.io_trafficsplits.yaml"),
    include_str!("../../../deploy/crds/gateway.networking.k8s.io_httproutes.yaml"),
    // Sandbox only, and minimal: see the file's header.
    include_str!("crds/linkerd.io_serviceprofiles.yaml"),
];

/// One served version of a CRD: its group, version, kind and `openAPIV3Schema`.
struct CrdVersion {
    group: String,
    version: String,
    schema: Value,
}

fn parse_crds() -> Result<Vec<CrdVersion>, String> {
    let mut out = Vec::new();
    for text in CRD_FILES {
        let crd: Value = serde_saphyr::from_str(text)
            .map_err(|e| format!("cannot parse a CRD in deploy/crds: {e}"))?;
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .ok_or("a CRD in deploy/crds has no spec.group")?;
        for v in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(version), Some(schema)) = (
                v.get("name").and_then(Value::as_str),
                v.pointer("/schema/openAPIV3Schema"),
            ) else {
                continue;
            };
            out.push(CrdVersion {
                group: group.to_string(),
                version: version.to_string(),
                schema: schema.clone(),
            });
        }
    }
    Ok(out)
}

fn crds() -> Result<&'static [CrdVersion], String> {
    static CRDS: OnceLock<Result<Vec<CrdVersion>, String>> = OnceLock::new();
    CRDS.get_or_init(parse_crds)
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// The `openAPIV3Schema` of `group/version`, if a bundled CRD serves it; `Err` if the bundled
/// CRDs cannot be read (a build defect, answered as 500).
pub(super) fn schema_for(group: &str, version: &str) -> Result<Option<&'static Value>, String> {
    Ok(crds()?
        .iter()
        .find(|c| c.group == group && c.version == version)
        .map(|c| &c.schema))
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// Removes the fields the schema does not declare (structural pruning). At the root,
/// `apiVersion`, `kind` and `metadata` are always kept.
pub(super) fn prune(schema: &Value, obj: &mut Value) {
    if let Value::Object(m) = obj {
        let props = properties(schema);
        m.retain(|k, _| {
            matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                || props.is_some_and(|p| p.contains_key(k))
                || preserves_unknown(schema)
        });
    }
    prune_node(schema, obj, true);
}

fn prune_node(schema: &Value, value: &mut Value, root: bool) {
    match value {
        Value::Object(m) => {
            if let Some(props) = properties(schema) {
                if !root && !preserves_unknown(schema) {
                    m.retain(|k, _| props.contains_key(k));
                }
                for (k, v) in m.iter_mut() {
                    if root && k == "metadata" {
                        continue;
                    }
                    if let Some(s) = props.get(k) {
                        prune_node(s, v, false);
                    }
                }
            } else if let Some(additional) = schema.get("additionalProperties")
                && additional.is_object()
            {
                for v in m.values_mut() {
                    prune_node(additional, v, false);
                }
            } else if !preserves_unknown(schema) && schema.get("type") == Some(&"object".into()) {
                m.clear();
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for v in items {
                    prune_node(item_schema, v, false);
                }
            }
        }
        _ => {}
    }
}

/// Applies the schema's `default`s to absent fields (and to `null` ones that are not
/// `nullable`), top-down, as kube-apiserver's structural defaulting does.
pub(super) fn default(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(m) => {
            if let Some(props) = properties(schema) {
                for (k, s) in props {
                    let nullable = s.get("nullable") == Some(&Value::Bool(true));
                    if m.get(k).is_some_and(Value::is_null) && !nullable {
                        m.remove(k);
                    }
                    if !m.contains_key(k)
                        && let Some(d) = s.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                }
                for (k, v) in m.iter_mut() {
                    if let Some(s) = props.get(k) {
                        default(s, v);
                    }
                }
            } else if let Some(additional) = schema.get("additionalProperties")
                && additional.is_object()
            {
                for v in m.values_mut() {
                    default(additional, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for v in items {
                    default(item_schema, v);
                }
            }
        }
        _ => {}
    }
}

/// Validates a custom resource against its schema; causes are worded as kube-apiserver's
/// OpenAPI validation words them (`spec.x in body must be of type integer: "string"`).
pub(super) fn validate(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let (Some(props), Value::Object(m)) = (properties(schema), obj) {
        for (k, s) in props {
            if let Some(v) = m.get(k) {
                validate_node(s, v, k, &mut causes);
            }
        }
        required(schema, m, "", &mut causes);
    }
    causes
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, v: &Value) -> bool {
    match (expected, v) {
        ("object", Value::Object(_))
        | ("array", Value::Array(_))
        | ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn required(schema: &Value, m: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !m.contains_key(r) {
            causes.push(Cause::new(CauseKind::Required, child(path, r), None, ""));
        }
    }
}

fn validate_node(schema: &Value, v: &Value, path: &str, causes: &mut Vec<Cause>) {
    if v.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !matches!(json_type(v), "integer" | "string") {
            let t = json_type(v);
            causes.push(Cause::new(
                CauseKind::TypeInvalid,
                path.to_string(),
                Some(Value::String(t.into())),
                format!("{path} in body must be of type integer,string: \"{t}\""),
            ));
        }
        return;
    }
    let wrong_type = schema
        .get("type")
        .and_then(Value::as_str)
        .filter(|expected| !type_matches(expected, v));
    if let Some(expected) = wrong_type {
        let t = json_type(v);
        causes.push(Cause::new(
            CauseKind::TypeInvalid,
            path.to_string(),
            Some(Value::String(t.into())),
            format!("{path} in body must be of type {expected}: \"{t}\""),
        ));
    }
    // kube-apiserver reports an enum mismatch even beside a type error.
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let values: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        causes.push(Cause::new(
            CauseKind::NotSupported,
            path.to_string(),
            Some(v.clone()),
            format!("supported values: {}", values.join(", ")),
        ));
    }
    if wrong_type.is_some() {
        return;
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                causes.push(Cause::new(
                    CauseKind::Invalid,
                    path.to_string(),
                    Some(v.clone()),
                    format!("{path} in body should be greater than or equal to {min}"),
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                causes.push(Cause::new(
                    CauseKind::Invalid,
                    path.to_string(),
                    Some(v.clone()),
                    format!("{path} in body should be less than or equal to {max}"),
                ));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                causes.push(Cause::new(
                    CauseKind::TooLong,
                    path.to_string(),
                    None,
                    format!("may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                causes.push(Cause::new(
                    CauseKind::Invalid,
                    path.to_string(),
                    Some(v.clone()),
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && pattern_matches(p, s) == Some(false)
            {
                causes.push(Cause::new(
                    CauseKind::Invalid,
                    path.to_string(),
                    Some(v.clone()),
                    format!("{path} in body should match '{p}'"),
                ));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                causes.push(Cause::new(
                    CauseKind::TooMany,
                    path.to_string(),
                    Some(Value::from(n)),
                    format!("must have at most {max} items"),
                ));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                causes.push(Cause::new(
                    CauseKind::Invalid,
                    path.to_string(),
                    Some(Value::from(n)),
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_node(item_schema, item, &format!("{path}[{i}]"), causes);
                }
            }
        }
        Value::Object(m) => {
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && m.len() as u64 > max
            {
                causes.push(Cause::new(
                    CauseKind::TooMany,
                    path.to_string(),
                    Some(Value::from(m.len())),
                    format!("must have at most {max} items"),
                ));
            }
            if let Some(props) = properties(schema) {
                for (k, s) in props {
                    if let Some(cv) = m.get(k) {
                        validate_node(s, cv, &child(path, k), causes);
                    }
                }
            } else if let Some(additional) = schema.get("additionalProperties")
                && additional.is_object()
            {
                for (k, cv) in m {
                    validate_node(additional, cv, &format!("{path}[{k}]"), causes);
                }
            }
            required(schema, m, path, causes);
        }
        _ => {}
    }
}

/// Whether `value` matches a CRD `pattern`, searched unanchored as Go's `regexp.MatchString`
/// does. `None` when the pattern does not compile (the field is then not checked). Compiled
/// patterns are cached: the same few CRD patterns are checked on every write.
fn pattern_matches(pattern: &str, value: &str) -> Option<bool> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static CACHE: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> =
        LazyLock::new(Default::default);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    re.as_ref().map(|re| re.is_match(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts_schema(version: &str) -> &'static Value {
        schema_for("split.smi-spec.io", version).unwrap().unwrap()
    }

    fn route_schema() -> &'static Value {
        schema_for("gateway.networking.k8s.io", "v1")
            .unwrap()
            .unwrap()
    }

    #[test]
    fn reads_every_served_version_of_the_bundled_crds() {
        assert!(
            schema_for("split.smi-spec.io", "v1alpha1")
                .unwrap()
                .is_some()
        );
        assert!(
            schema_for("split.smi-spec.io", "v1alpha2")
                .unwrap()
                .is_some()
        );
        assert!(
            schema_for("gateway.networking.k8s.io", "v1")
                .unwrap()
                .is_some()
        );
        assert!(
            schema_for("gateway.networking.k8s.io", "v1beta1")
                .unwrap()
                .is_some()
        );
        assert!(schema_for("apps", "v1").unwrap().is_none());
    }

    #[test]
    fn prunes_fields_the_schema_does_not_declare() {
        let mut ts = json!({"apiVersion": "split.smi-spec.io/v1alpha1", "kind": "TrafficSplit",
            "metadata": {"name": "a", "labels": {"x": "y"}}, "status": {"x": 1},
            "spec": {"service": "web", "extra": true,
                     "backends": [{"service": "web-v1", "weight": 1, "junk": 2}]}});
        prune(ts_schema("v1alpha1"), &mut ts);
        assert_eq!(
            ts,
            json!({"apiVersion": "split.smi-spec.io/v1alpha1", "kind": "TrafficSplit",
                "metadata": {"name": "a", "labels": {"x": "y"}},
                "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 1}]}})
        );
    }

    #[test]
    fn defaults_http_route_backend_refs_parent_refs_and_matches() {
        let mut route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r"},
            "spec": {"parentRefs": [{"name": "web"}],
                     "rules": [{"backendRefs": [{"name": "web-v1", "port": 80}]}]}});
        default(route_schema(), &mut route);
        assert_eq!(
            route["spec"]["parentRefs"][0],
            json!({"name": "web", "group": "gateway.networking.k8s.io", "kind": "Gateway"})
        );
        assert_eq!(
            route["spec"]["rules"][0]["backendRefs"][0],
            json!({"name": "web-v1", "port": 80, "group": "", "kind": "Service", "weight": 1})
        );
        assert_eq!(
            route["spec"]["rules"][0]["matches"],
            json!([{"path": {"type": "PathPrefix", "value": "/"}}])
        );
    }

    #[test]
    fn reports_missing_required_fields() {
        let ts = json!({"spec": {"backends": [{"service": "a"}]}});
        let causes = validate(ts_schema("v1alpha1"), &ts);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.backends[0].weight", "spec.service"]);
        assert_eq!(causes[0].detail(), "Required value");
    }

    #[test]
    fn v1alpha1_weights_take_integers_or_strings_and_v1alpha2_only_numbers() {
        let ts =
            json!({"spec": {"service": "a", "backends": [{"service": "a", "weight": "500m"}]}});
        assert!(validate(ts_schema("v1alpha1"), &ts).is_empty());
        let causes = validate(ts_schema("v1alpha2"), &ts);
        assert_eq!(causes.len(), 1);
        assert_eq!(
            causes[0].detail(),
            "Invalid value: \"string\": spec.backends[0].weight in body must be of type number: \"string\""
        );
        let bad = json!({"spec": {"service": "a", "backends": [{"service": "a", "weight": true}]}});
        assert_eq!(validate(ts_schema("v1alpha1"), &bad).len(), 1);
    }

    #[test]
    fn checks_enums_ranges_and_list_sizes() {
        let route = json!({"spec": {
            "parentRefs": [{"name": "gw", "port": 70000}],
            "rules": [{"matches": [{"path": {"type": "Glob", "value": "/"}}],
                       "backendRefs": [{"name": "a", "port": 80, "weight": -1}]}]}});
        let causes = validate(route_schema(), &route);
        let details: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.detail()))
            .collect();
        assert!(
            details.contains(
                &"spec.parentRefs[0].port: Invalid value: 70000: spec.parentRefs[0].port in body should be less than or equal to 65535".to_string()
            ),
            "{details:#?}"
        );
        assert!(
            details.iter().any(|d| d.starts_with(
                "spec.rules[0].matches[0].path.type: Unsupported value: \"Glob\": supported values: \"Exact\", \"PathPrefix\""
            )),
            "{details:#?}"
        );
        assert!(
            details.iter().any(|d| d.starts_with(
                "spec.rules[0].backendRefs[0].weight: Invalid value: -1: spec.rules[0].backendRefs[0].weight in body should be greater than or equal to 0"
            )),
            "{details:#?}"
        );
        let bad_host = json!({"spec": {"hostnames": ["Shop.example.com"]}});
        let causes = validate(route_schema(), &bad_host);
        assert_eq!(
            causes[0].detail(),
            "Invalid value: \"Shop.example.com\": spec.hostnames[0] in body should match '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'"
        );
        let many = json!({"spec": {"hostnames": vec!["a.example.com"; 17]}});
        let causes = validate(route_schema(), &many);
        assert_eq!(
            causes[0].detail(),
            "Too many: 17: must have at most 16 items"
        );
    }
}
