//! Rollout state as it lives on the Deployment: the phase (also the `sluice.dev/phase` label)
//! and the `sluice.dev/status` annotation. Nothing else holds state, so a controller that
//! restarts resumes from the objects alone (DESIGN §7.3).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::policy::keys::{Control, STATUS_ANNOTATION};

/// Where a managed Deployment is in its lifecycle (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Initialized,
    Preparing,
    Progressing,
    Paused,
    WaitingPromotion,
    Promoting,
    RollingBack,
    Succeeded,
    Failed,
    /// Needs a person: no apex Service, route API not served, ...; the reason is in the status.
    Blocked,
}

impl Phase {
    pub const ALL: [Phase; 10] = [
        Phase::Initialized,
        Phase::Preparing,
        Phase::Progressing,
        Phase::Paused,
        Phase::WaitingPromotion,
        Phase::Promoting,
        Phase::RollingBack,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Initialized => "Initialized",
            Phase::Preparing => "Preparing",
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::WaitingPromotion => "WaitingPromotion",
            Phase::Promoting => "Promoting",
            Phase::RollingBack => "RollingBack",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Blocked => "Blocked",
        }
    }

    /// At rest: no rollout holds the Deployment (the user's Deployment serves 100%).
    pub fn is_at_rest(self) -> bool {
        matches!(self, Phase::Initialized | Phase::Succeeded | Phase::Failed)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Phase {
    type Err = StatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| StatusError::UnknownPhase(s.to_string()))
    }
}

impl Serialize for Phase {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Phase {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A point in time, written as RFC 3339 (`2026-11-27T09:03:00Z`) so `kubectl get -o yaml` reads well,
/// with milliseconds when it has them (`2026-11-27T09:03:00.250Z`). The next analysis is due one
/// interval after the last; rounded to whole seconds it came up to a second early and judged a
/// window that began before the step it was judging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub SystemTime);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let whole = self
            .0
            .duration_since(SystemTime::UNIX_EPOCH)
            .is_ok_and(|d| d.subsec_millis() == 0);
        let text = if whole {
            humantime::format_rfc3339_seconds(self.0).to_string()
        } else {
            humantime::format_rfc3339_millis(self.0).to_string()
        };
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&s)
            .map(Timestamp)
            .map_err(|e| serde::de::Error::custom(format!("timestamp {s:?}: {e}")))
    }
}

/// The outcome of one check in one analysis interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckResult {
    Pass,
    Fail,
    /// Too little traffic (below `min-requests`) to judge either way.
    NoVerdict,
}

/// One check's verdict, with the figures behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckVerdict {
    /// `success-rate`, `latency-p99`, `baseline-error-rate`, a custom check's name, ...
    pub name: String,
    pub result: CheckResult,
    /// The measured value, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What was measured against what, in words: `99.2% >= 99%`, `Prometheus unreachable: ...`.
    pub detail: String,
    /// The figures of a baseline comparison (`baseline-error-rate`, `baseline-latency`), so
    /// tools need not parse `detail`; absent on other checks and in statuses written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Box<BaselineFigures>>,
}

/// What a baseline comparison (DESIGN §5) measured on both sides of one window, and how it
/// judged them. A figure Sluice did not measure is absent, and the side's `note` says why (no
/// data, too few requests, a query error); nothing is filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineFigures {
    /// The canary (`app`) over the window.
    pub canary: SideFigures,
    /// The primary (`app-primary`) over the same window.
    pub primary: SideFigures,
    /// The error-rate test that gave `pValue`; absent when no test ran (too little traffic,
    /// equal rates, a query error, or on `baseline-latency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<BaselineTest>,
    /// The test statistic: z of the two-proportion test. Absent with Fisher's exact test, which
    /// has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<f64>,
    /// One-sided p-value that the canary fails more often than the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Error-rate points the canary may exceed the primary by (`baseline-tolerance`), on
    /// `baseline-error-rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// How much worse the canary p99 may be (`baseline-latency-ratio`), on `baseline-latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ratio: Option<f64>,
}

/// Which test judged the error rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BaselineTest {
    /// One-sided two-proportion z-test with pooled variance.
    ZTest,
    /// One-sided Fisher's exact test (small expected counts).
    FisherExact,
}

/// One side's figures over the window of a baseline comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SideFigures {
    /// Responses in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
    /// Responses classified `failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<f64>,
    /// `failures / requests`, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// p99 latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Why a figure is absent or was not judged: `no data`, `12 requests < min-requests 20`,
    /// the query error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The `sluice.dev/status` annotation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub phase: Phase,
    /// Revision (template hash) of the version being rolled out, or of the one serving at rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Revision of the stable version (the primary while a rollout runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Share of traffic routed to the new version, percent.
    pub weight: u32,
    /// Failed checks counted against `threshold` in this rollout.
    pub failed_checks: u32,
    /// Consecutive intervals without a verdict (too little traffic).
    #[serde(default)]
    pub silent_intervals: u32,
    /// Analysis rounds passed in this rollout (blue/green and A/B count these).
    #[serde(default)]
    pub iterations: u32,
    /// Blue/green: the passing analyses needed before the switch (`iterations`), set once the
    /// analysis has started (after a `pre-rollout` hook passed); `sluice status` shows
    /// `iterations`/this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration_goal: Option<u32>,
    /// The last interval's verdicts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_verdicts: Vec<CheckVerdict>,
    /// When the phase was entered.
    pub phase_since: Timestamp,
    /// When the current revision's rollout began (the `progress-deadline` clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    /// When the `progress-deadline` clock started, when not at `started`: moved on by the time
    /// spent paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_from: Option<Timestamp>,
    /// When the last analysis ran (the next is due one `interval` later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis: Option<Timestamp>,
    /// A revision that failed and is refused at admission until `sluice.dev/retry` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<String>,
    /// What a person should know about the current phase, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `sluice.dev/pause` was set at rest or while preparing: the next rollout holds in
    /// `Paused` at 0% once `-primary` is ready, until `sluice.dev/resume`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause_pending: bool,
    /// The last control annotation the controller acted on, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_control: Option<ControlAck>,
}

/// How the controller answered a control annotation (`sluice.dev/pause`, `promote`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ControlOutcome {
    /// Done: the phase or the status changed as asked.
    Applied,
    /// Not done, and the message says why and what to do.
    Refused,
    /// Nothing to do: the rollout already is as asked.
    NoOp,
}

impl ControlOutcome {
    /// `applied`, `refused` or `noOp`, as in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlOutcome::Applied => "applied",
            ControlOutcome::Refused => "refused",
            ControlOutcome::NoOp => "noOp",
        }
    }
}

/// The acknowledgement of one control annotation, written in the same status write that acts on
/// it; the annotation is removed right after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlAck {
    /// The verb: `pause`, `resume`, `promote`, `abort` or `retry`.
    #[serde(with = "control_verb")]
    pub verb: Control,
    /// When the controller acted on it.
    pub at: Timestamp,
    pub outcome: ControlOutcome,
    /// What happened, in words.
    pub message: String,
}

/// A control verb as its bare key (`pause`).
mod control_verb {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::policy::keys::Control;

    pub fn serialize<S: Serializer>(c: &Control, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Control, D::Error> {
        let s = String::deserialize(d)?;
        Control::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a Sluice control")))
    }
}

impl RolloutStatus {
    /// A fresh status in `phase`, entered at `now`.
    pub fn new(phase: Phase, now: SystemTime) -> Self {
        Self {
            phase,
            revision: None,
            stable_revision: None,
            weight: 0,
            failed_checks: 0,
            silent_intervals: 0,
            iterations: 0,
            iteration_goal: None,
            last_verdicts: Vec::new(),
            phase_since: Timestamp(now),
            started: None,
            deadline_from: None,
            last_analysis: None,
            failed_revision: None,
            message: String::new(),
            pause_pending: false,
            last_control: None,
        }
    }

    /// Reads the status from an object's annotations; `Ok(None)` when it has none yet.
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Option<Self>, StatusError> {
        let Some(raw) = annotations.and_then(|a| a.get(STATUS_ANNOTATION)) else {
            return Ok(None);
        };
        serde_json::from_str(raw)
            .map(Some)
            .map_err(|e| StatusError::Malformed {
                value: raw.clone(),
                reason: e.to_string(),
            })
    }

    /// The annotation value (compact JSON).
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("a status always serialises")
    }
}

/// A status annotation Sluice cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("{0:?} is not a Sluice phase")]
    UnknownPhase(String),
    #[error(
        "annotation {STATUS_ANNOTATION} is not a Sluice status ({reason}): {value:?}; it is written by Sluice only: remove it and Sluice rewrites it from the objects"
    )]
    Malformed { value: String, reason: String },
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_status_annotation_round_trips() {
        let mut s = RolloutStatus::new(Phase::Progressing, at(1_800_000_000));
        s.revision = Some("6f7d9c".into());
        s.weight = 20;
        s.failed_checks = 1;
        s.last_verdicts = vec![CheckVerdict {
            name: "success-rate".into(),
            result: CheckResult::Fail,
            value: Some(97.5),
            detail: "97.5% < 99%".into(),
            baseline: None,
        }];
        let annotations = BTreeMap::from([(STATUS_ANNOTATION.to_string(), s.to_annotation())]);
        assert_eq!(
            RolloutStatus::from_annotations(Some(&annotations)).unwrap(),
            Some(s)
        );
    }

    #[test]
    fn a_timestamp_keeps_its_milliseconds_so_the_next_analysis_is_never_early() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        let json = serde_json::to_string(&Timestamp(at)).unwrap();
        assert_eq!(json, "\"2027-01-15T08:00:00.250Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0, at);
        let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            serde_json::to_string(&Timestamp(whole)).unwrap(),
            "\"2027-01-15T08:00:00Z\""
        );
    }

    #[test]
    fn the_annotation_is_readable_json() {
        let s = RolloutStatus::new(Phase::Initialized, at(1_800_000_000));
        assert_eq!(
            s.to_annotation(),
            r#"{"phase":"Initialized","weight":0,"failedChecks":0,"silentIntervals":0,"iterations":0,"phaseSince":"2027-01-15T08:00:00Z"}"#
        );
    }

    #[test]
    fn a_garbled_status_is_an_error_that_says_what_to_do() {
        let annotations = BTreeMap::from([(STATUS_ANNOTATION.to_string(), "{nope".to_string())]);
        let err = RolloutStatus::from_annotations(Some(&annotations)).unwrap_err();
        assert!(err.to_string().contains("remove it"), "{err}");
    }

    #[test]
    fn a_control_acknowledgement_round_trips_and_reads_well() {
        let mut s = RolloutStatus::new(Phase::Paused, at(1_800_000_000));
        s.pause_pending = true;
        s.last_control = Some(ControlAck {
            verb: Control::BreakGlass,
            at: Timestamp(at(1_800_000_000)),
            outcome: ControlOutcome::NoOp,
            message: "already paused".into(),
        });
        let raw = s.to_annotation();
        assert!(
            raw.contains(r#""pausePending":true,"lastControl":{"verb":"break-glass","at":"2027-01-15T08:00:00Z","outcome":"noOp","message":"already paused"}"#),
            "{raw}"
        );
        let annotations = BTreeMap::from([(STATUS_ANNOTATION.to_string(), raw)]);
        assert_eq!(
            RolloutStatus::from_annotations(Some(&annotations)).unwrap(),
            Some(s)
        );
    }

    #[test]
    fn a_status_written_before_controls_existed_still_parses() {
        let old = r#"{"phase":"Progressing","weight":20,"failedChecks":1,"phaseSince":"2027-01-15T08:00:00Z"}"#;
        let annotations = BTreeMap::from([(STATUS_ANNOTATION.to_string(), old.to_string())]);
        let s = RolloutStatus::from_annotations(Some(&annotations))
            .unwrap()
            .unwrap();
        assert!(!s.pause_pending);
        assert_eq!(s.last_control, None);
    }

    #[test]
    fn a_status_written_before_baseline_figures_existed_still_parses() {
        let old = r#"{"phase":"Progressing","weight":20,"failedChecks":0,"phaseSince":"2027-01-15T08:00:00Z","lastVerdicts":[{"name":"baseline-error-rate","result":"pass","value":0.1,"detail":"canary 1% of 300 vs primary 0.9% of 1200 requests failed: not significant"}]}"#;
        let annotations = BTreeMap::from([(STATUS_ANNOTATION.to_string(), old.to_string())]);
        let s = RolloutStatus::from_annotations(Some(&annotations))
            .unwrap()
            .unwrap();
        assert_eq!(s.last_verdicts.len(), 1);
        assert_eq!(s.last_verdicts[0].result, CheckResult::Pass);
        assert_eq!(s.last_verdicts[0].baseline, None);
        assert!(
            !s.to_annotation().contains(r#""baseline":"#),
            "no figures are written when there are none"
        );
    }

    #[test]
    fn every_phase_round_trips() {
        for p in Phase::ALL {
            assert_eq!(p.as_str().parse::<Phase>().unwrap(), p);
        }
        assert!("Running".parse::<Phase>().is_err());
    }
}
