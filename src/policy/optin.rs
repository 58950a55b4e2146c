//! The opt-in rule (DESIGN §2): which Deployments Sluice manages, with the sentence
//! `sluice explain` prints to say why.
//!
//! ```text
//! Deployment label sluice.dev/canary ─┬─ enabled  ─────────────────────────────► managed
//!                                     ├─ disabled ─────────────────────────────► not managed
//!                                     └─ absent / other ─┬─ Namespace enabled ─► managed
//!                                                        └─ otherwise ─────────► not managed
//! ```
//!
//! Only the exact values `enabled` and `disabled` count, as DESIGN says; any other value on the
//! Deployment is neither an opt-in nor an opt-out, and the reason says so.

use std::collections::BTreeMap;

use super::keys::OPT_IN_LABEL;

const ENABLED: &str = "enabled";
const DISABLED: &str = "disabled";

/// Whether Sluice manages a Deployment, with a sentence saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Managed {
    Yes(String),
    No(String),
}

impl Managed {
    /// True for [`Managed::Yes`].
    pub fn is_managed(&self) -> bool {
        matches!(self, Managed::Yes(_))
    }

    /// The sentence explaining the decision.
    pub fn reason(&self) -> &str {
        match self {
            Managed::Yes(r) | Managed::No(r) => r,
        }
    }
}

/// Applies the opt-in rule to the labels of a Deployment and of its Namespace.
pub fn managed(
    deployment_labels: &BTreeMap<String, String>,
    namespace_labels: &BTreeMap<String, String>,
) -> Managed {
    let on_deploy = deployment_labels.get(OPT_IN_LABEL).map(String::as_str);
    let on_ns = namespace_labels.get(OPT_IN_LABEL).map(String::as_str);
    match (on_deploy, on_ns) {
        (Some(ENABLED), _) => Managed::Yes(format!(
            "managed: the Deployment carries the label {OPT_IN_LABEL}: {ENABLED}"
        )),
        (Some(DISABLED), Some(ENABLED)) => Managed::No(format!(
            "not managed: the Namespace opts in, but the Deployment opts out with the label \
             {OPT_IN_LABEL}: {DISABLED}"
        )),
        (Some(DISABLED), _) => Managed::No(format!(
            "not managed: the Deployment opts out with the label {OPT_IN_LABEL}: {DISABLED}"
        )),
        (Some(other), Some(ENABLED)) => Managed::Yes(format!(
            "managed: the Namespace carries the label {OPT_IN_LABEL}: {ENABLED} (the \
             Deployment's value {other:?} is neither {ENABLED} nor {DISABLED}, so it does not \
             opt out)"
        )),
        (None, Some(ENABLED)) => Managed::Yes(format!(
            "managed: the Namespace carries the label {OPT_IN_LABEL}: {ENABLED}"
        )),
        (Some(other), _) => Managed::No(format!(
            "not managed: the Deployment's label {OPT_IN_LABEL} is {other:?}, which is neither \
             {ENABLED} nor {DISABLED}; set it to {ENABLED} to opt in"
        )),
        (None, _) => Managed::No(format!(
            "not managed: neither the Deployment nor its Namespace carries the label \
             {OPT_IN_LABEL}: {ENABLED}; add it to either to opt in"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: Option<&str>) -> BTreeMap<String, String> {
        v.map(|v| (OPT_IN_LABEL.to_string(), v.to_string()))
            .into_iter()
            .collect()
    }

    #[test]
    fn a_deployment_opts_in_with_its_own_label() {
        let m = managed(&labels(Some("enabled")), &labels(None));
        assert!(m.is_managed());
        assert!(m.reason().contains("Deployment carries"), "{}", m.reason());
    }

    #[test]
    fn a_namespace_opts_in_every_deployment_without_a_label() {
        let m = managed(&labels(None), &labels(Some("enabled")));
        assert!(m.is_managed());
        assert!(m.reason().contains("Namespace carries"), "{}", m.reason());
    }

    #[test]
    fn a_deployment_opts_out_of_an_enabled_namespace() {
        let m = managed(&labels(Some("disabled")), &labels(Some("enabled")));
        assert!(!m.is_managed());
        assert!(m.reason().contains("opts out"), "{}", m.reason());
    }

    #[test]
    fn nothing_is_managed_without_a_label() {
        let m = managed(&labels(None), &labels(None));
        assert!(!m.is_managed());
        assert!(m.reason().contains("add it"), "{}", m.reason());
        assert!(!managed(&labels(None), &labels(Some("disabled"))).is_managed());
    }

    #[test]
    fn an_unrecognised_deployment_value_neither_opts_in_nor_out() {
        let alone = managed(&labels(Some("true")), &labels(None));
        assert!(!alone.is_managed());
        assert!(alone.reason().contains("\"true\""), "{}", alone.reason());
        assert!(managed(&labels(Some("true")), &labels(Some("enabled"))).is_managed());
    }

    #[test]
    fn the_deployment_label_wins_over_a_disabled_namespace() {
        assert!(managed(&labels(Some("enabled")), &labels(Some("disabled"))).is_managed());
    }
}
