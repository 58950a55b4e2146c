//! Revisions: the identity of a pod template, stable across Sluice and Kubernetes versions.
//!
//! A revision is the first 16 hex characters of the sha256 of the template's canonical JSON:
//! object keys sorted recursively (by code point), no whitespace, strings escaped and numbers
//! printed as serde_json prints them. Unlike Kubernetes' `pod-template-hash` it does not depend
//! on Go's struct layout, so a revision recorded as failed today still matches the same template
//! after an upgrade of either side.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The template's canonical JSON: keys sorted recursively, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(2048);
    write_canonical(value, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&key.as_str(), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        // Strings, null, booleans and numbers print the same compact way everywhere.
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &impl serde::Serialize, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("a JSON scalar always serialises to memory");
}

/// The revision of a pod template: sha256 of [`canonical_json`], first 16 hex characters.
pub fn revision(template: &Value) -> String {
    let digest = Sha256::digest(canonical_json(template).as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template() -> Value {
        json!({
            "spec": {
                "terminationGracePeriodSeconds": 30,
                "containers": [{
                    "resources": {"limits": {"cpu": "500m"}},
                    "ports": [{"protocol": "TCP", "containerPort": 9898}],
                    "name": "podinfo",
                    "image": "ghcr.io/stefanprodan/podinfo:6.0.1"
                }]
            },
            "metadata": {"labels": {"app": "podinfo"}}
        })
    }

    #[test]
    fn canonical_json_sorts_keys_recursively_without_whitespace() {
        assert_eq!(
            canonical_json(&template()),
            r#"{"metadata":{"labels":{"app":"podinfo"}},"spec":{"containers":[{"image":"ghcr.io/stefanprodan/podinfo:6.0.1","name":"podinfo","ports":[{"containerPort":9898,"protocol":"TCP"}],"resources":{"limits":{"cpu":"500m"}}}],"terminationGracePeriodSeconds":30}}"#
        );
    }

    #[test]
    fn the_revision_of_a_fixed_template_is_pinned() {
        // Computed independently:
        // python3 -c 'import json,hashlib; t={"metadata":{"labels":{"app":"podinfo"}},"spec":{"containers":[{"name":"podinfo","image":"ghcr.io/stefanprodan/podinfo:6.0.1","ports":[{"containerPort":9898,"protocol":"TCP"}],"resources":{"limits":{"cpu":"500m"}}}],"terminationGracePeriodSeconds":30}}; print(hashlib.sha256(json.dumps(t,sort_keys=True,separators=(",",":"),ensure_ascii=False).encode()).hexdigest()[:16])'
        assert_eq!(revision(&template()), "5688b659b266855b");
    }

    #[test]
    fn key_order_does_not_change_the_revision_but_a_value_does() {
        let reordered: Value = serde_json::from_str(
            r#"{"metadata":{"labels":{"app":"podinfo"}},"spec":{"terminationGracePeriodSeconds":30,"containers":[{"name":"podinfo","image":"ghcr.io/stefanprodan/podinfo:6.0.1","ports":[{"containerPort":9898,"protocol":"TCP"}],"resources":{"limits":{"cpu":"500m"}}}]}}"#,
        )
        .unwrap();
        assert_eq!(revision(&reordered), revision(&template()));
        let mut changed = template();
        changed["spec"]["containers"][0]["image"] = json!("ghcr.io/stefanprodan/podinfo:6.0.2");
        assert_ne!(revision(&changed), revision(&template()));
    }

    #[test]
    fn strings_are_escaped_as_json() {
        assert_eq!(
            canonical_json(&json!({"b": "quote \" and é", "a": [null, true, 1.5]})),
            r#"{"a":[null,true,1.5],"b":"quote \" and é"}"#
        );
    }
}
