//! Which webhooks a request goes to, decided as kube-apiserver's `ShouldCallHook` decides:
//! `namespaceSelector`, `objectSelector`, `rules`, then `matchConditions` (CEL). Requests for
//! webhook configurations themselves never go to webhooks.
//!
//! Differences from kube-apiserver:
//! - `matchPolicy: Equivalent` is matched as `Exact`: a rule for one version of a resource does
//!   not catch requests made through another served version (kube-apiserver would convert the
//!   object and send it in the rule's version).
//! - `matchConditions` are evaluated by the CEL subset of [`super::cel`]; an expression outside
//!   it counts as an evaluation error (so `failurePolicy` decides) and says so.
//! - Invalid selectors and expressions are reported when a request is matched (as a 500 or
//!   a 403), worded close to the API server's validation messages; kube-apiserver refuses such
//!   configurations when they are written.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::{FailurePolicy, LabelSelector, Rule, Webhook};
use super::{AdmissionAttributes, cel, review};
use crate::sandbox::apiserver::status::ApiError;

/// A label selector that cannot be evaluated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct SelectorError(pub String);

impl LabelSelector {
    /// True when every `matchLabels` pair and every `matchExpressions` requirement holds for
    /// `labels`. The empty selector matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> Result<bool, SelectorError> {
        for (k, v) in &self.match_labels {
            if labels.get(k) != Some(v) {
                return Ok(false);
            }
        }
        for req in &self.match_expressions {
            let value = labels.get(&req.key);
            let holds = match req.operator.as_str() {
                "In" | "NotIn" => {
                    if req.values.is_empty() {
                        return Err(SelectorError(format!(
                            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty (key {:?})",
                            req.key
                        )));
                    }
                    let inside = value.is_some_and(|v| req.values.contains(v));
                    if req.operator == "In" {
                        inside
                    } else {
                        !inside
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !req.values.is_empty() {
                        return Err(SelectorError(format!(
                            "values: Invalid value: {:?}: values set must be empty for exists and does not exist (key {:?})",
                            req.values, req.key
                        )));
                    }
                    value.is_some() == (req.operator == "Exists")
                }
                other => {
                    return Err(SelectorError(format!(
                        "{other:?} is not a valid label selector operator"
                    )));
                }
            };
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// True for `{}`, which kube-apiserver short-cuts to "everything".
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

fn exact_or_wildcard(items: &[String], requested: &str) -> bool {
    items.iter().any(|i| i == "*" || i == requested)
}

fn is_namespace_resource(attrs: &AdmissionAttributes) -> bool {
    attrs.kind.group.is_empty() && attrs.kind.version == "v1" && attrs.kind.plural == "namespaces"
}

fn namespace_of(attrs: &AdmissionAttributes) -> &str {
    attrs.namespace.as_deref().unwrap_or("")
}

/// One rule against one request: scope, operation, group, version and resource/subresource.
pub fn rule_matches(rule: &Rule, attrs: &AdmissionAttributes) -> bool {
    let scope = match rule.scope.as_deref() {
        None | Some("*") => true,
        Some("Namespaced") => !is_namespace_resource(attrs) && !namespace_of(attrs).is_empty(),
        Some("Cluster") => is_namespace_resource(attrs) || namespace_of(attrs).is_empty(),
        Some(_) => false,
    };
    let operation = rule
        .operations
        .iter()
        .any(|op| op == "*" || op == attrs.operation.as_str());
    let sub = attrs.sub_resource.as_deref().unwrap_or("");
    let resource = rule.resources.iter().any(|r| {
        let (res, rsub) = r.split_once('/').unwrap_or((r.as_str(), ""));
        (res == "*" || res == attrs.kind.plural) && (rsub == "*" || rsub == sub)
    });
    scope
        && operation
        && exact_or_wildcard(&rule.api_groups, attrs.kind.group)
        && exact_or_wildcard(&rule.api_versions, attrs.kind.version)
        && resource
}

/// The labels of `object.metadata.labels` (string values only).
pub fn labels_of(object: Option<&Value>) -> Option<BTreeMap<String, String>> {
    let object = object.filter(|o| o.is_object())?;
    let labels = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Some(labels)
}

/// `namespaceSelector`: cluster-scoped objects other than Namespaces always match; a Namespace
/// being created or updated is matched by its own (new) labels; everything else by the labels
/// of its Namespace.
pub fn namespace_selector_matches(
    hook: &Webhook,
    attrs: &AdmissionAttributes,
    object: Option<&Value>,
) -> Result<bool, SelectorError> {
    let is_namespace = is_namespace_resource(attrs);
    if namespace_of(attrs).is_empty() && !is_namespace {
        return Ok(true);
    }
    if hook.namespace_selector.is_empty() {
        return Ok(true);
    }
    let own_labels = if is_namespace
        && attrs.sub_resource.is_none()
        && matches!(
            attrs.operation,
            super::Operation::Create | super::Operation::Update
        ) {
        labels_of(object)
    } else {
        None
    };
    hook.namespace_selector
        .matches(own_labels.as_ref().unwrap_or(&attrs.namespace_labels))
}

/// `objectSelector`: matches when the labels of the new object or of the old object match.
pub fn object_selector_matches(
    hook: &Webhook,
    object: Option<&Value>,
    old_object: Option<&Value>,
) -> Result<bool, SelectorError> {
    if hook.object_selector.is_empty() {
        return Ok(true);
    }
    for labels in [labels_of(object), labels_of(old_object)]
        .into_iter()
        .flatten()
    {
        if hook.object_selector.matches(&labels)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Requests that no webhook sees, so that a broken webhook can always be deregistered:
/// webhook configurations and admission policies.
pub fn is_exempt(attrs: &AdmissionAttributes) -> bool {
    attrs.kind.group == "admissionregistration.k8s.io"
        && matches!(
            attrs.kind.plural,
            "mutatingwebhookconfigurations"
                | "validatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
                | "mutatingadmissionpolicies"
                | "mutatingadmissionpolicybindings"
        )
}

/// `deployments.apps "podinfo" is forbidden: DETAIL`, as `apierrors.NewForbidden` words it.
fn forbidden(attrs: &AdmissionAttributes, detail: &str) -> ApiError {
    let resource = attrs.kind.group_resource();
    let message = if attrs.name.is_empty() {
        format!("{resource} is forbidden: {detail}")
    } else {
        format!("{resource} {:?} is forbidden: {detail}", attrs.name)
    };
    let mut details = serde_json::json!({ "name": attrs.name, "kind": attrs.kind.plural });
    if !attrs.kind.group.is_empty() {
        details["group"] = serde_json::json!(attrs.kind.group);
    }
    ApiError::forbidden(message).with_details(details)
}

/// `matchConditions`: skipped if any is false; with errors and none false, `failurePolicy`
/// decides (Fail refuses the request with a 403, Ignore skips the webhook).
pub fn match_conditions_hold(
    hook: &Webhook,
    attrs: &AdmissionAttributes,
    object: Option<&Value>,
) -> Result<bool, ApiError> {
    if hook.match_conditions.is_empty() {
        return Ok(true);
    }
    let mut request = review::build_review("admission.k8s.io/v1", "", attrs, None);
    let mut request = request["request"].take();
    if let Some(r) = request.as_object_mut() {
        r.remove("object");
        r.remove("oldObject");
    }
    let vars = BTreeMap::from([
        ("object", object.cloned().unwrap_or(Value::Null)),
        ("oldObject", attrs.old_object.clone().unwrap_or(Value::Null)),
        ("request", request),
    ]);
    let mut errors = Vec::new();
    for condition in &hook.match_conditions {
        match cel::evaluate(&condition.expression, &vars) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => errors.push(format!(
                "expression '{}' resulted in error: {e}",
                condition.expression
            )),
        }
    }
    match (errors.len(), hook.failure_policy) {
        (0, _) => Ok(true),
        (_, FailurePolicy::Ignore) => {
            tracing::warn!(webhook = %hook.name, errors = ?errors, "matchConditions failed; skipping the webhook (failurePolicy Ignore)");
            Ok(false)
        }
        (1, FailurePolicy::Fail) => Err(forbidden(attrs, &errors[0])),
        (_, FailurePolicy::Fail) => Err(forbidden(attrs, &format!("[{}]", errors.join(", ")))),
    }
}

/// Whether `hook` is called for this request, given the object as mutated so far. As in
/// kube-apiserver, a selector that does not match, or rules that do not, win over a selector
/// that cannot be evaluated; `matchConditions` come last.
pub fn should_call(
    hook: &Webhook,
    attrs: &AdmissionAttributes,
    object: Option<&Value>,
) -> Result<bool, ApiError> {
    if is_exempt(attrs) {
        return Ok(false);
    }
    let ns = namespace_selector_matches(hook, attrs, object);
    if ns == Ok(false) {
        return Ok(false);
    }
    let obj = object_selector_matches(hook, object, attrs.old_object.as_ref());
    if obj == Ok(false) {
        return Ok(false);
    }
    if !hook.rules.iter().any(|r| rule_matches(r, attrs)) {
        return Ok(false);
    }
    let internal = |e: SelectorError| {
        ApiError::internal(format!(
            "webhook {:?} of {:?}: {e}",
            hook.name, hook.configuration
        ))
    };
    ns.map_err(internal)?;
    obj.map_err(internal)?;
    match_conditions_hold(hook, attrs, object)
}

#[cfg(test)]
mod tests {
    use super::super::config::{Requirement, webhooks};
    use super::super::{Operation, mk_attrs};
    use super::*;
    use serde_json::json;

    fn attrs(
        group: &str,
        plural: &str,
        sub: Option<&str>,
        ns: Option<&str>,
    ) -> AdmissionAttributes {
        AdmissionAttributes {
            sub_resource: sub.map(str::to_string),
            namespace: ns.map(str::to_string),
            object: Some(json!({ "metadata": { "labels": { "app": "podinfo" } } })),
            namespace_labels: BTreeMap::from([("sluice.dev/canary".into(), "enabled".into())]),
            ..mk_attrs(group, plural, Operation::Update)
        }
    }

    fn rule(resources: &[&str], scope: Option<&str>) -> Rule {
        Rule {
            operations: vec!["CREATE".into(), "UPDATE".into()],
            api_groups: vec!["*".into()],
            api_versions: vec!["v1".into()],
            resources: resources.iter().map(|s| s.to_string()).collect(),
            scope: scope.map(str::to_string),
        }
    }

    fn hook(extra: Value) -> Webhook {
        let mut h = json!({
            "name": "h.sluice.dev",
            "clientConfig": { "url": "https://127.0.0.1:1/" },
            "rules": [{ "operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"] }],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        });
        h.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let cfg = json!({ "metadata": { "name": "c" }, "webhooks": [h] });
        webhooks("MutatingWebhookConfiguration", &[cfg])
            .unwrap()
            .remove(0)
    }

    #[test]
    fn a_plain_resource_rule_does_not_catch_its_subresources() {
        let scale = attrs("apps", "deployments", Some("scale"), Some("shop"));
        assert!(!rule_matches(&rule(&["deployments"], None), &scale));
        assert!(rule_matches(&rule(&["deployments/scale"], None), &scale));
        assert!(rule_matches(&rule(&["deployments/*"], None), &scale));
        assert!(rule_matches(&rule(&["*/*"], None), &scale));
        assert!(!rule_matches(&rule(&["*"], None), &scale));
        assert!(!rule_matches(&rule(&["deployments/status"], None), &scale));
    }

    #[test]
    fn a_subresource_rule_does_not_catch_the_main_resource() {
        let main = attrs("apps", "deployments", None, Some("shop"));
        assert!(rule_matches(&rule(&["deployments"], None), &main));
        assert!(rule_matches(&rule(&["*"], None), &main));
        assert!(!rule_matches(&rule(&["deployments/scale"], None), &main));
        assert!(!rule_matches(&rule(&["services"], None), &main));
    }

    #[test]
    fn operations_groups_and_versions_must_all_match() {
        let main = attrs("apps", "deployments", None, Some("shop"));
        let mut r = rule(&["deployments"], None);
        r.operations = vec!["CREATE".into()];
        assert!(!rule_matches(&r, &main));
        let mut r = rule(&["deployments"], None);
        r.api_groups = vec!["".into()];
        assert!(!rule_matches(&r, &main));
        let mut r = rule(&["deployments"], None);
        r.api_versions = vec!["v1beta1".into()];
        assert!(!rule_matches(&r, &main));
    }

    #[test]
    fn scope_separates_namespaced_from_cluster_objects_and_namespaces_are_cluster_scoped() {
        let deploy = attrs("apps", "deployments", None, Some("shop"));
        let ns = attrs("", "namespaces", None, Some("shop"));
        let all = rule(&["*"], None);
        assert!(rule_matches(
            &Rule {
                scope: Some("Namespaced".into()),
                ..all.clone()
            },
            &deploy
        ));
        assert!(!rule_matches(
            &Rule {
                scope: Some("Cluster".into()),
                ..all.clone()
            },
            &deploy
        ));
        assert!(!rule_matches(
            &Rule {
                scope: Some("Namespaced".into()),
                ..all.clone()
            },
            &ns
        ));
        assert!(rule_matches(
            &Rule {
                scope: Some("Cluster".into()),
                ..all
            },
            &ns
        ));
    }

    #[test]
    fn selectors_evaluate_match_labels_and_every_operator() {
        let labels = BTreeMap::from([("app".to_string(), "podinfo".to_string())]);
        let sel = |op: &str, values: &[&str]| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![Requirement {
                key: "app".into(),
                operator: op.into(),
                values: values.iter().map(|s| s.to_string()).collect(),
            }],
        };
        assert_eq!(sel("In", &["podinfo", "x"]).matches(&labels), Ok(true));
        assert_eq!(sel("In", &["x"]).matches(&labels), Ok(false));
        assert_eq!(sel("NotIn", &["x"]).matches(&labels), Ok(true));
        assert_eq!(sel("NotIn", &["podinfo"]).matches(&labels), Ok(false));
        assert_eq!(sel("NotIn", &["x"]).matches(&BTreeMap::new()), Ok(true));
        assert_eq!(sel("Exists", &[]).matches(&labels), Ok(true));
        assert_eq!(sel("DoesNotExist", &[]).matches(&labels), Ok(false));
        assert!(sel("In", &[]).matches(&labels).is_err());
        assert!(sel("Exists", &["x"]).matches(&labels).is_err());
        assert!(sel("Near", &[]).matches(&labels).is_err());
        let ml = LabelSelector {
            match_labels: BTreeMap::from([("app".into(), "other".into())]),
            match_expressions: vec![],
        };
        assert_eq!(ml.matches(&labels), Ok(false));
        assert_eq!(LabelSelector::default().matches(&BTreeMap::new()), Ok(true));
    }

    #[test]
    fn namespace_selector_reads_the_namespace_labels() {
        let a = attrs("apps", "deployments", None, Some("shop"));
        let yes = hook(
            json!({ "namespaceSelector": { "matchLabels": { "sluice.dev/canary": "enabled" } } }),
        );
        let no =
            hook(json!({ "namespaceSelector": { "matchLabels": { "sluice.dev/canary": "off" } } }));
        assert_eq!(should_call(&yes, &a, a.object.as_ref()), Ok(true));
        assert_eq!(should_call(&no, &a, a.object.as_ref()), Ok(false));
    }

    #[test]
    fn namespace_selector_never_exempts_other_cluster_scoped_objects() {
        let mut a = attrs(
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            None,
            None,
        );
        a.namespace_labels.clear();
        let h = hook(json!({ "namespaceSelector": { "matchLabels": { "x": "y" } } }));
        // (Webhook configurations are exempt from webhooks altogether; the selector alone is
        // what is checked here.)
        assert_eq!(
            namespace_selector_matches(&h, &a, a.object.as_ref()),
            Ok(true)
        );
    }

    #[test]
    fn a_namespace_is_matched_by_its_own_new_labels() {
        let mut a = attrs("", "namespaces", None, Some("shop"));
        a.namespace_labels.clear();
        let new =
            json!({ "metadata": { "name": "shop", "labels": { "sluice.dev/canary": "enabled" } } });
        let h = hook(
            json!({ "namespaceSelector": { "matchLabels": { "sluice.dev/canary": "enabled" } } }),
        );
        assert_eq!(should_call(&h, &a, Some(&new)), Ok(true));
        assert_eq!(
            should_call(&h, &a, Some(&json!({ "metadata": {} }))),
            Ok(false)
        );
    }

    #[test]
    fn object_selector_matches_the_new_or_the_old_object() {
        let mut a = attrs("apps", "deployments", None, Some("shop"));
        let h = hook(json!({ "objectSelector": { "matchLabels": { "tier": "web" } } }));
        assert_eq!(should_call(&h, &a, a.object.as_ref()), Ok(false));
        a.old_object = Some(json!({ "metadata": { "labels": { "tier": "web" } } }));
        assert_eq!(should_call(&h, &a, a.object.as_ref()), Ok(true));
        a.old_object = None;
        let new = json!({ "metadata": { "labels": { "tier": "web" } } });
        assert_eq!(should_call(&h, &a, Some(&new)), Ok(true));
    }

    #[test]
    fn a_non_matching_selector_wins_over_an_invalid_one() {
        let a = attrs("apps", "deployments", None, Some("shop"));
        let h = hook(json!({
            "namespaceSelector": { "matchLabels": { "sluice.dev/canary": "off" } },
            "objectSelector": { "matchExpressions": [{ "key": "app", "operator": "Near" }] },
        }));
        assert_eq!(should_call(&h, &a, a.object.as_ref()), Ok(false));
        let h = hook(json!({
            "objectSelector": { "matchExpressions": [{ "key": "app", "operator": "Near" }] },
        }));
        let e = should_call(&h, &a, a.object.as_ref()).unwrap_err();
        assert_eq!(
            e.message,
            "Internal error occurred: webhook \"h.sluice.dev\" of \"c\": \"Near\" is not a valid label selector operator"
        );
        // Rules that do not match win too.
        let h = hook(json!({
            "objectSelector": { "matchExpressions": [{ "key": "app", "operator": "Near" }] },
            "rules": [{ "operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["services"] }],
        }));
        assert_eq!(should_call(&h, &a, a.object.as_ref()), Ok(false));
    }

    #[test]
    fn webhook_configurations_never_go_to_webhooks() {
        let a = attrs(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            None,
            None,
        );
        assert_eq!(should_call(&hook(json!({})), &a, None), Ok(false));
    }

    fn with_conditions(policy: &str, expressions: &[&str]) -> Webhook {
        hook(json!({
            "failurePolicy": policy,
            "matchConditions": expressions.iter().enumerate()
                .map(|(i, e)| json!({ "name": format!("c{i}"), "expression": e }))
                .collect::<Vec<_>>(),
        }))
    }

    #[test]
    fn match_conditions_see_the_request_and_the_object() {
        let a = attrs("apps", "deployments", None, Some("shop"));
        let h = with_conditions(
            "Fail",
            &[
                "request.userInfo.username == 'admin'",
                "request.resource.resource == 'deployments' && request.namespace == 'shop'",
                "object.metadata.labels.app == 'podinfo'",
            ],
        );
        assert_eq!(should_call(&h, &a, a.object.as_ref()), Ok(true));
        let h = with_conditions("Fail", &["request.userInfo.username != 'admin'"]);
        assert_eq!(should_call(&h, &a, a.object.as_ref()), Ok(false));
    }

    #[test]
    fn a_false_condition_wins_over_an_erroring_one() {
        let a = attrs("apps", "deployments", None, Some("shop"));
        let h = with_conditions("Fail", &["object.nope == 1", "false"]);
        assert_eq!(should_call(&h, &a, a.object.as_ref()), Ok(false));
    }

    #[test]
    fn an_erroring_condition_follows_the_failure_policy() {
        let a = attrs("apps", "deployments", None, Some("shop"));
        let h = with_conditions("Fail", &["object.nope == 1"]);
        let e = should_call(&h, &a, a.object.as_ref()).unwrap_err();
        assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            e.message,
            "deployments.apps \"podinfo\" is forbidden: expression 'object.nope == 1' resulted in error: no such key: nope"
        );
        let h = with_conditions("Ignore", &["object.nope == 1"]);
        assert_eq!(should_call(&h, &a, a.object.as_ref()), Ok(false));
    }
}
