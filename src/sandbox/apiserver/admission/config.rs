//! Webhook configurations as stored: `MutatingWebhookConfiguration` and
//! `ValidatingWebhookConfiguration` objects read into typed webhooks, with the defaults the
//! `admissionregistration.k8s.io/v1` API applies and in the order kube-apiserver calls them
//! (configurations sorted by name, webhooks in their listed order).
//!
//! Differences from kube-apiserver: the API server validates configurations when they are
//! written; here a configuration that cannot be read at all is reported when it is used, and
//! unknown enum values (`failurePolicy: Sometimes`) fall back to the API default instead of
//! being refused.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `failurePolicy`: what a call that fails (timeout, refused, bad TLS, bad answer) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Refuse the request with a 500 `InternalError` (the default).
    Fail,
    /// Go on as if the webhook did not exist.
    Ignore,
}

impl FailurePolicy {
    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("Ignore") => Self::Ignore,
            _ => Self::Fail,
        }
    }
}

/// `sideEffects`: whether a webhook may be called for a dry-run request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SideEffects {
    /// Not set at all (only possible for objects stored without defaulting).
    Unset,
    /// `None` or `NoneOnDryRun`: safe to call for a dry run.
    SafeForDryRun,
    /// `Unknown`, `Some` or anything else: never called for a dry run.
    Unsafe(String),
}

/// One `rules` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT` or `*`.
    #[serde(default)]
    pub operations: Vec<String>,
    /// API groups (`""` for core) or `*`.
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// Versions or `*`.
    #[serde(default)]
    pub api_versions: Vec<String>,
    /// `deployments`, `deployments/scale`, `deployments/*`, `*`, `*/*`.
    #[serde(default)]
    pub resources: Vec<String>,
    /// `Cluster`, `Namespaced` or `*` (the default).
    pub scope: Option<String>,
}

/// One `matchExpressions` entry of a label selector.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Requirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Required for `In`/`NotIn`, empty for `Exists`/`DoesNotExist`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A `metav1.LabelSelector`: `matchLabels` and `matchExpressions`, all of which must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

/// One `matchConditions` entry: a named CEL expression that must hold for the webhook to be
/// called.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MatchCondition {
    #[serde(default)]
    pub name: String,
    pub expression: String,
}

/// `clientConfig.service`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ServiceReference {
    pub namespace: String,
    pub name: String,
    /// URL path; `/` when absent.
    pub path: Option<String>,
    /// 443 when absent.
    pub port: Option<i64>,
}

/// `clientConfig`: where the webhook is and which CA signs its certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// `https://host:port/path`, used as written.
    pub url: Option<String>,
    /// A Service, reached as `NAME.NAMESPACE.svc`.
    pub service: Option<ServiceReference>,
    /// Base64 of PEM certificates, as the JSON of a `[]byte` field carries it.
    pub ca_bundle: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawWebhook {
    name: String,
    #[serde(default)]
    client_config: ClientConfig,
    #[serde(default)]
    rules: Vec<Rule>,
    failure_policy: Option<String>,
    match_policy: Option<String>,
    namespace_selector: Option<LabelSelector>,
    object_selector: Option<LabelSelector>,
    side_effects: Option<String>,
    timeout_seconds: Option<i64>,
    #[serde(default)]
    admission_review_versions: Vec<String>,
    reinvocation_policy: Option<String>,
    #[serde(default)]
    match_conditions: Vec<MatchCondition>,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct RawConfiguration {
    metadata: RawMetadata,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
}

/// One webhook of one configuration, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// `CONFIGURATION/INDEX`: identifies the webhook across reinvocation rounds.
    pub id: String,
    /// Name of the configuration the webhook belongs to.
    pub configuration: String,
    /// The webhook's own name, as denial and failure messages quote it.
    pub name: String,
    pub client_config: ClientConfig,
    pub rules: Vec<Rule>,
    /// `Fail` when absent.
    pub failure_policy: FailurePolicy,
    /// `Exact` or `Equivalent` (the default); both are matched exactly here.
    pub match_policy: String,
    /// `{}` (everything) when absent, as the API defaults it.
    pub namespace_selector: LabelSelector,
    pub object_selector: LabelSelector,
    /// Decides whether a dry-run request may reach the webhook.
    pub side_effects: SideEffects,
    /// 10 when absent.
    pub timeout_seconds: i64,
    /// Review versions the webhook accepts, in its order of preference.
    pub admission_review_versions: Vec<String>,
    /// `reinvocationPolicy: IfNeeded` (mutating webhooks only).
    pub reinvoke_if_needed: bool,
    /// CEL conditions that must all hold for the webhook to be called.
    pub match_conditions: Vec<MatchCondition>,
}

/// A configuration that could not be read; the message names it and says what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{kind} {name:?} cannot be read: {detail}; fix or delete the configuration")]
pub struct ConfigError {
    /// `MutatingWebhookConfiguration` or `ValidatingWebhookConfiguration`.
    pub kind: &'static str,
    pub name: String,
    /// What serde found wrong.
    pub detail: String,
}

/// Reads `configs` (objects of `kind`, JSON as stored) into webhooks in calling order:
/// configurations sorted by name, then each configuration's webhooks in order.
pub fn webhooks(kind: &'static str, configs: &[Value]) -> Result<Vec<Webhook>, ConfigError> {
    let mut parsed = Vec::with_capacity(configs.len());
    for config in configs {
        let raw = RawConfiguration::deserialize(config).map_err(|e| ConfigError {
            kind,
            name: config
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            detail: e.to_string(),
        })?;
        parsed.push(raw);
    }
    parsed.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = Vec::new();
    for config in parsed {
        for (index, raw) in config.webhooks.into_iter().enumerate() {
            out.push(Webhook {
                id: format!("{}/{index}", config.metadata.name),
                configuration: config.metadata.name.clone(),
                name: raw.name,
                client_config: raw.client_config,
                rules: raw.rules,
                failure_policy: FailurePolicy::parse(raw.failure_policy.as_deref()),
                match_policy: raw.match_policy.unwrap_or_else(|| "Equivalent".into()),
                namespace_selector: raw.namespace_selector.unwrap_or_default(),
                object_selector: raw.object_selector.unwrap_or_default(),
                side_effects: match raw.side_effects.as_deref() {
                    None => SideEffects::Unset,
                    Some("None") | Some("NoneOnDryRun") => SideEffects::SafeForDryRun,
                    Some(other) => SideEffects::Unsafe(other.to_string()),
                },
                timeout_seconds: raw.timeout_seconds.unwrap_or(10),
                admission_review_versions: raw.admission_review_versions,
                reinvoke_if_needed: raw.reinvocation_policy.as_deref() == Some("IfNeeded"),
                match_conditions: raw.match_conditions,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(name: &str, hooks: &[&str]) -> Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": { "name": name },
            "webhooks": hooks.iter().map(|h| json!({
                "name": h,
                "clientConfig": { "url": "https://127.0.0.1:1/x" },
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            })).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn orders_configurations_by_name_and_keeps_webhook_order() {
        let hooks = webhooks(
            "MutatingWebhookConfiguration",
            &[config("b", &["b1", "b2"]), config("a", &["a2", "a1"])],
        )
        .unwrap();
        let names: Vec<_> = hooks.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["a2", "a1", "b1", "b2"]);
        assert_eq!(hooks[1].id, "a/1");
    }

    #[test]
    fn applies_the_api_defaults() {
        let hooks = webhooks("MutatingWebhookConfiguration", &[config("a", &["h"])]).unwrap();
        let h = &hooks[0];
        assert_eq!(h.failure_policy, FailurePolicy::Fail);
        assert_eq!(h.timeout_seconds, 10);
        assert_eq!(h.namespace_selector, LabelSelector::default());
        assert!(!h.reinvoke_if_needed);
        assert_eq!(h.side_effects, SideEffects::SafeForDryRun);
    }

    #[test]
    fn an_unreadable_configuration_is_named_in_the_error() {
        let bad = json!({ "metadata": { "name": "broken" }, "webhooks": [{ "name": 3 }] });
        let err = webhooks("ValidatingWebhookConfiguration", &[bad]).unwrap_err();
        assert_eq!(err.name, "broken");
        assert!(
            err.to_string()
                .starts_with("ValidatingWebhookConfiguration \"broken\" cannot be read"),
            "{err}"
        );
    }
}
