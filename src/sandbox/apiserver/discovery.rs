//! Discovery documents (`/api`, `/apis`, `/apis/{group}/{version}`), `/version`, and the
//! OpenAPI documents kubectl reads, all derived from [`super::resources::builtin_kinds`].
//!
//! Differences from kube-apiserver:
//! - Only legacy (unaggregated) discovery is served; a client asking for aggregated discovery
//!   (`as=APIGroupDiscoveryList`) gets the legacy document with `Content-Type:
//!   application/json`, which client-go and kubectl take as "not supported" and fall back from.
//! - OpenAPI v3 documents carry no schemas for object fields, only each kind's
//!   `x-kubernetes-group-version-kind` and the operations with their `fieldValidation`
//!   parameter, so kubectl uses server-side field validation and falls back to its compiled-in
//!   types for strategic merge patches. `/openapi/v2` answers 404, as a server with only v3
//!   would (see the module docs of `server.rs` for what kubectl does with that).

use serde_json::{Value, json};

use super::resources::ResourceKind;

/// The `gitVersion` the sandbox reports.
pub const GIT_VERSION: &str = "v1.36.2-sluice-sandbox";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "36",
        "emulationMajor": "1",
        "emulationMinor": "36",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "35",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-11-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// Served versions of `group`, preferred (highest kube version priority) first.
pub fn group_versions<'a>(kinds: &'a [&'a ResourceKind], group: &str) -> Vec<&'a str> {
    let mut versions: Vec<&str> = kinds
        .iter()
        .filter(|k| k.group == group)
        .map(|k| k.version)
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    versions.dedup();
    versions
}

/// Kubernetes version ordering: GA above beta above alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (level, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (level, major, minor)
}

fn api_group(kinds: &[&ResourceKind], group: &str) -> Value {
    let versions: Vec<Value> = group_versions(kinds, group)
        .into_iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`: every named group with at least one served version.
pub fn group_list(kinds: &[&ResourceKind]) -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for k in kinds {
        if !k.group.is_empty() && !groups.contains(&k.group) {
            groups.push(k.group);
        }
    }
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups.iter().map(|g| api_group(kinds, g)).collect::<Vec<_>>(),
    })
}

/// `/apis/{group}`, or `None` when no version of it is served.
pub fn group(kinds: &[&ResourceKind], group: &str) -> Option<Value> {
    if !kinds.iter().any(|k| k.group == group) {
        return None;
    }
    let mut g = api_group(kinds, group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn categories(kind: &ResourceKind) -> Option<Value> {
    matches!(kind.plural, "deployments" | "services").then(|| json!(["all"]))
}

/// `/api/v1` or `/apis/{group}/{version}`: the APIResourceList, with subresources.
pub fn resource_list(kinds: &[&ResourceKind], group_version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for k in kinds.iter().filter(|k| k.api_version() == group_version) {
        let mut r = json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": VERBS,
        });
        if !k.short_names.is_empty() {
            r["shortNames"] = json!(k.short_names);
        }
        if let Some(c) = categories(k) {
            r["categories"] = c;
        }
        resources.push(r);
        for sub in k.subresources {
            let mut s = json!({
                "name": format!("{}/{sub}", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["get", "patch", "update"],
            });
            if *sub == "scale" {
                s["group"] = json!("autoscaling");
                s["version"] = json!("v1");
                s["kind"] = json!("Scale");
            }
            resources.push(s);
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// The OpenAPI v3 path of a group version: `api/v1` or `apis/apps/v1`.
pub fn openapi_v3_path(group_version: &str) -> String {
    if group_version == "v1" {
        "api/v1".to_string()
    } else {
        format!("apis/{group_version}")
    }
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn openapi_v3_index(kinds: &[&ResourceKind]) -> Value {
    let mut paths = serde_json::Map::new();
    for k in kinds {
        let p = openapi_v3_path(&k.api_version());
        let url = format!("/openapi/v3/{p}?hash={}", openapi_hash(&k.api_version()));
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({ "paths": paths })
}

fn openapi_hash(group_version: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(group_version.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02X}")).collect()
}

fn schema_name(k: &ResourceKind) -> String {
    let group = if k.group.is_empty() { "core" } else { k.group };
    format!("io.sluice.sandbox.{group}.{}.{}", k.version, k.kind)
}

/// `/openapi/v3/{api/v1|apis/g/v}`: operations (with `fieldValidation`) and a schema per kind
/// carrying `x-kubernetes-group-version-kind`; object fields are left open.
pub fn openapi_v3_document(kinds: &[&ResourceKind], group_version: &str) -> Option<Value> {
    let served: Vec<&&ResourceKind> = kinds
        .iter()
        .filter(|k| k.api_version() == group_version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let prefix = format!("/{}", openapi_v3_path(group_version));
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let field_validation = json!({
        "name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true},
        "description": "Ignore, Warn or Strict"
    });
    for k in served {
        let gvk = json!([{"group": k.group, "version": k.version, "kind": k.kind}]);
        let name = schema_name(k);
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        let body = json!({"content": {"application/json": {"schema": reference}}});
        let op = |id: &str| {
            json!({
                "operationId": format!("{id}{}", k.kind),
                "parameters": [field_validation.clone()],
                "requestBody": body.clone(),
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference.clone()}}}},
                "x-kubernetes-group-version-kind": gvk[0].clone(),
            })
        };
        let base = if k.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", k.plural)
        } else {
            format!("{prefix}/{}", k.plural)
        };
        paths.insert(base.clone(), json!({"post": op("create")}));
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"put": op("replace"), "patch": op("patch")}),
        );
        schemas.insert(
            name,
            json!({
                "type": "object",
                "description": format!("{} (sandbox schema: fields are not described)", k.kind),
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-preserve-unknown-fields": true,
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::apiserver::resources::builtin_kinds;

    #[test]
    fn prefers_the_highest_version_of_a_group() {
        let all = builtin_kinds();
        let kinds: Vec<&ResourceKind> = all.iter().collect();
        assert_eq!(
            group_versions(&kinds, "split.smi-spec.io"),
            vec!["v1alpha2", "v1alpha1"]
        );
        assert!(version_priority("v1") > version_priority("v2beta1"));
    }

    #[test]
    fn resource_lists_name_subresources_and_the_scale_kind() {
        let all = builtin_kinds();
        let kinds: Vec<&ResourceKind> = all.iter().collect();
        let list = resource_list(&kinds, "apps/v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["deployments", "deployments/status", "deployments/scale"]
        );
        assert_eq!(list["resources"][2]["kind"], "Scale");
        assert_eq!(list["resources"][0]["shortNames"], json!(["deploy"]));
    }

    #[test]
    fn an_unserved_group_version_has_no_documents() {
        let all = builtin_kinds();
        let kinds: Vec<&ResourceKind> = all
            .iter()
            .filter(|k| k.api_version() != "split.smi-spec.io/v1alpha2")
            .collect();
        assert!(resource_list(&kinds, "split.smi-spec.io/v1alpha2").is_none());
        assert_eq!(
            group_versions(&kinds, "split.smi-spec.io"),
            vec!["v1alpha1"]
        );
    }
}
