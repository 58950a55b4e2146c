//! The built-in checks of one analysis interval: canary success rate and p99 latency, gated on
//! `min-requests` (DESIGN §4 step 4, §5).
//!
//! ```text
//! run_builtin (I/O) ── Requests[interval] ──► Prometheus
//!        │  below min-requests, or the count failed? ──► skip the other two queries
//!        ├─ join!(SuccessRate[interval], LatencyP99[interval]) ──► Prometheus
//!        ▼
//!   Measurements ──judge (pure)──► [CheckVerdict; 2] ──outcome (pure)──► Passed | Failed | NoVerdict
//! ```
//!
//! Rules, each a promise to the user:
//! - **No false pass, no false fail on idle services.** Fewer canary requests than `min-requests`
//!   in the window (an empty result counts as 0: Linkerd has not seen traffic) gives every
//!   built-in check [`CheckResult::NoVerdict`], saying how many requests there were.
//!   Exactly `min-requests` is enough for a verdict. With `min-requests: 0` the gate is off and
//!   an idle canary fails its checks on "no data", as in Flagger.
//! - **An outage never looks like "no traffic".** If counting the requests fails (Prometheus
//!   unreachable, timed out, refused the query, answered NaN or garbage), every built-in check
//!   fails with that reason; none is skipped.
//! - **Prometheus nonsense is a failed check, never a pass, never a panic**: an error, NaN/±Inf,
//!   an empty result although traffic was seen, a success rate outside 0–100 %, a negative
//!   latency or request count. The reason is the [`PromError`] message, which names the query.
//! - Bounds are inclusive (REFERENCE.md): success rate ≥ `success-rate` passes, p99 ≤
//!   `latency-p99` passes.
//! - All three queries are evaluated at the same instant, so they read the same window. That
//!   instant is the controller's clock; a Prometheus whose clock runs behind by more than a scrape
//!   interval would see a window slightly in its future, which only shortens it.
//!
//! [`outcome`] folds the verdicts of an interval (built-in and, later, custom checks): any `Fail`
//! → [`IntervalOutcome::Failed`]; else all `NoVerdict` (including no verdicts at all, which is no
//! evidence) → [`IntervalOutcome::NoVerdict`]; else [`IntervalOutcome::Passed`].
//!
//! [`baseline`] compares the canary with the primary in the same window (`baseline: on`).

pub mod baseline;
pub mod custom;

use std::time::{Duration, SystemTime};

use crate::analysis::prometheus::{PromClient, PromError, Sample};
use crate::analysis::queries::{BuiltinQuery, QueryKind};
use crate::controller::status::{CheckResult, CheckVerdict};
use crate::policy::keys::Setting;

/// Name of the success-rate check in verdicts, Events and the status (same as its setting key).
pub const SUCCESS_RATE: &str = "success-rate";
/// Name of the p99-latency check in verdicts, Events and the status (same as its setting key).
pub const LATENCY_P99: &str = "latency-p99";

/// What the built-in checks of one Deployment measure, and the bounds they hold it to.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckPlan {
    /// Namespace of the Deployment.
    pub namespace: String,
    /// The canary's Deployment name (the user's Deployment, e.g. `app`).
    pub canary: String,
    /// The primary's Deployment name (`app-primary`); used by the baseline comparison.
    pub primary: String,
    /// The analysis window (`interval`).
    pub interval: Duration,
    /// Minimum success rate, percent (`success-rate`).
    pub success_rate_min: f64,
    /// Maximum p99 latency (`latency-p99`).
    pub latency_p99_max: Duration,
    /// Canary requests per window needed for a verdict (`min-requests`).
    pub min_requests: u64,
}

impl CheckPlan {
    /// Refuses a plan whose bounds cannot be judged against (policy validation should have caught
    /// these; this keeps the checks honest if it did not).
    pub fn validate(&self) -> Result<(), Error> {
        if self.interval < Duration::from_millis(1) {
            return Err(Error::IntervalTooShort {
                namespace: self.namespace.clone(),
                canary: self.canary.clone(),
                interval: self.interval,
            });
        }
        if !(0.0..=100.0).contains(&self.success_rate_min) {
            return Err(Error::SuccessRateOutOfRange {
                namespace: self.namespace.clone(),
                canary: self.canary.clone(),
                value: self.success_rate_min,
            });
        }
        Ok(())
    }

    fn query(&self, kind: QueryKind) -> BuiltinQuery {
        BuiltinQuery::new(kind, &self.namespace, &self.canary, self.interval)
    }
}

/// A plan the checks cannot run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    #[error(
        "Deployment {namespace}/{canary}: analysis interval {interval:?} is shorter than 1ms; set {key} to a duration such as 30s or 1m",
        key = Setting::Interval.as_str()
    )]
    IntervalTooShort {
        namespace: String,
        canary: String,
        interval: Duration,
    },
    #[error(
        "Deployment {namespace}/{canary}: {key} {value} is not a percentage; set it between 0 and 100",
        key = Setting::SuccessRate.as_str()
    )]
    SuccessRateOutOfRange {
        namespace: String,
        canary: String,
        value: f64,
    },
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::IntervalTooShort { .. } => "interval_too_short",
            Error::SuccessRateOutOfRange { .. } => "success_rate_out_of_range",
        }
    }
}

/// What Prometheus answered for one interval. `Ok(None)` is an empty result. When the requests
/// gate closes, [`run_builtin`] does not ask for the other two and leaves them `Ok(None)`;
/// [`judge`] does not read them then.
#[derive(Debug)]
pub struct Measurements {
    /// Canary responses in the window.
    pub requests: Result<Option<f64>, PromError>,
    /// Canary success rate in the window, percent.
    pub success_rate: Result<Option<f64>, PromError>,
    /// Canary p99 latency in the window, milliseconds.
    pub latency_p99_ms: Result<Option<f64>, PromError>,
}

/// The verdict of one interval, all checks together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntervalOutcome {
    /// No check failed and at least one passed: advance.
    Passed,
    /// These checks failed (names, in order): count one failed check against `threshold`.
    Failed { checks: Vec<String> },
    /// Too little traffic to judge anything: neither advance nor count a failure.
    NoVerdict,
}

/// Runs the built-in checks against Prometheus, now. Never fails: every problem is a verdict.
pub async fn run_builtin(prom: &PromClient, plan: &CheckPlan) -> Vec<CheckVerdict> {
    run_builtin_at(prom, plan, SystemTime::now()).await
}

/// [`run_builtin`] for the window ending at `at`.
pub async fn run_builtin_at(
    prom: &PromClient,
    plan: &CheckPlan,
    at: SystemTime,
) -> Vec<CheckVerdict> {
    if let Err(e) = plan.validate() {
        return both(CheckResult::Fail, None, &e.to_string());
    }
    let ask = |kind| async move {
        prom.query(&plan.query(kind).promql(), Some(at))
            .await
            .map(|s| match s {
                Sample::Value(v) => Some(v),
                Sample::Empty => None,
            })
    };
    let requests = ask(QueryKind::Requests).await;
    let (success_rate, latency_p99_ms) = match gate(plan, &requests) {
        Gate::Open => tokio::join!(ask(QueryKind::SuccessRate), ask(QueryKind::LatencyP99)),
        Gate::Closed(..) => (Ok(None), Ok(None)),
    };
    judge(
        plan,
        &Measurements {
            requests,
            success_rate,
            latency_p99_ms,
        },
    )
}

/// Whether the canary's request count allows a verdict.
enum Gate {
    Open,
    /// Every built-in check gets this result and detail.
    Closed(CheckResult, String),
}

fn gate(plan: &CheckPlan, requests: &Result<Option<f64>, PromError>) -> Gate {
    let min = plan.min_requests;
    let count = match requests {
        Err(e) => {
            return Gate::Closed(
                CheckResult::Fail,
                format!(
                    "cannot count the canary's requests, so {} cannot be applied: {}",
                    Setting::MinRequests.as_str(),
                    describe(e)
                ),
            );
        }
        Ok(None) => 0.0,
        Ok(Some(v)) if !v.is_finite() || *v < 0.0 => {
            return Gate::Closed(
                CheckResult::Fail,
                format!(
                    "Prometheus counted {} requests for the canary, which is not a request count",
                    num(*v)
                ),
            );
        }
        Ok(Some(v)) => *v,
    };
    if count < min as f64 {
        Gate::Closed(
            CheckResult::NoVerdict,
            format!(
                "{} requests < {} {min}: no verdict",
                num(count),
                Setting::MinRequests.as_str()
            ),
        )
    } else {
        Gate::Open
    }
}

/// Judges one interval's measurements against the plan: the `success-rate` and `latency-p99`
/// verdicts, in that order.
pub fn judge(plan: &CheckPlan, m: &Measurements) -> Vec<CheckVerdict> {
    if let Err(e) = plan.validate() {
        return both(CheckResult::Fail, None, &e.to_string());
    }
    if let Gate::Closed(result, detail) = gate(plan, &m.requests) {
        return both(result, None, &detail);
    }
    let seen = format!(
        "{} requests of {}/{}",
        num(m.requests.as_ref().ok().copied().flatten().unwrap_or(0.0)),
        plan.namespace,
        plan.canary
    );
    vec![
        judge_success_rate(plan, &m.success_rate, &seen),
        judge_latency(plan, &m.latency_p99_ms, &seen),
    ]
}

fn judge_success_rate(
    plan: &CheckPlan,
    measured: &Result<Option<f64>, PromError>,
    seen: &str,
) -> CheckVerdict {
    let min = plan.success_rate_min;
    let v = match measured_value(SUCCESS_RATE, measured, seen) {
        Ok(v) => v,
        Err(fail) => return fail,
    };
    // The ratio of two separately summed rates can land a rounding error above 100.
    let v = if v > 100.0 && v <= 100.0 + 1e-9 {
        100.0
    } else {
        v
    };
    if !(0.0..=100.0).contains(&v) {
        return fail(
            SUCCESS_RATE,
            Some(v),
            format!("Prometheus answered a success rate of {v}%, which is not a percentage"),
        );
    }
    let (shown, bound) = pair(v, min, Some(2));
    if v >= min {
        pass(SUCCESS_RATE, v, format!("{shown}% >= {bound}%"))
    } else {
        fail(SUCCESS_RATE, Some(v), format!("{shown}% < {bound}%"))
    }
}

fn judge_latency(
    plan: &CheckPlan,
    measured: &Result<Option<f64>, PromError>,
    seen: &str,
) -> CheckVerdict {
    let max = plan.latency_p99_max.as_secs_f64() * 1000.0;
    let v = match measured_value(LATENCY_P99, measured, seen) {
        Ok(v) => v,
        Err(fail) => return fail,
    };
    if v < 0.0 {
        return fail(
            LATENCY_P99,
            Some(v),
            format!("Prometheus answered a p99 latency of {v}ms, which is not a latency"),
        );
    }
    let (shown, bound) = pair(v, max, None);
    if v <= max {
        pass(LATENCY_P99, v, format!("{shown}ms <= {bound}ms"))
    } else {
        fail(LATENCY_P99, Some(v), format!("{shown}ms > {bound}ms"))
    }
}

/// The finite value of a measurement, or the failed verdict saying why there is none.
fn measured_value(
    name: &str,
    measured: &Result<Option<f64>, PromError>,
    seen: &str,
) -> Result<f64, CheckVerdict> {
    match measured {
        Err(e) => Err(fail(name, None, describe(e))),
        Ok(None) => Err(fail(
            name,
            None,
            format!(
                "Prometheus returned no data for {name} although it counted {seen}; check that the canary's pods are meshed and export Linkerd's response metrics"
            ),
        )),
        Ok(Some(v)) if !v.is_finite() => Err(fail(
            name,
            None,
            format!("Prometheus returned {v} for {name}, not a number"),
        )),
        Ok(Some(v)) => Ok(*v),
    }
}

/// A query error for a person reading an Event: what kind of failure, then Prometheus' or the
/// transport's own words (`Prometheus unreachable: cannot reach Prometheus at …`).
pub fn describe(e: &PromError) -> String {
    let kind = match e {
        PromError::InvalidUrl { .. } => "bad Prometheus URL",
        PromError::Unreachable { .. } => "Prometheus unreachable",
        PromError::Unauthorized { .. } => "Prometheus refused the credentials",
        PromError::Tls { .. } => "Prometheus TLS failed",
        PromError::Timeout { .. } => "Prometheus timed out",
        PromError::Http { .. } => "Prometheus failed",
        PromError::Api { .. } => "query refused",
        PromError::Unparseable { .. } => "not a Prometheus answer",
        PromError::EmptyResult { .. } => "no data",
        PromError::NotFinite { .. } => "not a number",
        PromError::MultipleSeries { .. } | PromError::UnexpectedResultType { .. } => {
            "not one number"
        }
    };
    format!("{kind}: {e}")
}

/// Folds an interval's verdicts into what the rollout does next: any failure fails the
/// interval; otherwise any check without a verdict (too little traffic) holds it, so a custom
/// check that passes on an idle canary cannot advance the weight; otherwise it passes.
pub fn outcome(verdicts: &[CheckVerdict]) -> IntervalOutcome {
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| v.result == CheckResult::Fail)
        .map(|v| v.name.clone())
        .collect();
    if !failed.is_empty() {
        IntervalOutcome::Failed { checks: failed }
    } else if verdicts.is_empty() || verdicts.iter().any(|v| v.result == CheckResult::NoVerdict) {
        IntervalOutcome::NoVerdict
    } else {
        IntervalOutcome::Passed
    }
}

/// The verdicts in one line for an Event, the status message or `sluice status`:
/// `success-rate fail (97.50% < 99%); latency-p99 pass (412ms <= 500ms)`. A check without a
/// verdict reads `not enough traffic`, which is the only reason there is none, so a rollback
/// after `threshold` silent intervals says why in the same words.
pub fn summary(verdicts: &[CheckVerdict]) -> String {
    verdicts
        .iter()
        .map(|v| {
            let result = match v.result {
                CheckResult::Pass => "pass",
                CheckResult::Fail => "fail",
                CheckResult::NoVerdict => "not enough traffic",
            };
            format!("{} {result} ({})", v.name, v.detail)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn both(result: CheckResult, value: Option<f64>, detail: &str) -> Vec<CheckVerdict> {
    [SUCCESS_RATE, LATENCY_P99]
        .into_iter()
        .map(|name| CheckVerdict {
            name: name.to_string(),
            result,
            value,
            detail: detail.to_string(),
            baseline: None,
        })
        .collect()
}

fn pass(name: &str, value: f64, detail: String) -> CheckVerdict {
    CheckVerdict {
        name: name.to_string(),
        result: CheckResult::Pass,
        value: Some(value),
        detail,
        baseline: None,
    }
}

fn fail(name: &str, value: Option<f64>, detail: String) -> CheckVerdict {
    CheckVerdict {
        name: name.to_string(),
        result: CheckResult::Fail,
        value,
        detail,
        baseline: None,
    }
}

/// A number for people: at most two decimals, trailing zeros dropped (`12`, `97.5`, `0.25`).
pub(crate) fn num(v: f64) -> String {
    trim(format!("{v:.2}"))
}

/// A measured value and its bound for a detail: the value with `decimals` places (`97.50`) or,
/// with `None`, at most two (`412.37`, `412`); more if rounding would make it look equal to a
/// bound it is not equal to (`500.004ms > 500ms`, never `500ms > 500ms`).
fn pair(value: f64, bound: f64, decimals: Option<usize>) -> (String, String) {
    let mut shown = match decimals {
        Some(d) => format!("{value:.d$}"),
        None => num(value),
    };
    if value != bound && shown.parse::<f64>() == Ok(bound) {
        shown = format!("{value}");
    }
    (shown, num(bound))
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// What the analysis tests share: a plan for `shop/app` (interval 1m, success rate 99%, p99
/// 500ms, min-requests 20) and a verdict with no value.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::time::Duration;

    use super::CheckPlan;
    use crate::controller::status::{CheckResult, CheckVerdict};

    pub fn mk_plan() -> CheckPlan {
        CheckPlan {
            namespace: "shop".into(),
            canary: "app".into(),
            primary: "app-primary".into(),
            interval: Duration::from_secs(60),
            success_rate_min: 99.0,
            latency_p99_max: Duration::from_millis(500),
            min_requests: 20,
        }
    }

    pub fn verdict(name: &str, result: CheckResult) -> CheckVerdict {
        CheckVerdict {
            name: name.into(),
            result,
            value: None,
            detail: String::new(),
            baseline: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{mk_plan, verdict};
    use super::*;

    fn mk(requests: Option<f64>, sr: Option<f64>, p99: Option<f64>) -> Measurements {
        Measurements {
            requests: Ok(requests),
            success_rate: Ok(sr),
            latency_p99_ms: Ok(p99),
        }
    }

    fn timeout() -> PromError {
        PromError::Timeout {
            url: "http://prom:9090/api/v1/query".into(),
            timeout: Duration::from_secs(5),
        }
    }

    fn results(v: &[CheckVerdict]) -> Vec<(&str, CheckResult)> {
        v.iter().map(|v| (v.name.as_str(), v.result)).collect()
    }

    #[test]
    fn a_healthy_canary_passes_both_checks_with_their_figures() {
        let v = judge(&mk_plan(), &mk(Some(1200.0), Some(99.2), Some(412.0)));
        assert_eq!(
            results(&v),
            [
                (SUCCESS_RATE, CheckResult::Pass),
                (LATENCY_P99, CheckResult::Pass)
            ]
        );
        assert_eq!(v[0].value, Some(99.2));
        assert_eq!(v[0].detail, "99.20% >= 99%");
        assert_eq!(v[1].value, Some(412.0));
        assert_eq!(v[1].detail, "412ms <= 500ms");
    }

    #[test]
    fn a_low_success_rate_fails_saying_by_how_much() {
        let v = judge(&mk_plan(), &mk(Some(1200.0), Some(97.5), Some(100.0)));
        assert_eq!(v[0].result, CheckResult::Fail);
        assert_eq!(v[0].detail, "97.50% < 99%");
        assert_eq!(v[1].result, CheckResult::Pass);
    }

    #[test]
    fn a_slow_canary_fails_the_latency_check() {
        let v = judge(&mk_plan(), &mk(Some(1200.0), Some(100.0), Some(612.37)));
        assert_eq!(v[0].result, CheckResult::Pass);
        assert_eq!(v[1].result, CheckResult::Fail);
        assert_eq!(v[1].detail, "612.37ms > 500ms");
    }

    #[test]
    fn both_bounds_are_inclusive() {
        let v = judge(&mk_plan(), &mk(Some(20.0), Some(99.0), Some(500.0)));
        assert_eq!(
            results(&v),
            [
                (SUCCESS_RATE, CheckResult::Pass),
                (LATENCY_P99, CheckResult::Pass)
            ]
        );
        assert_eq!(v[0].detail, "99.00% >= 99%");
        assert_eq!(v[1].detail, "500ms <= 500ms");
    }

    #[test]
    fn a_value_just_past_a_bound_never_reads_as_equal_to_it() {
        let v = judge(&mk_plan(), &mk(Some(20.0), Some(98.999), Some(500.001)));
        assert_eq!(v[0].result, CheckResult::Fail);
        assert_eq!(v[0].detail, "98.999% < 99%");
        assert_eq!(v[1].result, CheckResult::Fail);
        assert_eq!(v[1].detail, "500.001ms > 500ms");
    }

    #[test]
    fn fewer_requests_than_min_requests_is_no_verdict_for_every_check() {
        let v = judge(&mk_plan(), &mk(Some(12.0), Some(50.0), Some(9000.0)));
        assert_eq!(
            results(&v),
            [
                (SUCCESS_RATE, CheckResult::NoVerdict),
                (LATENCY_P99, CheckResult::NoVerdict)
            ]
        );
        for verdict in &v {
            assert_eq!(verdict.detail, "12 requests < min-requests 20: no verdict");
            assert_eq!(verdict.value, None);
        }
    }

    #[test]
    fn exactly_min_requests_is_enough_for_a_verdict() {
        let v = judge(&mk_plan(), &mk(Some(20.0), Some(50.0), Some(10.0)));
        assert_eq!(v[0].result, CheckResult::Fail);
        let v = judge(&mk_plan(), &mk(Some(19.6), Some(50.0), Some(10.0)));
        assert_eq!(v[0].result, CheckResult::NoVerdict);
        assert_eq!(v[0].detail, "19.6 requests < min-requests 20: no verdict");
    }

    #[test]
    fn an_empty_request_count_means_no_traffic_yet() {
        let v = judge(&mk_plan(), &mk(None, None, None));
        assert_eq!(
            results(&v),
            [
                (SUCCESS_RATE, CheckResult::NoVerdict),
                (LATENCY_P99, CheckResult::NoVerdict)
            ]
        );
        assert_eq!(v[0].detail, "0 requests < min-requests 20: no verdict");
    }

    #[test]
    fn a_failed_request_count_fails_every_check_instead_of_looking_idle() {
        let m = Measurements {
            requests: Err(timeout()),
            success_rate: Ok(None),
            latency_p99_ms: Ok(None),
        };
        let v = judge(&mk_plan(), &m);
        assert_eq!(
            results(&v),
            [
                (SUCCESS_RATE, CheckResult::Fail),
                (LATENCY_P99, CheckResult::Fail)
            ]
        );
        for verdict in &v {
            assert!(
                verdict
                    .detail
                    .contains("cannot count the canary's requests"),
                "{}",
                verdict.detail
            );
            assert!(
                verdict.detail.contains("did not answer within 5s"),
                "{}",
                verdict.detail
            );
        }
    }

    #[test]
    fn a_nonsensical_request_count_fails_every_check() {
        for bad in [f64::NAN, f64::INFINITY, -3.0] {
            let v = judge(&mk_plan(), &mk(Some(bad), Some(100.0), Some(1.0)));
            assert_eq!(v[0].result, CheckResult::Fail, "{bad}");
            assert_eq!(v[1].result, CheckResult::Fail, "{bad}");
            assert!(
                v[0].detail.contains("not a request count"),
                "{}",
                v[0].detail
            );
        }
    }

    #[test]
    fn each_query_error_fails_only_its_check_with_prometheus_words() {
        let errors = [
            timeout(),
            PromError::Api {
                query: "q".into(),
                error_type: "bad_data".into(),
                error: "parse error".into(),
            },
            PromError::Http {
                url: "u".into(),
                status: 502,
                body: "Bad Gateway".into(),
            },
            PromError::Unparseable {
                url: "u".into(),
                reason: "not JSON".into(),
                body: "<html>".into(),
            },
            PromError::NotFinite {
                query: "q".into(),
                value: "NaN".into(),
            },
            PromError::MultipleSeries {
                query: "q".into(),
                count: 3,
            },
        ];
        for e in errors {
            let words = e.to_string();
            let m = Measurements {
                requests: Ok(Some(100.0)),
                success_rate: Err(e),
                latency_p99_ms: Ok(Some(10.0)),
            };
            let v = judge(&mk_plan(), &m);
            assert_eq!(v[0].result, CheckResult::Fail, "{words}");
            assert!(v[0].detail.ends_with(&words), "{}", v[0].detail);
            assert_eq!(v[0].value, None);
            assert_eq!(v[1].result, CheckResult::Pass, "{words}");
        }
    }

    #[test]
    fn an_error_reads_as_its_kind_then_its_words() {
        assert_eq!(
            describe(&timeout()),
            "Prometheus timed out: Prometheus at http://prom:9090/api/v1/query did not answer within 5s"
        );
        let nan = PromError::NotFinite {
            query: "q".into(),
            value: "NaN".into(),
        };
        assert!(describe(&nan).starts_with("not a number: query `q` returned NaN"));
    }

    #[test]
    fn nan_and_infinities_fail_the_check() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let v = judge(&mk_plan(), &mk(Some(100.0), Some(bad), Some(bad)));
            assert_eq!(v[0].result, CheckResult::Fail, "{bad}");
            assert_eq!(v[1].result, CheckResult::Fail, "{bad}");
            assert!(v[1].detail.contains("not a number"), "{}", v[1].detail);
        }
    }

    #[test]
    fn no_data_despite_traffic_fails_the_check() {
        let v = judge(&mk_plan(), &mk(Some(100.0), None, Some(10.0)));
        assert_eq!(v[0].result, CheckResult::Fail);
        assert!(
            v[0].detail.contains("no data") && v[0].detail.contains("100 requests of shop/app"),
            "{}",
            v[0].detail
        );
        assert_eq!(v[1].result, CheckResult::Pass);
    }

    #[test]
    fn a_rounding_error_above_100_percent_is_a_perfect_canary() {
        let v = judge(
            &mk_plan(),
            &mk(Some(100.0), Some(100.00000000000001), Some(1.0)),
        );
        assert_eq!(v[0].result, CheckResult::Pass, "{}", v[0].detail);
        assert_eq!(v[0].value, Some(100.0));
    }

    #[test]
    fn impossible_values_fail_rather_than_pass() {
        let v = judge(&mk_plan(), &mk(Some(100.0), Some(140.0), Some(-1.0)));
        assert_eq!(v[0].result, CheckResult::Fail);
        assert!(v[0].detail.contains("not a percentage"), "{}", v[0].detail);
        assert_eq!(v[1].result, CheckResult::Fail);
        assert!(v[1].detail.contains("not a latency"), "{}", v[1].detail);
    }

    #[test]
    fn with_min_requests_zero_an_idle_canary_fails_on_no_data() {
        let plan = CheckPlan {
            min_requests: 0,
            ..mk_plan()
        };
        let v = judge(&plan, &mk(None, None, None));
        assert_eq!(v[0].result, CheckResult::Fail);
        assert_eq!(v[1].result, CheckResult::Fail);
    }

    #[test]
    fn an_invalid_plan_fails_every_check_naming_the_setting() {
        let plan = CheckPlan {
            success_rate_min: 120.0,
            ..mk_plan()
        };
        let err = plan.validate().unwrap_err();
        assert_eq!(err.metric_label(), "success_rate_out_of_range");
        let v = judge(&plan, &mk(Some(100.0), Some(100.0), Some(1.0)));
        assert_eq!(v[0].result, CheckResult::Fail);
        assert!(
            v[0].detail.contains("shop/app") && v[0].detail.contains("success-rate 120"),
            "{}",
            v[0].detail
        );
        let plan = CheckPlan {
            interval: Duration::ZERO,
            ..mk_plan()
        };
        assert_eq!(
            plan.validate().unwrap_err().metric_label(),
            "interval_too_short"
        );
        assert!(
            plan.validate()
                .unwrap_err()
                .to_string()
                .contains("interval"),
            "bad message"
        );
        let nan = CheckPlan {
            success_rate_min: f64::NAN,
            ..mk_plan()
        };
        assert!(nan.validate().is_err());
    }

    #[test]
    fn any_failed_check_fails_the_interval_naming_it() {
        let v = [
            verdict(SUCCESS_RATE, CheckResult::Pass),
            verdict(LATENCY_P99, CheckResult::Fail),
            verdict("errors", CheckResult::NoVerdict),
        ];
        assert_eq!(
            outcome(&v),
            IntervalOutcome::Failed {
                checks: vec![LATENCY_P99.to_string()]
            }
        );
    }

    #[test]
    fn an_interval_without_any_verdict_is_no_verdict() {
        let v = [
            verdict(SUCCESS_RATE, CheckResult::NoVerdict),
            verdict(LATENCY_P99, CheckResult::NoVerdict),
        ];
        assert_eq!(outcome(&v), IntervalOutcome::NoVerdict);
        assert_eq!(outcome(&[]), IntervalOutcome::NoVerdict);
    }

    #[test]
    fn the_summary_reads_each_check_its_result_and_why() {
        let v = judge(&mk_plan(), &mk(Some(1200.0), Some(97.5), Some(412.0)));
        assert_eq!(
            summary(&v),
            "success-rate fail (97.50% < 99%); latency-p99 pass (412ms <= 500ms)"
        );
        let v = judge(&mk_plan(), &mk(Some(3.0), None, None));
        assert!(
            summary(&v)
                .starts_with("success-rate not enough traffic (3 requests < min-requests 20"),
            "{}",
            summary(&v)
        );
    }

    #[test]
    fn passes_only_when_every_check_gave_a_passing_verdict() {
        let v = [
            verdict(SUCCESS_RATE, CheckResult::NoVerdict),
            verdict(LATENCY_P99, CheckResult::NoVerdict),
            verdict("custom", CheckResult::Pass),
        ];
        assert_eq!(
            outcome(&v),
            IntervalOutcome::NoVerdict,
            "a custom check passing on an idle canary does not advance it"
        );
        assert_eq!(outcome(&[]), IntervalOutcome::NoVerdict);
        let v = [
            verdict(SUCCESS_RATE, CheckResult::Pass),
            verdict(LATENCY_P99, CheckResult::Pass),
        ];
        assert_eq!(outcome(&v), IntervalOutcome::Passed);
    }
}
