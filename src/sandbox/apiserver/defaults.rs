//! Defaulting and validation for the kinds the sandbox serves, as kube-apiserver v1.36
//! applies them on create and update.
//!
//! ```text
//!  decoded object ─► default_object ─► (admission) ─► validate ─► stored
//!                     built-in defaults            422 Invalid, one cause per field,
//!                     CRDs: prune + schema default  worded as kube-apiserver words them
//! ```
//!
//! Custom resources (TrafficSplit, HTTPRoute) are pruned, defaulted and validated against the
//! `openAPIV3Schema` of the CRDs in `deploy/crds/` (see `schema.rs`).
//!
//! Where it knowingly differs from kube-apiserver:
//! - Validation covers what Sluice and its tests rely on: object names, labels and
//!   annotations, the Deployment spec (selector, template labels, containers, ports,
//!   replicas, strategy), Service ports and types, webhook configurations, and CRD schemas;
//!   volumes, probes, resources, affinity and security contexts are not validated.
//! - A Service's clusterIP is derived from a hash of namespace/name in 10.96.0.0/12 rather than
//!   allocated, so two Services can (rarely) share one; NodePorts are not allocated.
//! - HorizontalPodAutoscaler, Ingress, Lease, ConfigMap, Event, ServiceAccount, the RBAC kinds
//!   and PodDisruptionBudget get no defaults beyond Secret's `type: Opaque`; the RBAC kinds'
//!   names are checked as path segments, as kube does, and their rules are not validated.

#[path = "schema.rs"]
mod schema;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::resources::ResourceKind;
use super::status::{ApiError, Cause, CauseKind};

/// Fills in the defaults kube-apiserver sets on create and update.
pub fn default_object(kind: &ResourceKind, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (kind.group, kind.kind) {
        ("apps", "Deployment") => default_deployment(obj),
        ("", "Service") => default_service(obj),
        ("", "Namespace") => default_namespace(obj),
        ("", "Secret") => {
            set_default(root(obj), "type", json!("Opaque"));
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            default_webhooks(obj, true)
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            default_webhooks(obj, false)
        }
        (group, _) => {
            if let Ok(Some(s)) = schema::schema_for(group, kind.version) {
                schema::prune(s, obj);
                schema::default(s, obj);
            }
        }
    }
}

/// Validates an object about to be stored (`old` is the stored one on update).
pub fn validate(kind: &ResourceKind, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let mut causes = validate_metadata(kind, obj);
    match (kind.group, kind.kind) {
        ("apps", "Deployment") => validate_deployment(obj, old, &mut causes),
        ("", "Service") => validate_service(obj, old, &mut causes),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration")
        | ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            validate_webhooks(obj, &mut causes)
        }
        (group, _) => match schema::schema_for(group, kind.version) {
            Ok(Some(s)) => causes.extend(schema::validate(s, obj)),
            Ok(None) => {}
            Err(e) => return Err(ApiError::internal(e)),
        },
    }
    if causes.is_empty() {
        Ok(())
    } else {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(ApiError::invalid(kind, name, &causes))
    }
}

// ---------------------------------------------------------------------------------------------
// Causes, worded as k8s.io/apimachinery/pkg/util/validation/field words them

// ---------------------------------------------------------------------------------------------
// Names

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `IsDNS1123Label`: the messages for an invalid RFC 1123 label (empty when valid).
fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_label_chars(s) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// `IsDNS1123Subdomain`.
fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(is_label_chars) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// `IsValidPathSegmentName`: not `.` or `..`, and neither `/` nor `%` in it.
fn path_segment_name(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    ["/", "%"]
        .into_iter()
        .filter(|bad| s.contains(bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// `IsDNS1035Label`.
fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_label_chars(s) || !s.as_bytes()[0].is_ascii_lowercase() {
        errs.push(DNS1035_LABEL_MSG.to_string());
    }
    errs
}

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the name part of a qualified name.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// `IsQualifiedName`: label and annotation keys (`[prefix/]name`).
fn qualified_name(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let name = match key.split('/').collect::<Vec<_>>().as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errs
}

/// `ValidateLabels`: every key a qualified name, every value a valid label value.
fn validate_labels(labels: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    for (k, v) in labels.and_then(Value::as_object).into_iter().flatten() {
        for e in qualified_name(k) {
            causes.push(Cause::invalid(field, &json!(k), e));
        }
        let value = v.as_str().unwrap_or_default();
        if value.len() > 63 {
            causes.push(Cause::invalid(
                field,
                v,
                "must be no more than 63 characters",
            ));
        }
        if !value.is_empty() && !is_qualified_name_part(value) {
            causes.push(Cause::invalid(field, v, LABEL_VALUE_MSG));
        }
    }
}

/// `ValidateAnnotations`: qualified-name keys, at most 256 KiB in all.
fn validate_annotations(annotations: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    let Some(m) = annotations.and_then(Value::as_object) else {
        return;
    };
    for k in m.keys() {
        for e in qualified_name(&k.to_lowercase()) {
            causes.push(Cause::invalid(field, &json!(k), e));
        }
    }
    let size: usize = m
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        causes.push(Cause::new(
            CauseKind::TooLong,
            field.to_string(),
            None,
            format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        ));
    }
}

/// The name rule of each kind: RFC 1123 label, DNS-1035 label or RFC 1123 subdomain.
fn name_errors(kind: &ResourceKind, name: &str) -> Vec<String> {
    match kind.kind {
        "Namespace" => dns1123_label(name),
        "Service" => dns1035_label(name),
        // Events are named after the object they describe plus a suffix; kube checks only
        // that the name is a path segment.
        "Event" => Vec::new(),
        // RBAC names are path segments (`system:controller:…`), as `ValidateRBACName` checks.
        "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" => path_segment_name(name),
        _ => dns1123_subdomain(name),
    }
}

fn validate_metadata(kind: &ResourceKind, obj: &Value) -> Vec<Cause> {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str);
    let generate = obj
        .pointer("/metadata/generateName")
        .and_then(Value::as_str);
    let errs = match name.filter(|n| !n.is_empty()) {
        None if generate.is_some_and(|g| !g.is_empty()) => Vec::new(),
        None => {
            return vec![Cause::required(
                "metadata.name",
                "name or generateName is required",
            )];
        }
        Some(name) => name_errors(kind, name),
    };
    let name = name.unwrap_or_default();
    let mut causes: Vec<Cause> = errs
        .into_iter()
        .map(|e| Cause::invalid("metadata.name", &json!(name), e))
        .collect();
    validate_labels(
        obj.pointer("/metadata/labels"),
        "metadata.labels",
        &mut causes,
    );
    validate_annotations(
        obj.pointer("/metadata/annotations"),
        "metadata.annotations",
        &mut causes,
    );
    causes
}

// ---------------------------------------------------------------------------------------------
// JSON helpers

fn root(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    obj.as_object_mut().expect("just made an object")
}

/// The object at `key`, created empty when absent or not an object.
fn child_map<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = m.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("just made an object")
}

fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

fn items_mut<'a>(m: &'a mut Map<String, Value>, key: &str) -> Vec<&'a mut Map<String, Value>> {
    match m.get_mut(key) {
        Some(Value::Array(a)) => a.iter_mut().filter_map(Value::as_object_mut).collect(),
        _ => Vec::new(),
    }
}

fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

// ---------------------------------------------------------------------------------------------
// Deployment

fn default_deployment(obj: &mut Value) {
    let r = root(obj);
    set_default(r, "status", json!({}));
    let spec = child_map(r, "spec");
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = child_map(spec, "strategy");
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type") == Some(&json!("RollingUpdate")) {
        let ru = child_map(strategy, "rollingUpdate");
        set_default(ru, "maxUnavailable", json!("25%"));
        set_default(ru, "maxSurge", json!("25%"));
    }
    let template = child_map(spec, "template");
    default_pod_spec(child_map(template, "spec"));
}

fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers"] {
        for c in items_mut(spec, key) {
            default_container(c);
        }
    }
    for v in items_mut(spec, "volumes") {
        for source in ["configMap", "secret"] {
            if let Some(Value::Object(s)) = v.get_mut(source) {
                set_default(s, "defaultMode", json!(420));
            }
        }
    }
}

fn default_container(c: &mut Map<String, Value>) {
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    set_default(c, "imagePullPolicy", json!(pull_policy(image)));
    set_default(c, "resources", json!({}));
    for p in items_mut(c, "ports") {
        set_default(p, "protocol", json!("TCP"));
    }
    for e in items_mut(c, "env") {
        if let Some(Value::Object(from)) = e.get_mut("valueFrom")
            && let Some(Value::Object(field_ref)) = from.get_mut("fieldRef")
        {
            set_default(field_ref, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(Value::Object(p)) = c.get_mut(probe) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            if let Some(Value::Object(get)) = p.get_mut("httpGet") {
                set_default(get, "path", json!("/"));
                set_default(get, "scheme", json!("HTTP"));
            }
        }
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (digests included).
fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn selector_matches(selector: &Value, labels: &Map<String, Value>) -> bool {
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let expressions = items(selector, "/matchExpressions");
    if match_labels.is_none_or(Map::is_empty) && expressions.is_empty() {
        // An empty selector matches everything; kube reports it separately.
        return true;
    }
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = expressions.iter().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values = items(e, "/values");
        let value = labels.get(key);
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => value.is_some_and(|v| values.contains(v)),
            Some("NotIn") => value.is_none_or(|v| !values.contains(v)),
            Some("Exists") => value.is_some(),
            Some("DoesNotExist") => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

fn non_negative(obj: &Value, pointer: &str, field: &str, causes: &mut Vec<Cause>) {
    if let Some(v) = obj.pointer(pointer)
        && v.as_f64().is_some_and(|n| n < 0.0)
    {
        causes.push(Cause::invalid(
            field,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

fn validate_deployment(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    non_negative(obj, "/spec/replicas", "spec.replicas", causes);
    let selector = obj.pointer("/spec/selector").filter(|s| !s.is_null());
    match selector {
        None => causes.push(Cause::required("spec.selector", "")),
        Some(s) => {
            let empty = s
                .get("matchLabels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
                && items(s, "/matchExpressions").is_empty();
            if empty {
                causes.push(Cause::invalid(
                    "spec.selector",
                    s,
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    let empty_labels = Map::new();
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .unwrap_or(&empty_labels);
    // A missing selector selects nothing, so the template labels cannot match it either.
    if selector.is_none_or(|s| !selector_matches(s, template_labels)) {
        causes.push(Cause::invalid(
            "spec.template.metadata.labels",
            &Value::Object(template_labels.clone()),
            "`selector` does not match template `labels`",
        ));
    }
    validate_labels(
        obj.pointer("/spec/template/metadata/labels"),
        "spec.template.metadata.labels",
        causes,
    );
    validate_pod_spec(obj, "/spec/template/spec", "spec.template.spec", causes);
    if let Some(policy) = obj.pointer("/spec/template/spec/restartPolicy")
        && policy != "Always"
    {
        causes.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    validate_strategy(obj, causes);
    non_negative(
        obj,
        "/spec/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        causes,
    );
    if let Some(old) = old {
        let (new_sel, old_sel) = (obj.pointer("/spec/selector"), old.pointer("/spec/selector"));
        if old_sel.is_some() && new_sel != old_sel {
            causes.push(Cause::invalid(
                "spec.selector",
                new_sel.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
}

fn validate_strategy(obj: &Value, causes: &mut Vec<Cause>) {
    let Some(strategy) = obj.pointer("/spec/strategy") else {
        return;
    };
    let kind = strategy.get("type").cloned().unwrap_or(Value::Null);
    match kind.as_str() {
        Some("RollingUpdate") => {
            let zero = |v: Option<&Value>| {
                matches!(v, Some(Value::Number(n)) if n.as_f64() == Some(0.0))
                    || matches!(v, Some(Value::String(s)) if s == "0%" || s == "0")
            };
            let unavailable = strategy.pointer("/rollingUpdate/maxUnavailable");
            if zero(unavailable) && zero(strategy.pointer("/rollingUpdate/maxSurge")) {
                let shown = match unavailable {
                    Some(Value::String(s)) => json!(s),
                    Some(v) => v.clone(),
                    None => Value::Null,
                };
                causes.push(Cause::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    &shown,
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
        Some("Recreate") => {
            if strategy.get("rollingUpdate").is_some_and(|r| !r.is_null()) {
                causes.push(Cause::new(
                    CauseKind::Forbidden,
                    "spec.strategy.rollingUpdate".into(),
                    None,
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        _ => causes.push(Cause::not_supported(
            "spec.strategy.type",
            &kind,
            &["Recreate", "RollingUpdate"],
        )),
    }
}

fn validate_port_number(v: &Value, field: String, causes: &mut Vec<Cause>) {
    if !v.as_i64().is_some_and(|p| (1..=65535).contains(&p)) {
        causes.push(Cause::invalid(
            field,
            v,
            "must be between 1 and 65535, inclusive",
        ));
    }
}

fn validate_pod_spec(obj: &Value, pointer: &str, field: &str, causes: &mut Vec<Cause>) {
    let containers = items(obj, &format!("{pointer}/containers"));
    if containers.is_empty() {
        causes.push(Cause::required(format!("{field}.containers"), ""));
    }
    let mut names: Vec<&str> = Vec::new();
    for (key, list) in [
        (
            "initContainers",
            items(obj, &format!("{pointer}/initContainers")),
        ),
        ("containers", containers),
    ] {
        for (i, c) in list.iter().enumerate() {
            let at = format!("{field}.{key}[{i}]");
            match c
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                None => causes.push(Cause::required(format!("{at}.name"), "")),
                Some(name) => {
                    for e in dns1123_label(name) {
                        causes.push(Cause::invalid(format!("{at}.name"), &json!(name), e));
                    }
                    if names.contains(&name) {
                        causes.push(Cause::new(
                            CauseKind::Duplicate,
                            format!("{at}.name"),
                            Some(json!(name)),
                            "",
                        ));
                    }
                    names.push(name);
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
            {
                causes.push(Cause::required(format!("{at}.image"), ""));
            }
            if let Some(p) = c.get("imagePullPolicy")
                && !matches!(p.as_str(), Some("Always" | "IfNotPresent" | "Never"))
            {
                causes.push(Cause::not_supported(
                    format!("{at}.imagePullPolicy"),
                    p,
                    &["Always", "IfNotPresent", "Never"],
                ));
            }
            for (j, port) in items(c, "/ports").iter().enumerate() {
                let pat = format!("{at}.ports[{j}]");
                validate_port_number(
                    port.get("containerPort").unwrap_or(&Value::Null),
                    format!("{pat}.containerPort"),
                    causes,
                );
                if let Some(proto) = port.get("protocol")
                    && !matches!(proto.as_str(), Some("SCTP" | "TCP" | "UDP"))
                {
                    causes.push(Cause::not_supported(
                        format!("{pat}.protocol"),
                        proto,
                        &["SCTP", "TCP", "UDP"],
                    ));
                }
            }
            for (j, env) in items(c, "/env").iter().enumerate() {
                if env
                    .get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::required(format!("{at}.env[{j}].name"), ""));
                }
            }
        }
    }
    if let Some(p) = obj.pointer(&format!("{pointer}/dnsPolicy"))
        && !matches!(
            p.as_str(),
            Some("ClusterFirst" | "ClusterFirstWithHostNet" | "Default" | "None")
        )
    {
        causes.push(Cause::not_supported(
            format!("{field}.dnsPolicy"),
            p,
            &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Service

/// A stable clusterIP in 10.96.0.0/12 for namespace/name (10.96.0.1 is the API server's).
fn cluster_ip(namespace: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let offset = 2 + n % ((1 << 20) - 3);
    let ip = (10u32 << 24) | (96 << 16) | offset;
    format!(
        "{}.{}.{}.{}",
        ip >> 24,
        (ip >> 16) & 0xff,
        (ip >> 8) & 0xff,
        ip & 0xff
    )
}

fn default_service(obj: &mut Value) {
    let namespace = str_at(obj, "/metadata/namespace")
        .unwrap_or("default")
        .to_string();
    let name = str_at(obj, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let r = root(obj);
    set_default(r, "status", json!({"loadBalancer": {}}));
    let spec = child_map(r, "spec");
    set_default(spec, "type", json!("ClusterIP"));
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    set_default(spec, "sessionAffinity", json!("None"));
    for p in items_mut(spec, "ports") {
        set_default(p, "protocol", json!("TCP"));
        if let Some(port) = p.get("port").cloned()
            && p.get("targetPort")
                .is_none_or(|t| t.is_null() || *t == json!(0) || *t == json!(""))
        {
            p.insert("targetPort".into(), port);
        }
    }
    if kind == "ExternalName" {
        return;
    }
    let ip = match spec.get("clusterIP").and_then(Value::as_str) {
        Some(ip) if !ip.is_empty() => ip.to_string(),
        _ => cluster_ip(&namespace, &name),
    };
    spec.insert("clusterIP".into(), json!(ip));
    set_default(spec, "clusterIPs", json!([ip]));
    set_default(spec, "ipFamilies", json!(["IPv4"]));
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    if kind == "NodePort" || kind == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

fn validate_service(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let kind = obj
        .pointer("/spec/type")
        .cloned()
        .unwrap_or(json!("ClusterIP"));
    let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !kind.as_str().is_some_and(|k| types.contains(&k)) {
        causes.push(Cause::not_supported("spec.type", &kind, &types));
    }
    let external = kind == "ExternalName";
    let headless = str_at(obj, "/spec/clusterIP") == Some("None");
    if external && str_at(obj, "/spec/externalName").is_none_or(str::is_empty) {
        causes.push(Cause::required("spec.externalName", ""));
    }
    let ports = items(obj, "/spec/ports");
    if ports.is_empty() && !external && !headless {
        causes.push(Cause::required("spec.ports", ""));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        match p
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            None if ports.len() > 1 => causes.push(Cause::required(format!("{at}.name"), "")),
            None => {}
            Some(name) => {
                for e in dns1123_label(name) {
                    causes.push(Cause::invalid(format!("{at}.name"), &json!(name), e));
                }
                if names.contains(&name) {
                    causes.push(Cause::new(
                        CauseKind::Duplicate,
                        format!("{at}.name"),
                        Some(json!(name)),
                        "",
                    ));
                }
                names.push(name);
            }
        }
        validate_port_number(
            p.get("port").unwrap_or(&Value::Null),
            format!("{at}.port"),
            causes,
        );
        if let Some(proto) = p.get("protocol")
            && !matches!(proto.as_str(), Some("SCTP" | "TCP" | "UDP"))
        {
            causes.push(Cause::not_supported(
                format!("{at}.protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
        }
        if let Some(t) = p.get("targetPort")
            && t.is_number()
        {
            validate_port_number(t, format!("{at}.targetPort"), causes);
        }
    }
    if let Some(old) = old {
        let (before, after) = (
            str_at(old, "/spec/clusterIP"),
            str_at(obj, "/spec/clusterIP"),
        );
        if let (Some(b), Some(a)) = (before, after)
            && !b.is_empty()
            && a != b
            && !external
        {
            causes.push(Cause::invalid(
                "spec.clusterIPs[0]",
                &json!(a),
                "may not change once set",
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Namespace

fn default_namespace(obj: &mut Value) {
    let name = str_at(obj, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let r = root(obj);
    let labels = child_map(child_map(r, "metadata"), "labels");
    labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    set_default(child_map(r, "spec"), "finalizers", json!(["kubernetes"]));
    set_default(child_map(r, "status"), "phase", json!("Active"));
}

// ---------------------------------------------------------------------------------------------
// Webhook configurations

fn default_webhooks(obj: &mut Value, mutating: bool) {
    for w in items_mut(root(obj), "webhooks") {
        set_default(w, "failurePolicy", json!("Fail"));
        set_default(w, "matchPolicy", json!("Equivalent"));
        set_default(w, "namespaceSelector", json!({}));
        set_default(w, "objectSelector", json!({}));
        set_default(w, "timeoutSeconds", json!(10));
        if mutating {
            set_default(w, "reinvocationPolicy", json!("Never"));
        }
        for rule in items_mut(w, "rules") {
            set_default(rule, "scope", json!("*"));
        }
        if let Some(Value::Object(cc)) = w.get_mut("clientConfig")
            && let Some(Value::Object(svc)) = cc.get_mut("service")
        {
            set_default(svc, "port", json!(443));
        }
    }
}

fn validate_webhooks(obj: &Value, causes: &mut Vec<Cause>) {
    let mut names: Vec<&str> = Vec::new();
    for (i, w) in items(obj, "/webhooks").iter().enumerate() {
        let at = format!("webhooks[{i}]");
        match w
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            None => causes.push(Cause::required(format!("{at}.name"), "")),
            Some(name) => {
                let errs = dns1123_subdomain(name);
                if !errs.is_empty() {
                    causes.push(Cause::invalid(
                        format!("{at}.name"),
                        &json!(name),
                        errs.join(","),
                    ));
                } else if name.split('.').count() < 3 {
                    causes.push(Cause::invalid(
                        format!("{at}.name"),
                        &json!(name),
                        "should be a domain with at least three segments separated by dots",
                    ));
                }
                if names.contains(&name) {
                    causes.push(Cause::new(
                        CauseKind::Duplicate,
                        format!("{at}.name"),
                        Some(json!(name)),
                        "",
                    ));
                }
                names.push(name);
            }
        }
        for (j, rule) in items(w, "/rules").iter().enumerate() {
            for (k, op) in items(rule, "/operations").iter().enumerate() {
                let ops = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
                if !op.as_str().is_some_and(|o| ops.contains(&o)) {
                    causes.push(Cause::not_supported(
                        format!("{at}.rules[{j}].operations[{k}]"),
                        op,
                        &ops,
                    ));
                }
            }
            if let Some(scope) = rule.get("scope")
                && !matches!(scope.as_str(), Some("*" | "Cluster" | "Namespaced"))
            {
                causes.push(Cause::not_supported(
                    format!("{at}.rules[{j}].scope"),
                    scope,
                    &["*", "Cluster", "Namespaced"],
                ));
            }
        }
        if let Some(p) = w.get("failurePolicy")
            && !matches!(p.as_str(), Some("Fail" | "Ignore"))
        {
            causes.push(Cause::not_supported(
                format!("{at}.failurePolicy"),
                p,
                &["Fail", "Ignore"],
            ));
        }
        match w.get("sideEffects") {
            None | Some(Value::Null) => causes.push(Cause::required(
                format!("{at}.sideEffects"),
                "must specify one of None, NoneOnDryRun",
            )),
            Some(s) if !matches!(s.as_str(), Some("None" | "NoneOnDryRun")) => causes.push(
                Cause::not_supported(format!("{at}.sideEffects"), s, &["None", "NoneOnDryRun"]),
            ),
            Some(_) => {}
        }
        if let Some(t) = w.get("timeoutSeconds")
            && !t.as_i64().is_some_and(|t| (1..=30).contains(&t))
        {
            causes.push(Cause::invalid(
                format!("{at}.timeoutSeconds"),
                t,
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
        validate_client_config(w, &at, causes);
        let versions = items(w, "/admissionReviewVersions");
        let vat = format!("{at}.admissionReviewVersions");
        if versions.is_empty() {
            causes.push(Cause::required(vat, "must specify one of v1, v1beta1"));
        } else if !versions
            .iter()
            .any(|v| matches!(v.as_str(), Some("v1" | "v1beta1")))
        {
            causes.push(Cause::invalid(
                vat,
                &Value::Array(versions.to_vec()),
                "must include at least one of v1, v1beta1",
            ));
        }
    }
}

fn validate_client_config(w: &Value, at: &str, causes: &mut Vec<Cause>) {
    let cc = format!("{at}.clientConfig");
    let url = w.pointer("/clientConfig/url").filter(|v| !v.is_null());
    let service = w.pointer("/clientConfig/service").filter(|v| !v.is_null());
    match (url, service) {
        (Some(url), None) => {
            let u = url.as_str().unwrap_or_default();
            match u.split_once("://") {
                Some(("https", rest)) => {
                    if rest.split(['/', '?', '#']).next().is_none_or(str::is_empty) {
                        causes.push(Cause::invalid(
                            format!("{cc}.url"),
                            &json!(""),
                            "host must be specified",
                        ));
                    }
                    if rest.contains('?') {
                        causes.push(Cause::invalid(
                            format!("{cc}.url"),
                            url,
                            "query parameters are not permitted in the URL",
                        ));
                    }
                    if rest.contains('#') {
                        causes.push(Cause::invalid(
                            format!("{cc}.url"),
                            url,
                            "fragments are not permitted in the URL",
                        ));
                    }
                }
                Some((scheme, _)) => causes.push(Cause::invalid(
                    format!("{cc}.url"),
                    &json!(scheme),
                    "'https' is the only allowed URL scheme",
                )),
                None => causes.push(Cause::invalid(
                    format!("{cc}.url"),
                    url,
                    "url must be a valid URL with an https:// scheme and a host",
                )),
            }
        }
        (None, Some(svc)) => {
            let sat = format!("{cc}.service");
            if str_at(svc, "/name").is_none_or(str::is_empty) {
                causes.push(Cause::required(
                    format!("{sat}.name"),
                    "service name is required",
                ));
            }
            if str_at(svc, "/namespace").is_none_or(str::is_empty) {
                causes.push(Cause::required(
                    format!("{sat}.namespace"),
                    "service namespace is required",
                ));
            }
            if let Some(port) = svc.get("port")
                && !port.as_i64().is_some_and(|p| (1..=65535).contains(&p))
            {
                causes.push(Cause::invalid(
                    format!("{sat}.port"),
                    port,
                    "port is not valid: must be between 1 and 65535, inclusive",
                ));
            }
            if let Some(path) = svc.get("path").and_then(Value::as_str)
                && !path.starts_with('/')
            {
                causes.push(Cause::invalid(
                    format!("{sat}.path"),
                    &json!(path),
                    "must start with a '/'",
                ));
            }
        }
        _ => causes.push(Cause::required(
            cc,
            "exactly one of url or service is required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::resources::{builtin_kinds, lookup};
    use super::*;

    fn kind(group: &str, version: &str, plural: &str) -> ResourceKind {
        lookup(&builtin_kinds(), group, version, plural)
            .unwrap()
            .clone()
    }

    fn deployments() -> ResourceKind {
        kind("apps", "v1", "deployments")
    }

    /// [`validate`] of a new Deployment.
    fn validate_deployment(d: &Value) -> Result<(), ApiError> {
        validate(&deployments(), d, None)
    }

    /// The body of the `create-deployment` fixture's request.
    fn podinfo() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "podinfo", "namespace": "capture", "labels": {"app": "podinfo"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {"metadata": {"labels": {"app": "podinfo"}},
                    "spec": {"containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.0"}]}}}
        })
    }

    #[test]
    fn defaults_a_deployment_exactly_as_the_create_fixture_shows() {
        let mut d = podinfo();
        default_object(&deployments(), &mut d);
        assert_eq!(
            d["spec"],
            json!({
                "replicas": 2,
                "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {"metadata": {"labels": {"app": "podinfo"}},
                    "spec": {
                        "containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                            "resources": {}, "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst", "securityContext": {},
                        "schedulerName": "default-scheduler"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600
            })
        );
        assert_eq!(d["status"], json!({}));
    }

    #[test]
    fn defaults_replicas_to_one_and_keeps_what_is_set() {
        let mut d = podinfo();
        d["spec"].as_object_mut().unwrap().remove("replicas");
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        default_object(&deployments(), &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn a_kubectl_create_with_ports_and_a_probe_owns_what_the_admission_fixture_shows() {
        // What kubectl sent in admission fixture `deployment-create.json`, before defaulting.
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "podinfo", "namespace": "shop", "labels": {"app": "podinfo"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {"metadata": {"labels": {"app": "podinfo"}}, "spec": {"containers": [{
                    "image": "ghcr.io/stefanprodan/podinfo:6.0.0", "name": "podinfod",
                    "ports": [{"containerPort": 9898, "name": "http"}],
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": 9898}}}]}}}});
        default_object(&deployments(), &mut d);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"],
            json!({"httpGet": {"path": "/readyz", "port": 9898, "scheme": "HTTP"}, "timeoutSeconds": 1,
                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        super::super::fieldmanager::record_update(
            None,
            &mut d,
            "kubectl-client-side-apply",
            "apps/v1",
            None,
            "2026-11-27T08:45:09Z",
        );
        let container = json!({".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
            "f:ports": {".": {}, "k:{\"containerPort\":9898,\"protocol\":\"TCP\"}": {
                ".": {}, "f:containerPort": {}, "f:name": {}, "f:protocol": {}}},
            "f:readinessProbe": {".": {}, "f:failureThreshold": {},
                "f:httpGet": {".": {}, "f:path": {}, "f:port": {}, "f:scheme": {}},
                "f:periodSeconds": {}, "f:successThreshold": {}, "f:timeoutSeconds": {}},
            "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}});
        assert_eq!(
            d["metadata"]["managedFields"][0]["fieldsV1"],
            json!({
                "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                               "f:labels": {".": {}, "f:app": {}}},
                "f:spec": {"f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {},
                    "f:selector": {},
                    "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
                    "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"podinfod\"}": container},
                            "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                            "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}}
            })
        );
    }

    #[test]
    fn pulls_latest_and_untagged_images_always() {
        assert_eq!(pull_policy("nginx"), "Always");
        assert_eq!(pull_policy("nginx:latest"), "Always");
        assert_eq!(pull_policy("registry:5000/nginx"), "Always");
        assert_eq!(pull_policy("registry:5000/nginx:1.2"), "IfNotPresent");
        assert_eq!(pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn refuses_a_bad_name_with_the_fixture_wording() {
        let mut d = podinfo();
        d["metadata"]["name"] = json!("Bad_Name");
        let err = validate_deployment(&d).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "Deployment.apps \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        let details = err.details.unwrap();
        assert_eq!(details["name"], "Bad_Name");
        assert_eq!(details["group"], "apps");
        assert_eq!(details["kind"], "Deployment");
        assert_eq!(details["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(details["causes"][0]["field"], "metadata.name");
    }

    #[test]
    fn refuses_a_selector_that_does_not_match_the_template_with_the_fixture_wording() {
        let mut d = podinfo();
        d["metadata"]["name"] = json!("noselector");
        d["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        let err = validate_deployment(&d).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment.apps \"noselector\" is invalid: spec.template.metadata.labels: Invalid value: {\"app\":\"podinfo\"}: `selector` does not match template `labels`"
        );
        assert_eq!(
            err.details.unwrap()["causes"][0],
            json!({"reason": "FieldValueInvalid", "field": "spec.template.metadata.labels",
                   "message": "Invalid value: {\"app\":\"podinfo\"}: `selector` does not match template `labels`"})
        );
    }

    #[test]
    fn requires_a_name_a_selector_and_containers_with_names_and_images() {
        let d = json!({"metadata": {}, "spec": {"replicas": -1, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"image": ""}]}}}});
        let err = validate_deployment(&d).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment.apps \"\" is invalid: [metadata.name: Required value: name or generateName is required, spec.replicas: Invalid value: -1: must be greater than or equal to 0, spec.selector: Required value, spec.template.metadata.labels: Invalid value: {\"a\":\"b\"}: `selector` does not match template `labels`, spec.template.spec.containers[0].name: Required value, spec.template.spec.containers[0].image: Required value]"
        );
        let d = json!({"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {}}}});
        let err = validate_deployment(&d).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment.apps \"x\" is invalid: spec.template.spec.containers: Required value"
        );
        assert_eq!(
            err.details.unwrap()["causes"][0]["reason"],
            "FieldValueRequired"
        );
    }

    #[test]
    fn refuses_bad_label_keys_and_values_with_kube_wording() {
        let mut d = podinfo();
        d["metadata"]["labels"] = json!({"sluice.dev/phase": "bad value!", "a/b/c": "x"});
        let err = validate_deployment(&d).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "Deployment.apps \"podinfo\" is invalid: [metadata.labels: Invalid value: \"a/b/c\": a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName'), metadata.labels: Invalid value: \"bad value!\": {LABEL_VALUE_MSG}]"
            )
        );
        let mut ok = podinfo();
        ok["metadata"]["labels"] = json!({"sluice.dev/phase": "Progressing", "empty": ""});
        ok["metadata"]["annotations"] = json!({"sluice.dev/step-weight": "150 is fine here"});
        assert_eq!(validate_deployment(&ok), Ok(()));
        let mut bad_prefix = podinfo();
        bad_prefix["metadata"]["annotations"] = json!({"Bad_Prefix/x": "y"});
        let err = validate_deployment(&bad_prefix).unwrap_err();
        assert!(
            err.message.contains("metadata.annotations: Invalid value: \"Bad_Prefix/x\": prefix part a lowercase RFC 1123 subdomain"),
            "{}",
            err.message
        );
    }

    #[test]
    fn accepts_the_defaulted_fixture_deployment() {
        let mut d = podinfo();
        default_object(&deployments(), &mut d);
        assert_eq!(validate_deployment(&d), Ok(()));
    }

    #[test]
    fn matches_selectors_with_expressions() {
        let mut d = podinfo();
        d["spec"]["selector"] =
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["podinfo"]}]});
        assert_eq!(validate_deployment(&d), Ok(()));
        d["spec"]["selector"]["matchExpressions"][0]["operator"] = json!("NotIn");
        assert!(validate_deployment(&d).is_err());
    }

    #[test]
    fn refuses_to_change_a_deployment_selector() {
        let old = podinfo();
        let mut new = podinfo();
        new["spec"]["selector"]["matchLabels"]["tier"] = json!("web");
        new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("web");
        let err = validate(&deployments(), &new, Some(&old)).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment.apps \"podinfo\" is invalid: spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"podinfo\",\"tier\":\"web\"}}: field is immutable"
        );
    }

    #[test]
    fn refuses_both_rolling_update_limits_at_zero() {
        let mut d = podinfo();
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}});
        let err = validate_deployment(&d).unwrap_err();
        assert!(
            err.message
                .ends_with("spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"),
            "{}",
            err.message
        );
    }

    #[test]
    fn defaults_a_service_with_a_stable_cluster_ip() {
        let services = kind("", "v1", "services");
        let mut s = json!({"metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        default_object(&services, &mut s);
        let ip = s["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert!(ip.starts_with("10."), "{ip}");
        let octets: Vec<u32> = ip.split('.').map(|o| o.parse().unwrap()).collect();
        let n = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3];
        assert_eq!(n >> 20, (10 << 4) | 6, "{ip} is outside 10.96.0.0/12");
        assert_eq!(
            s["spec"],
            json!({"selector": {"app": "web"}, "type": "ClusterIP", "sessionAffinity": "None",
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"})
        );
        let mut again = json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"ports": [{"port": 80}]}});
        default_object(&services, &mut again);
        assert_eq!(again["spec"]["clusterIP"], json!(ip));
        let mut headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}});
        default_object(&services, &mut headless);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn service_names_are_dns_1035_labels() {
        let services = kind("", "v1", "services");
        let s = json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}});
        let err = validate(&services, &s, None).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "Service \"1web\" is invalid: metadata.name: Invalid value: \"1web\": {DNS1035_LABEL_MSG}"
            )
        );
        assert!(err.details.unwrap().get("group").is_none());
    }

    #[test]
    fn services_need_ports_in_range_and_named_when_several() {
        let services = kind("", "v1", "services");
        let s = json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 0}, {"port": 81, "protocol": "HTTP"}]}});
        let err = validate(&services, &s, None).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"web\" is invalid: [spec.ports[0].name: Required value, spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[1].name: Required value, spec.ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"]"
        );
        let none = json!({"metadata": {"name": "web"}, "spec": {}});
        assert!(validate(&services, &none, None).is_err());
    }

    #[test]
    fn rbac_names_are_path_segments_so_colons_are_allowed() {
        let roles = kind("rbac.authorization.k8s.io", "v1", "clusterroles");
        let ok = json!({"metadata": {"name": "system:controller:sluice"}, "rules": []});
        assert!(validate(&roles, &ok, None).is_ok());
        let bad = json!({"metadata": {"name": "a/b"}, "rules": []});
        let err = validate(&roles, &bad, None).unwrap_err();
        assert_eq!(
            err.message,
            "ClusterRole.rbac.authorization.k8s.io \"a/b\" is invalid: metadata.name: Invalid value: \"a/b\": may not contain '/'"
        );
    }

    #[test]
    fn defaults_a_namespace_label_finalizer_and_phase() {
        let namespaces = kind("", "v1", "namespaces");
        let mut ns = json!({"metadata": {"name": "shop"}});
        default_object(&namespaces, &mut ns);
        assert_eq!(
            ns,
            json!({"metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        );
        let bad = json!({"metadata": {"name": "a.b"}});
        let err = validate(&namespaces, &bad, None).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "Namespace \"a.b\" is invalid: metadata.name: Invalid value: \"a.b\": {DNS1123_LABEL_MSG}"
            )
        );
    }

    fn webhook_config() -> Value {
        json!({"metadata": {"name": "sluice"}, "webhooks": [{
            "name": "mutate.sluice.dev", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": "sluice", "namespace": "sluice-system", "path": "/mutate"}},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}]
        }]})
    }

    #[test]
    fn defaults_mutating_webhooks_as_kube_does() {
        let mutating = kind(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
        );
        let mut w = webhook_config();
        default_object(&mutating, &mut w);
        let hook = &w["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["matchPolicy"], "Equivalent");
        assert_eq!(hook["namespaceSelector"], json!({}));
        assert_eq!(hook["objectSelector"], json!({}));
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(hook["reinvocationPolicy"], "Never");
        assert_eq!(hook["rules"][0]["scope"], "*");
        assert_eq!(hook["clientConfig"]["service"]["port"], 443);
        assert_eq!(validate(&mutating, &w, None), Ok(()));
        let validating = kind(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
        );
        let mut v = webhook_config();
        default_object(&validating, &mut v);
        assert!(v["webhooks"][0].get("reinvocationPolicy").is_none());
    }

    #[test]
    fn refuses_webhooks_without_side_effects_a_sane_timeout_one_endpoint_or_v1() {
        let validating = kind(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
        );
        let mut w = webhook_config();
        let hook = &mut w["webhooks"][0];
        hook.as_object_mut().unwrap().remove("sideEffects");
        hook["timeoutSeconds"] = json!(31);
        hook["clientConfig"]["url"] = json!("https://127.0.0.1:9443/validate");
        hook["admissionReviewVersions"] = json!(["v2"]);
        let err = validate(&validating, &w, None).unwrap_err();
        assert_eq!(
            err.message,
            "ValidatingWebhookConfiguration.admissionregistration.k8s.io \"sluice\" is invalid: [webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun, webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds, webhooks[0].clientConfig: Required value: exactly one of url or service is required, webhooks[0].admissionReviewVersions: Invalid value: [\"v2\"]: must include at least one of v1, v1beta1]"
        );
        let mut w = webhook_config();
        w["webhooks"][0]["sideEffects"] = json!("Some");
        let err = validate(&validating, &w, None).unwrap_err();
        assert!(
            err.message.ends_with(
                "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\""
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn prunes_defaults_and_validates_traffic_splits_by_version() {
        let v1alpha1 = kind("split.smi-spec.io", "v1alpha1", "trafficsplits");
        let v1alpha2 = kind("split.smi-spec.io", "v1alpha2", "trafficsplits");
        let mut ts = json!({"apiVersion": "split.smi-spec.io/v1alpha1", "kind": "TrafficSplit",
            "metadata": {"name": "web"},
            "spec": {"service": "web", "unknown": 1, "backends": [{"service": "web-primary", "weight": "900m"}]}});
        default_object(&v1alpha1, &mut ts);
        assert!(ts["spec"].get("unknown").is_none());
        assert_eq!(validate(&v1alpha1, &ts, None), Ok(()));
        let err = validate(&v1alpha2, &ts, None).unwrap_err();
        assert_eq!(
            err.message,
            "TrafficSplit.split.smi-spec.io \"web\" is invalid: spec.backends[0].weight: Invalid value: \"string\": spec.backends[0].weight in body must be of type number: \"string\""
        );
        assert_eq!(
            err.details.unwrap()["causes"][0]["reason"],
            "FieldValueTypeInvalid"
        );
    }

    #[test]
    fn defaults_http_route_backend_weights_from_the_crd() {
        let routes = kind("gateway.networking.k8s.io", "v1", "httproutes");
        let mut r = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web"},
            "spec": {"parentRefs": [{"name": "web", "kind": "Service", "group": ""}],
                     "rules": [{"backendRefs": [{"name": "web-primary", "port": 80}]}]}});
        default_object(&routes, &mut r);
        assert_eq!(r["spec"]["rules"][0]["backendRefs"][0]["weight"], 1);
        assert_eq!(r["spec"]["parentRefs"][0]["kind"], "Service");
        assert_eq!(validate(&routes, &r, None), Ok(()));
    }
}
