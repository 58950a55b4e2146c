//! Prometheus metrics of one Sluice replica, served as OpenMetrics text on the admin port
//! (`GET /metrics`). [`Metrics`] owns the registry and every family; the controller and the
//! webhook hold clones and record where they already know the facts.
//!
//! ```text
//! reconcile (after the status write) ─► rollout phase, canary weight, checks, rollout duration
//! error_policy ───────────────────────► reconcile errors by reason
//! webhook handler (parse→decide→JSON) ─► admission duration by operation and verdict
//! leader election (`leader::lead`) ──► leader
//! PromClient::query ──────────────────► Prometheus query duration, query errors by reason
//!                                        └──► Registry ──► /metrics (OpenMetrics text)
//! ```
//!
//! | family | type | labels |
//! |---|---|---|
//! | `sluice_rollout_phase` | gauge | `namespace`, `deployment`, `phase` |
//! | `sluice_canary_weight` | gauge | `namespace`, `deployment` |
//! | `sluice_rollout_duration_seconds` | histogram | `outcome` (`succeeded`, `failed`) |
//! | `sluice_analysis_checks_total` | counter | `check`, `result` (`pass`, `fail`, `no-verdict`) |
//! | `sluice_webhook_admission_duration_seconds` | histogram | `operation` (`mutate`, `validate`), `verdict` |
//! | `sluice_reconciles_total` | counter | none (every pass over a Deployment) |
//! | `sluice_reconcile_errors_total` | counter | `reason` (the error's `metric_label()`) |
//! | `sluice_prometheus_query_duration_seconds` | histogram | none |
//! | `sluice_prometheus_query_errors_total` | counter | `reason` (see below) |
//! | `sluice_leader` | gauge | none |
//!
//! Choices where the design is silent:
//! - `sluice_rollout_phase` has one series per phase for each managed Deployment: 1 for the
//!   current phase, 0 for the others, as kube-state-metrics does for pod phases, so
//!   `sum by (phase) (sluice_rollout_phase)` counts rollouts per phase. `sluice_canary_weight`
//!   is the status's weight: the share of traffic on the new version, so 100 after a promotion
//!   (the user's Deployment then serves everything) and 0 after a rollback.
//! - Cardinality is bounded by the managed Deployments: series are written only for
//!   Deployments Sluice manages, and [`Metrics::forget_rollout`] removes them when the
//!   controller sees the Deployment deleted or no longer managed. Check names come from the
//!   built-in checks and the `metrics` annotation, a short list per Deployment.
//! - The admission verdict is `patched` (allowed with a patch), `allowed`, `denied` (a refusal
//!   with a reason a person can act on) or `error` (no decision could be made: the body was not
//!   an AdmissionReview, the caches were cold (the retryable 503 refusal), or the response could
//!   not be encoded). The time covers parsing, deciding and encoding; the buckets are fine below
//!   1 ms, since a decision takes about 0.1 ms.
//! - A family appears in the output with its first series (prometheus-client writes no
//!   `# TYPE` line for an empty family); `sluice_leader` is always there.
//! - Every instant query the analysis sends Prometheus is timed, whatever its answer, from the
//!   request to the decoded answer (a retry after re-reading rotated credentials included). A
//!   query that gives no number is counted in `sluice_prometheus_query_errors_total` with the
//!   `reason` of [`PromError::query_error_reason`](crate::analysis::prometheus::PromError::query_error_reason):
//!   `timeout` (beyond `--prometheus-timeout`), `unreachable` (connection refused, DNS, bad
//!   URL), `tls` (certificate not trusted: see `--prometheus-ca`), `auth` (HTTP 401/403),
//!   `http` (another error status, or Prometheus refused the query), `bad_response` (not a
//!   single-number answer), `nan` (NaN or ±Inf) and `empty` (no series; counted even where the
//!   check then gives no verdict for lack of traffic, since the query gave no number). The
//!   buckets run from 5 ms to 30 s (`--prometheus-timeout` defaults to 10 s).
//! - A rollout's duration runs from the status's `started` (when the revision was detected) to
//!   the write of `Succeeded` or `Failed`, and is observed once, after that write succeeded.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::controller::status::{CheckResult, CheckVerdict, Phase, RolloutStatus, Timestamp};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Buckets of the admission duration, in seconds: fine from 25 µs to 1 ms, then coarse up to
/// the API server's default webhook timeout (10 s).
pub const ADMISSION_BUCKETS: [f64; 16] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0, 2.5, 10.0,
];

/// Buckets of a rollout's duration, in seconds: 10 s (the sandbox) to 4 h.
pub const ROLLOUT_BUCKETS: [f64; 11] = [
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// Buckets of a Prometheus query's duration, in seconds: 5 ms to 30 s.
pub const PROMETHEUS_QUERY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How a rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Promoted: phase `Succeeded`.
    Succeeded,
    /// Rolled back: phase `Failed`.
    Failed,
}

impl Outcome {
    /// `succeeded` / `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        }
    }
}

/// Which webhook endpoint answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `/mutate`.
    Mutate,
    /// `/validate`.
    Validate,
}

impl Operation {
    /// `mutate` / `validate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Mutate => "mutate",
            Operation::Validate => "validate",
        }
    }
}

/// What the webhook answered (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allowed,
    Patched,
    Denied,
    Error,
}

impl Verdict {
    /// `allowed` / `patched` / `denied` / `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Patched => "patched",
            Verdict::Denied => "denied",
            Verdict::Error => "error",
        }
    }

    /// The verdict of an admission response: a refusal with a 5xx code is Sluice unable to
    /// decide (cold caches), not a judgement on the object.
    pub fn of(allowed: bool, patched: bool, code: u16) -> Verdict {
        match (allowed, patched) {
            (true, true) => Verdict::Patched,
            (true, false) => Verdict::Allowed,
            (false, _) if code >= 500 => Verdict::Error,
            (false, _) => Verdict::Denied,
        }
    }
}

/// The `result` label of a check.
pub fn check_result_label(result: CheckResult) -> &'static str {
    match result {
        CheckResult::Pass => "pass",
        CheckResult::Fail => "fail",
        CheckResult::NoVerdict => "no-verdict",
    }
}

/// A label value written from a static vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Word(&'static str);

impl EncodeLabelValue for Word {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0, encoder)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RolloutLabels {
    namespace: String,
    deployment: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabels {
    namespace: String,
    deployment: String,
    phase: Word,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Word,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CheckLabels {
    check: String,
    result: Word,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AdmissionLabels {
    operation: Word,
    verdict: Word,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: Word,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

struct Inner {
    registry: Registry,
    phase: Family<PhaseLabels, Gauge>,
    weight: Family<RolloutLabels, Gauge>,
    duration: HistogramFamily<OutcomeLabels>,
    checks: Family<CheckLabels, Counter>,
    admission: HistogramFamily<AdmissionLabels>,
    reconciles: Counter,
    reconcile_errors: Family<ReasonLabels, Counter>,
    leader: Gauge,
    prometheus_queries: Histogram,
    prometheus_errors: Family<ReasonLabels, Counter>,
}

/// Every metric of this replica and the registry that serves them; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered and no series yet (the leader gauge at 0).
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let phase = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "sluice_rollout_phase",
            "Phase of each managed Deployment: 1 for the current phase, 0 for the others",
            phase.clone(),
        );
        let weight = Family::<RolloutLabels, Gauge>::default();
        registry.register(
            "sluice_canary_weight",
            "Percent of traffic routed to the new version of each managed Deployment",
            weight.clone(),
        );
        let duration: HistogramFamily<OutcomeLabels> =
            Family::new_with_constructor(|| Histogram::new(ROLLOUT_BUCKETS));
        registry.register(
            "sluice_rollout_duration_seconds",
            "Time from detecting a new revision to its promotion or rollback",
            duration.clone(),
        );
        let checks = Family::<CheckLabels, Counter>::default();
        // prometheus-client appends `_total` to counters.
        registry.register(
            "sluice_analysis_checks",
            "Analysis check verdicts, by check and result",
            checks.clone(),
        );
        let admission: HistogramFamily<AdmissionLabels> =
            Family::new_with_constructor(|| Histogram::new(ADMISSION_BUCKETS));
        registry.register(
            "sluice_webhook_admission_duration_seconds",
            "Time the webhook took to parse, decide and encode an admission review",
            admission.clone(),
        );
        let reconciles = Counter::default();
        registry.register(
            "sluice_reconciles",
            "Passes of the controller over a Deployment, whatever their outcome",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "sluice_reconcile_errors",
            "Failed reconciles, by reason",
            reconcile_errors.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "sluice_leader",
            "1 when this replica runs the controller (holds the lease), 0 otherwise",
            leader.clone(),
        );
        let prometheus_queries = Histogram::new(PROMETHEUS_QUERY_BUCKETS);
        registry.register(
            "sluice_prometheus_query_duration_seconds",
            "Time an analysis query to Prometheus took, whatever its answer",
            prometheus_queries.clone(),
        );
        let prometheus_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "sluice_prometheus_query_errors",
            "Analysis queries to Prometheus that gave no number, by reason",
            prometheus_errors.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                phase,
                weight,
                duration,
                checks,
                admission,
                reconciles,
                reconcile_errors,
                leader,
                prometheus_queries,
                prometheus_errors,
            }),
        }
    }

    /// Everything in OpenMetrics text (serve it with [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Sets the phase and weight series of a managed Deployment from its status.
    pub fn record_rollout(&self, namespace: &str, deployment: &str, status: &RolloutStatus) {
        for phase in Phase::ALL {
            let labels = PhaseLabels {
                namespace: namespace.to_string(),
                deployment: deployment.to_string(),
                phase: Word(phase.as_str()),
            };
            self.inner
                .phase
                .get_or_create(&labels)
                .set(i64::from(phase == status.phase));
        }
        let labels = RolloutLabels {
            namespace: namespace.to_string(),
            deployment: deployment.to_string(),
        };
        self.inner
            .weight
            .get_or_create(&labels)
            .set(i64::from(status.weight));
    }

    /// Removes a Deployment's phase and weight series (deleted, or no longer managed).
    pub fn forget_rollout(&self, namespace: &str, deployment: &str) {
        let rollout = RolloutLabels {
            namespace: namespace.to_string(),
            deployment: deployment.to_string(),
        };
        if !self.inner.weight.remove(&rollout) {
            // Never recorded: no phase series either (they are written together).
            return;
        }
        for phase in Phase::ALL {
            self.inner.phase.remove(&PhaseLabels {
                namespace: rollout.namespace.clone(),
                deployment: rollout.deployment.clone(),
                phase: Word(phase.as_str()),
            });
        }
    }

    /// Observes the duration of a rollout that just ended.
    pub fn rollout_ended(&self, outcome: Outcome, duration: Duration) {
        self.inner
            .duration
            .get_or_create(&OutcomeLabels {
                outcome: Word(outcome.as_str()),
            })
            .observe(duration.as_secs_f64());
    }

    /// Counts one interval's verdicts, one per check.
    pub fn checks(&self, verdicts: &[CheckVerdict]) {
        for v in verdicts {
            self.inner
                .checks
                .get_or_create(&CheckLabels {
                    check: v.name.clone(),
                    result: Word(check_result_label(v.result)),
                })
                .inc();
        }
    }

    /// Observes one admission answer.
    pub fn admission(&self, operation: Operation, verdict: Verdict, elapsed: Duration) {
        self.inner
            .admission
            .get_or_create(&AdmissionLabels {
                operation: Word(operation.as_str()),
                verdict: Word(verdict.as_str()),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a pass of the controller over a Deployment.
    pub fn reconcile(&self) {
        self.inner.reconciles.inc();
    }

    /// Passes counted so far.
    pub fn reconciles(&self) -> u64 {
        self.inner.reconciles.get()
    }

    /// Counts a failed reconcile; `reason` is the error's `metric_label()`.
    pub fn reconcile_error(&self, reason: &'static str) {
        self.inner
            .reconcile_errors
            .get_or_create(&ReasonLabels {
                reason: Word(reason),
            })
            .inc();
    }

    /// Observes one Prometheus query: its duration, and the `reason` it gave no number, if it
    /// did not (a [`PromError::query_error_reason`](crate::analysis::prometheus::PromError::query_error_reason)
    /// or `empty`).
    pub fn prometheus_query(&self, elapsed: Duration, error: Option<&'static str>) {
        self.inner.prometheus_queries.observe(elapsed.as_secs_f64());
        if let Some(reason) = error {
            self.inner
                .prometheus_errors
                .get_or_create(&ReasonLabels {
                    reason: Word(reason),
                })
                .inc();
        }
    }

    /// Whether this replica runs the controller.
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.set(i64::from(leader));
    }
}

/// How long the rollout that `next` ends took, when the reconcile that wrote `next` over `prev`
/// ended one: a rollout phase (`Preparing` … `RollingBack`) followed by `Succeeded` or `Failed`.
pub fn rollout_end(
    prev: Option<&RolloutStatus>,
    next: &RolloutStatus,
    now: SystemTime,
) -> Option<(Outcome, Duration)> {
    let prev = prev?;
    if prev.phase.is_at_rest() || prev.phase == Phase::Blocked {
        return None;
    }
    let outcome = match next.phase {
        Phase::Succeeded => Outcome::Succeeded,
        Phase::Failed => Outcome::Failed,
        _ => return None,
    };
    let Timestamp(started) = next.started.or(prev.started)?;
    Some((outcome, now.duration_since(started).unwrap_or_default()))
}

/// The verdicts `next` was judged on, when this reconcile judged them: an analysis stamped
/// `now` that kept them. Verdicts a reconcile ran but did not use (an abort came first) are not
/// counted.
pub fn judged<'a>(
    verdicts: Option<&'a [CheckVerdict]>,
    next: &RolloutStatus,
    now: SystemTime,
) -> &'a [CheckVerdict] {
    match verdicts {
        Some(v) if next.last_analysis == Some(Timestamp(now)) && next.last_verdicts == v => v,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::checks::fixtures::verdict;
    use std::time::UNIX_EPOCH;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn status(phase: Phase, weight: u32) -> RolloutStatus {
        let mut s = RolloutStatus::new(phase, at(1_000));
        s.weight = weight;
        s.started = Some(Timestamp(at(1_000)));
        s
    }

    /// The sample lines of `text` whose name and labels start with `prefix`.
    fn samples<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn every_family_is_typed_and_the_leader_starts_at_0() {
        let m = Metrics::new();
        assert_eq!(samples(&m.encode(), "sluice_leader "), ["sluice_leader 0"]);
        m.record_rollout("shop", "web", &status(Phase::Progressing, 20));
        m.rollout_ended(Outcome::Succeeded, Duration::from_secs(60));
        m.checks(&[verdict("success-rate", CheckResult::Pass)]);
        m.admission(
            Operation::Mutate,
            Verdict::Allowed,
            Duration::from_micros(90),
        );
        m.reconcile_error("kube");
        let text = m.encode();
        for family in [
            "sluice_rollout_phase gauge",
            "sluice_canary_weight gauge",
            "sluice_rollout_duration_seconds histogram",
            "sluice_analysis_checks counter",
            "sluice_webhook_admission_duration_seconds histogram",
            "sluice_reconciles counter",
            "sluice_reconcile_errors counter",
            "sluice_leader gauge",
            "sluice_prometheus_query_duration_seconds histogram",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family}\n")),
                "{family}: {text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn the_current_phase_is_1_and_every_other_phase_0() {
        let m = Metrics::new();
        m.record_rollout("shop", "web", &status(Phase::Progressing, 20));
        let text = m.encode();
        let phases = samples(&text, "sluice_rollout_phase{");
        assert_eq!(phases.len(), Phase::ALL.len(), "{text}");
        assert!(phases.contains(
            &r#"sluice_rollout_phase{namespace="shop",deployment="web",phase="Progressing"} 1"#
        ));
        assert_eq!(phases.iter().filter(|l| l.ends_with(" 1")).count(), 1);
        assert_eq!(
            samples(&text, "sluice_canary_weight{"),
            [r#"sluice_canary_weight{namespace="shop",deployment="web"} 20"#]
        );
    }

    #[test]
    fn a_new_phase_moves_the_1_and_the_weight_follows_the_status() {
        let m = Metrics::new();
        m.record_rollout("shop", "web", &status(Phase::Progressing, 20));
        m.record_rollout("shop", "web", &status(Phase::Succeeded, 100));
        let text = m.encode();
        assert_eq!(
            samples(&text, "sluice_rollout_phase{")
                .into_iter()
                .filter(|l| l.ends_with(" 1"))
                .collect::<Vec<_>>(),
            [r#"sluice_rollout_phase{namespace="shop",deployment="web",phase="Succeeded"} 1"#]
        );
        assert!(text.contains(r#"sluice_canary_weight{namespace="shop",deployment="web"} 100"#));
    }

    #[test]
    fn a_forgotten_deployment_leaves_no_series_and_others_stay() {
        let m = Metrics::new();
        m.record_rollout("shop", "web", &status(Phase::Progressing, 20));
        m.record_rollout("shop", "api", &status(Phase::Initialized, 0));
        m.forget_rollout("shop", "web");
        m.forget_rollout("shop", "never-managed");
        let text = m.encode();
        assert!(!text.contains(r#"deployment="web""#), "{text}");
        assert_eq!(
            samples(&text, "sluice_rollout_phase{").len(),
            Phase::ALL.len()
        );
        assert!(text.contains(r#"sluice_canary_weight{namespace="shop",deployment="api"} 0"#));
    }

    #[test]
    fn verdicts_are_counted_by_check_and_result() {
        let m = Metrics::new();
        m.checks(&[
            verdict("success-rate", CheckResult::Pass),
            verdict("latency-p99", CheckResult::NoVerdict),
        ]);
        m.checks(&[verdict("success-rate", CheckResult::Pass)]);
        m.checks(&[verdict("success-rate", CheckResult::Fail)]);
        let text = m.encode();
        let mut counted = samples(&text, "sluice_analysis_checks_total{");
        counted.sort();
        assert_eq!(
            counted,
            [
                r#"sluice_analysis_checks_total{check="latency-p99",result="no-verdict"} 1"#,
                r#"sluice_analysis_checks_total{check="success-rate",result="fail"} 1"#,
                r#"sluice_analysis_checks_total{check="success-rate",result="pass"} 2"#,
            ]
        );
    }

    #[test]
    fn admission_durations_land_in_sub_millisecond_buckets() {
        let m = Metrics::new();
        m.admission(
            Operation::Mutate,
            Verdict::Patched,
            Duration::from_micros(80),
        );
        m.admission(
            Operation::Validate,
            Verdict::Denied,
            Duration::from_micros(300),
        );
        let text = m.encode();
        let mutate = r#"sluice_webhook_admission_duration_seconds_bucket{le="#;
        assert!(
            text.contains(&format!(
                r#"{mutate}"0.00005",operation="mutate",verdict="patched"}} 0"#
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            r#"{mutate}"0.0001",operation="mutate",verdict="patched"}} 1"#
        )));
        assert!(text.contains(&format!(
            r#"{mutate}"0.00025",operation="validate",verdict="denied"}} 0"#
        )));
        assert!(text.contains(&format!(
            r#"{mutate}"0.0005",operation="validate",verdict="denied"}} 1"#
        )));
        assert!(text.contains(
            r#"sluice_webhook_admission_duration_seconds_count{operation="mutate",verdict="patched"} 1"#
        ));
    }

    #[test]
    fn a_refusal_for_cold_caches_is_an_error_not_a_denial() {
        assert_eq!(Verdict::of(true, true, 200), Verdict::Patched);
        assert_eq!(Verdict::of(true, false, 200), Verdict::Allowed);
        assert_eq!(Verdict::of(false, false, 403), Verdict::Denied);
        assert_eq!(Verdict::of(false, false, 503), Verdict::Error);
    }

    #[test]
    fn reconcile_errors_are_counted_by_reason_and_the_leader_can_be_set() {
        let m = Metrics::new();
        m.reconcile_error("kube");
        m.reconcile_error("kube");
        m.reconcile_error("not_served");
        m.set_leader(true);
        let text = m.encode();
        assert!(text.contains(r#"sluice_reconcile_errors_total{reason="kube"} 2"#));
        assert!(text.contains(r#"sluice_reconcile_errors_total{reason="not_served"} 1"#));
        assert_eq!(samples(&text, "sluice_leader "), ["sluice_leader 1"]);
        m.set_leader(false);
        assert_eq!(samples(&m.encode(), "sluice_leader "), ["sluice_leader 0"]);
    }

    #[test]
    fn prometheus_queries_are_timed_and_their_errors_counted_by_reason() {
        let m = Metrics::new();
        m.prometheus_query(Duration::from_millis(3), None);
        m.prometheus_query(Duration::from_millis(40), Some("auth"));
        m.prometheus_query(Duration::from_secs(10), Some("timeout"));
        m.prometheus_query(Duration::from_millis(20), Some("auth"));
        let text = m.encode();
        let buckets = "sluice_prometheus_query_duration_seconds_bucket{le=";
        assert!(text.contains(&format!(r#"{buckets}"0.005"}} 1"#)), "{text}");
        assert!(text.contains(&format!(r#"{buckets}"0.05"}} 3"#)), "{text}");
        assert!(text.contains(&format!(r#"{buckets}"5.0"}} 3"#)), "{text}");
        assert!(text.contains(&format!(r#"{buckets}"10.0"}} 4"#)), "{text}");
        assert!(text.contains("sluice_prometheus_query_duration_seconds_count 4"));
        let mut errors = samples(&text, "sluice_prometheus_query_errors_total{");
        errors.sort();
        assert_eq!(
            errors,
            [
                r#"sluice_prometheus_query_errors_total{reason="auth"} 2"#,
                r#"sluice_prometheus_query_errors_total{reason="timeout"} 1"#,
            ]
        );
    }

    #[test]
    fn a_rollout_ends_when_a_rollout_phase_gives_way_to_succeeded_or_failed() {
        let now = at(1_090);
        let promoting = status(Phase::Promoting, 60);
        let succeeded = status(Phase::Succeeded, 100);
        assert_eq!(
            rollout_end(Some(&promoting), &succeeded, now),
            Some((Outcome::Succeeded, Duration::from_secs(90)))
        );
        let rolling_back = status(Phase::RollingBack, 0);
        let failed = status(Phase::Failed, 0);
        assert_eq!(
            rollout_end(Some(&rolling_back), &failed, now),
            Some((Outcome::Failed, Duration::from_secs(90)))
        );
    }

    #[test]
    fn a_status_rewritten_at_rest_or_mid_rollout_ends_nothing() {
        let now = at(1_090);
        let succeeded = status(Phase::Succeeded, 100);
        assert_eq!(rollout_end(Some(&succeeded), &succeeded, now), None);
        assert_eq!(rollout_end(None, &succeeded, now), None);
        let progressing = status(Phase::Progressing, 20);
        assert_eq!(
            rollout_end(Some(&progressing), &status(Phase::Progressing, 40), now),
            None
        );
        let blocked = status(Phase::Blocked, 0);
        assert_eq!(
            rollout_end(Some(&blocked), &status(Phase::Failed, 0), now),
            None
        );
    }

    #[test]
    fn only_verdicts_the_status_was_judged_on_are_counted() {
        let now = at(1_090);
        let verdicts = vec![verdict("success-rate", CheckResult::Pass)];
        let mut judged_now = status(Phase::Progressing, 40);
        judged_now.last_analysis = Some(Timestamp(now));
        judged_now.last_verdicts = verdicts.clone();
        assert_eq!(judged(Some(&verdicts), &judged_now, now), &verdicts[..]);
        // An abort came first: the status kept the previous interval's analysis.
        let mut aborted = status(Phase::RollingBack, 0);
        aborted.last_analysis = Some(Timestamp(at(1_060)));
        assert!(judged(Some(&verdicts), &aborted, now).is_empty());
        assert!(judged(None, &judged_now, now).is_empty());
    }
}
