//! Sluice's vocabulary on Kubernetes objects: every label and annotation key, defined once and
//! used by the webhook, the controller, the CLI and the docs.

/// Prefix of every Sluice label and annotation.
pub const PREFIX: &str = "sluice.dev/";

/// Label that opts a Deployment or Namespace in (`enabled`) or a Deployment out (`disabled`).
pub const OPT_IN_LABEL: &str = "sluice.dev/canary";
/// Label Sluice writes with the rollout phase (`kubectl get deploy -L sluice.dev/phase`).
pub const PHASE_LABEL: &str = "sluice.dev/phase";
/// Annotation Sluice writes with the rollout status (JSON).
pub const STATUS_ANNOTATION: &str = "sluice.dev/status";
/// Annotation the mutating webhook writes on intercept: the stable pod template (JSON).
pub const STABLE_TEMPLATE_ANNOTATION: &str = "sluice.dev/stable-template";
/// Annotation on the apex Service holding its own selector (JSON) while Sluice points it at
/// the primary.
pub const APEX_SELECTOR_ANNOTATION: &str = "sluice.dev/apex-selector";

/// Every label and annotation key Sluice itself writes on objects. The validating webhook lets
/// these through on Deployments (users re-apply manifests that carry them) and nowhere else.
pub const WRITTEN: [&str; 4] = [
    STATUS_ANNOTATION,
    STABLE_TEMPLATE_ANNOTATION,
    PHASE_LABEL,
    APEX_SELECTOR_ANNOTATION,
];

/// A policy setting (DESIGN §2), settable on Deployments, Namespaces and the cluster policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Setting {
    Strategy,
    Router,
    Ingress,
    Service,
    Interval,
    StepWeight,
    StepWeights,
    MaxWeight,
    Iterations,
    Threshold,
    SuccessRate,
    LatencyP99,
    MinRequests,
    Baseline,
    BaselineTolerance,
    BaselineLatencyRatio,
    Metrics,
    Webhooks,
    Match,
    ProgressDeadline,
    Freeze,
    Notify,
}

impl Setting {
    /// Every setting, in the order DESIGN §2 lists them.
    pub const ALL: [Setting; 22] = [
        Setting::Strategy,
        Setting::Router,
        Setting::Ingress,
        Setting::Service,
        Setting::Interval,
        Setting::StepWeight,
        Setting::StepWeights,
        Setting::MaxWeight,
        Setting::Iterations,
        Setting::Threshold,
        Setting::SuccessRate,
        Setting::LatencyP99,
        Setting::MinRequests,
        Setting::Baseline,
        Setting::BaselineTolerance,
        Setting::BaselineLatencyRatio,
        Setting::Metrics,
        Setting::Webhooks,
        Setting::Match,
        Setting::ProgressDeadline,
        Setting::Freeze,
        Setting::Notify,
    ];

    /// The key without the prefix (`step-weight`), as the policy ConfigMap's data keys use it.
    pub fn as_str(self) -> &'static str {
        match self {
            Setting::Strategy => "strategy",
            Setting::Router => "router",
            Setting::Ingress => "ingress",
            Setting::Service => "service",
            Setting::Interval => "interval",
            Setting::StepWeight => "step-weight",
            Setting::StepWeights => "step-weights",
            Setting::MaxWeight => "max-weight",
            Setting::Iterations => "iterations",
            Setting::Threshold => "threshold",
            Setting::SuccessRate => "success-rate",
            Setting::LatencyP99 => "latency-p99",
            Setting::MinRequests => "min-requests",
            Setting::Baseline => "baseline",
            Setting::BaselineTolerance => "baseline-tolerance",
            Setting::BaselineLatencyRatio => "baseline-latency-ratio",
            Setting::Metrics => "metrics",
            Setting::Webhooks => "webhooks",
            Setting::Match => "match",
            Setting::ProgressDeadline => "progress-deadline",
            Setting::Freeze => "freeze",
            Setting::Notify => "notify",
        }
    }

    /// The annotation key (`sluice.dev/step-weight`).
    pub fn annotation(self) -> String {
        format!("{PREFIX}{}", self.as_str())
    }
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Setting {
    type Err = UnknownKey;

    /// Accepts the key with or without the `sluice.dev/` prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s.strip_prefix(PREFIX).unwrap_or(s);
        Setting::ALL
            .into_iter()
            .find(|k| k.as_str() == bare)
            .ok_or_else(|| UnknownKey(s.to_string()))
    }
}

/// A control annotation a person sets to steer a rollout (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Control {
    Pause,
    Resume,
    Promote,
    Abort,
    Retry,
    BreakGlass,
}

impl Control {
    pub const ALL: [Control; 6] = [
        Control::Pause,
        Control::Resume,
        Control::Promote,
        Control::Abort,
        Control::Retry,
        Control::BreakGlass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Promote => "promote",
            Control::Abort => "abort",
            Control::Retry => "retry",
            Control::BreakGlass => "break-glass",
        }
    }

    /// The annotation key (`sluice.dev/retry`).
    pub fn annotation(self) -> String {
        format!("{PREFIX}{}", self.as_str())
    }
}

/// A `sluice.dev/` key that is not part of the vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Sluice key")]
pub struct UnknownKey(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_round_trips_through_its_key() {
        for k in Setting::ALL {
            assert_eq!(k.as_str().parse::<Setting>().unwrap(), k);
            assert_eq!(k.annotation().parse::<Setting>().unwrap(), k);
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!("sluice.dev/stepweight".parse::<Setting>().is_err());
        assert!("".parse::<Setting>().is_err());
    }

    #[test]
    fn control_annotations_carry_the_prefix() {
        assert_eq!(Control::BreakGlass.annotation(), "sluice.dev/break-glass");
    }
}
