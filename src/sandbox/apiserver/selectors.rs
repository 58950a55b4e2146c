//! Label and field selectors, parsed and matched the way kube-apiserver does for list and watch.
//!
//! Label selectors support `=`, `==`, `!=`, `in`, `notin`, `key` (exists) and `!key`.
//! Field selectors support `metadata.name` and `metadata.namespace` with `=`, `==` and `!=`,
//! and for Events the fields `kubectl describe` and `kubectl events` select on:
//! `involvedObject.*` (or `regarding.*`), `reason`, `type`, `reportingComponent` (or
//! `reportingController`) and `source`, matched against the stored (`v1`) shape.
//! Differences from kube-apiserver: other per-kind field selectors (`status.phase`,
//! `spec.nodeName`) are refused with 400 rather than served.

use std::collections::BTreeSet;

use serde_json::Value;

use super::status::ApiError;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector: every requirement must hold. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

/// A parsed field selector: (path in the stored object, equals?, value) per requirement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(Vec<String>, bool, String)>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn bad_label(sel: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {why} in label selector {sel:?}"
    ))
}

impl LabelSelector {
    /// Parses a `labelSelector` query value; a malformed selector is a 400.
    pub fn parse(sel: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if sel.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in split_top_level(sel) {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad_label(sel, "empty requirement"));
            }
            reqs.push(Self::parse_one(sel, part)?);
        }
        Ok(Self(reqs))
    }

    fn parse_one(sel: &str, part: &str) -> Result<Requirement, ApiError> {
        let set_op = |rest: &str, key: &str, negate: bool| -> Result<Requirement, ApiError> {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| bad_label(sel, "expected a parenthesised set of values"))?;
            let values: BTreeSet<String> = inner
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            if values.is_empty() {
                return Err(bad_label(
                    sel,
                    "for 'in', 'notin' operators, values set can't be empty",
                ));
            }
            let key = key.to_string();
            Ok(if negate {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            })
        };
        if let Some(key) = part.strip_prefix('!') {
            let key = key.trim();
            check_key(sel, key)?;
            return Ok(Requirement::DoesNotExist(key.to_string()));
        }
        if let Some((k, v)) = part.split_once("!=") {
            check_key(sel, k.trim())?;
            return Ok(Requirement::NotEquals(
                k.trim().to_string(),
                v.trim().to_string(),
            ));
        }
        if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            check_key(sel, k.trim())?;
            return Ok(Requirement::Equals(
                k.trim().to_string(),
                v.trim().to_string(),
            ));
        }
        let mut words = part.splitn(2, char::is_whitespace);
        let key = words.next().unwrap_or_default().trim();
        let rest = words.next().unwrap_or_default().trim();
        if rest.is_empty() {
            check_key(sel, key)?;
            return Ok(Requirement::Exists(key.to_string()));
        }
        check_key(sel, key)?;
        if let Some(r) = rest.strip_prefix("notin") {
            set_op(r, key, true)
        } else if let Some(r) = rest.strip_prefix("in") {
            set_op(r, key, false)
        } else {
            Err(bad_label(sel, &format!("unknown operator in {part:?}")))
        }
    }

    /// Whether `labels` (the object's `metadata.labels`, or `Value::Null`) satisfies every
    /// requirement.
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// Whether the selector has no requirement (matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn check_key(sel: &str, key: &str) -> Result<(), ApiError> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(bad_label(sel, &format!("invalid label key {key:?}")))
    }
}

impl FieldSelector {
    /// Parses a `fieldSelector` query value. Only `metadata.name` and `metadata.namespace`
    /// are supported; any other field is a 400 worded as kube-apiserver words it.
    pub fn parse(sel: &str, kind: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if sel.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in sel.split(',') {
            let part = part.trim();
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{sel}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            let Some(path) = field_path(field, kind) else {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field} (for {kind}; the sandbox serves metadata.name and metadata.namespace, and the event fields kubectl uses)"
                )));
            };
            reqs.push((path, eq, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    /// Whether `obj` (as stored) satisfies every requirement; a missing field reads as "".
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, value)| {
            let actual = path
                .iter()
                .fold(obj, |v, seg| &v[seg.as_str()])
                .as_str()
                .unwrap_or("");
            (actual == value) == *eq
        })
    }

    /// Whether the selector has no requirement (matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a field label of `kind` reads in the stored object, if the sandbox serves it.
fn field_path(field: &str, kind: &str) -> Option<Vec<String>> {
    let path = |p: &[&str]| Some(p.iter().map(|s| s.to_string()).collect());
    match field {
        "metadata.name" => return path(&["metadata", "name"]),
        "metadata.namespace" => return path(&["metadata", "namespace"]),
        _ if kind != "Event" => return None,
        _ => {}
    }
    const OBJECT_FIELDS: [&str; 7] = [
        "kind",
        "namespace",
        "name",
        "uid",
        "apiVersion",
        "resourceVersion",
        "fieldPath",
    ];
    if let Some(sub) = field
        .strip_prefix("involvedObject.")
        .or_else(|| field.strip_prefix("regarding."))
    {
        return OBJECT_FIELDS
            .contains(&sub)
            .then(|| vec!["involvedObject".to_string(), sub.to_string()]);
    }
    match field {
        "reason" | "type" => path(&[field]),
        "reportingComponent" | "reportingController" => path(&["reportingComponent"]),
        "source" | "deprecatedSource" => path(&["source", "component"]),
        _ => None,
    }
}

/// A label and a field selector together, as list and watch take them.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selection {
    /// Whether `obj` satisfies both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(&obj["metadata"]["labels"]) && self.fields.matches(obj)
    }

    /// Whether neither selector has a requirement.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels() -> Value {
        json!({"app": "podinfo", "tier": "web"})
    }

    #[test]
    fn equality_and_inequality_requirements_match_labels() {
        assert!(
            LabelSelector::parse("app=podinfo")
                .unwrap()
                .matches(&labels())
        );
        assert!(
            LabelSelector::parse("app==podinfo,tier=web")
                .unwrap()
                .matches(&labels())
        );
        assert!(
            !LabelSelector::parse("app!=podinfo")
                .unwrap()
                .matches(&labels())
        );
        assert!(
            LabelSelector::parse("app!=other")
                .unwrap()
                .matches(&labels())
        );
        assert!(
            LabelSelector::parse("missing!=x")
                .unwrap()
                .matches(&labels())
        );
    }

    #[test]
    fn set_requirements_match_labels() {
        assert!(
            LabelSelector::parse("tier in (web, db)")
                .unwrap()
                .matches(&labels())
        );
        assert!(
            !LabelSelector::parse("tier notin (web,db)")
                .unwrap()
                .matches(&labels())
        );
        assert!(
            LabelSelector::parse("env notin (prod)")
                .unwrap()
                .matches(&labels())
        );
        assert!(
            LabelSelector::parse("tier in (web,db),app=podinfo")
                .unwrap()
                .matches(&labels())
        );
    }

    #[test]
    fn existence_requirements_match_labels() {
        assert!(LabelSelector::parse("app").unwrap().matches(&labels()));
        assert!(!LabelSelector::parse("!app").unwrap().matches(&labels()));
        assert!(LabelSelector::parse("!env").unwrap().matches(&Value::Null));
    }

    #[test]
    fn refuses_a_malformed_label_selector() {
        let err = LabelSelector::parse("app in podinfo").unwrap_err();
        assert_eq!(err.code, 400);
        assert!(LabelSelector::parse("app in ()").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
    }

    #[test]
    fn field_selectors_match_name_and_namespace() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(
            FieldSelector::parse("metadata.name=a", "Deployment")
                .unwrap()
                .matches(&obj)
        );
        assert!(
            !FieldSelector::parse("metadata.namespace!=ns", "Deployment")
                .unwrap()
                .matches(&obj)
        );
    }

    #[test]
    fn refuses_an_unsupported_field() {
        let err = FieldSelector::parse("status.phase=Running", "Deployment").unwrap_err();
        assert!(err.message.contains("status.phase"), "{}", err.message);
    }

    #[test]
    fn event_selectors_read_the_stored_event_under_either_api_s_names() {
        let ev = serde_json::json!({
            "metadata": {"name": "podinfo.1", "namespace": "shop"},
            "involvedObject": {"kind": "Deployment", "name": "podinfo", "uid": "u1"},
            "reason": "Advanced", "source": {"component": "sluice"},
        });
        let describe = "involvedObject.name=podinfo,involvedObject.namespace=,involvedObject.kind=Deployment,involvedObject.uid=u1";
        assert!(
            FieldSelector::parse(describe, "Event")
                .unwrap()
                .matches(&ev)
        );
        let v1 = "regarding.name=podinfo,reason=Advanced,deprecatedSource=sluice";
        assert!(FieldSelector::parse(v1, "Event").unwrap().matches(&ev));
        assert!(
            !FieldSelector::parse("type=Warning", "Event")
                .unwrap()
                .matches(&ev)
        );
        assert!(FieldSelector::parse("involvedObject.name=x", "Deployment").is_err());
        assert!(FieldSelector::parse("involvedObject.labels=x", "Event").is_err());
    }
}
