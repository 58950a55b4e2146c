//! The baseline comparison (DESIGN §5, `baseline: on`): the canary against the primary running
//! beside it, in the same window.
//!
//! ```text
//! run_baseline (I/O) ── join!(Requests, Failures, LatencyP99) × {canary "app", primary "app-primary"} ──► Prometheus
//!        ▼                        (all six at one instant: the same window for both sides)
//!   BaselineMeasurements ──judge_baseline (pure)──► [baseline-error-rate, baseline-latency]
//! ```
//!
//! - **Error rate**: one-sided two-proportion z-test with pooled variance
//!   ([`two_proportion_one_sided`], the same statistic as statsmodels'
//!   `proportions_ztest(alternative="larger")`). The canary fails when its error rate is higher
//!   with p < 0.05 **and** by more than `baseline-tolerance` percentage points: a significant but
//!   negligible difference (easy to reach at high traffic) does not roll back.
//! - **Latency**: the canary fails when its p99 exceeds the primary's × `baseline-latency-ratio`
//!   (inclusive bound: exactly 1.2× passes).
//! - Both need `min-requests` on **both** sides; below that, no verdict. An empty failure count
//!   with traffic seen is 0 failures (Linkerd creates the `classification="failure"` series on
//!   the first failure). Any other query problem fails the check with its reason, as for the
//!   built-in checks.
//! - When neither side had a failure (or every request failed on both), the rates are equal and
//!   the test is undefined (zero variance): the check passes, saying so.
//!
//! Guards against flakiness at small samples (a healthy canary must not fail on noise):
//! - **Error rate.** The z-test leans on the normal approximation, which is only trusted when
//!   each side expects at least [`MIN_EXPECTED_FAILURES`] failures and as many successes at the
//!   pooled rate (the usual n·p̂ ≥ 5 rule). Below that one stray failure looks "significant":
//!   1 of 20 canary requests against 0 of 180 gives z = 3.0, p = 0.001. There the p-value is
//!   Fisher's exact test instead ([`fisher_one_sided`], one-sided, as scipy's
//!   `fisher_exact(alternative="greater")`), which gives p = 0.1 for that case and still catches
//!   a real regression at low traffic (6 of 62 against 0 of 92: p = 0.004). The detail names
//!   the test used.
//! - **Latency.** A p99 of fewer than [`MIN_LATENCY_SAMPLES`] requests is the slowest single
//!   request, and Linkerd's coarse histogram buckets turn it into a bucket edge: two identical
//!   versions then differ by a whole bucket (50 → 100 ms). The p99s are compared only when both
//!   sides have that many requests (and `min-requests`); below it the check passes, saying
//!   why, and the absolute `latency-p99` check still applies.
//!
//! Recording: both verdicts carry [`BaselineFigures`] (in the `sluice.dev/status` annotation,
//! hence in `sluice status -o json`), besides the `detail` the Event and the table show. Each
//! side holds what Prometheus answered for it, as the judgement read it (an empty failure count
//! with traffic is 0 failures, as above); a figure it did not answer is absent and the side's
//! `note` says why: no data, fewer requests than `min-requests`, or the query's error. The
//! error-rate verdict adds the test, its statistic (z; Fisher's exact test has none), the
//! p-value and the tolerance; the latency verdict the ratio.

use std::time::SystemTime;

use crate::analysis::checks::{CheckPlan, describe, num};
use crate::analysis::prometheus::{PromClient, PromError, Sample};
use crate::analysis::queries::{BuiltinQuery, QueryKind};
use crate::controller::status::{
    BaselineFigures, BaselineTest, CheckResult, CheckVerdict, SideFigures,
};
use crate::policy::keys::Setting;

/// Name of the error-rate comparison in verdicts.
pub const BASELINE_ERROR_RATE: &str = "baseline-error-rate";
/// Name of the latency comparison in verdicts.
pub const BASELINE_LATENCY: &str = "baseline-latency";
/// Significance level of the error-rate test (DESIGN §5).
pub const SIGNIFICANCE: f64 = 0.05;
/// Failures (and successes) each side must expect at the pooled rate before the z-test's
/// normal approximation is trusted.
pub const MIN_EXPECTED_FAILURES: f64 = 5.0;
/// Requests each side needs before its p99 is more than its slowest request.
pub const MIN_LATENCY_SAMPLES: f64 = 100.0;

/// How far the canary may trail the primary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BaselinePlan {
    /// Error-rate points the canary may exceed the primary by (`baseline-tolerance`, 0.5).
    pub tolerance_points: f64,
    /// How much worse the canary p99 may be than the primary's (`baseline-latency-ratio`, 1.2).
    pub latency_ratio: f64,
}

impl Default for BaselinePlan {
    fn default() -> Self {
        Self {
            tolerance_points: 0.5,
            latency_ratio: 1.2,
        }
    }
}

/// One side's figures over the window. `Ok(None)` is an empty result.
#[derive(Debug)]
pub struct Side {
    /// Responses.
    pub requests: Result<Option<f64>, PromError>,
    /// Responses classified `failure`.
    pub failures: Result<Option<f64>, PromError>,
    /// p99 latency, milliseconds.
    pub latency_p99_ms: Result<Option<f64>, PromError>,
}

/// Both sides' figures over the same window.
#[derive(Debug)]
pub struct BaselineMeasurements {
    pub canary: Side,
    pub primary: Side,
}

/// One-sided two-proportion z-test that the canary's failure proportion exceeds the primary's,
/// with pooled variance. Returns `(z, p)`, or `None` when the test is undefined: a total ≤ 0,
/// failures outside `0..=total`, a non-finite input, or zero pooled variance (no failure on
/// either side, or nothing but failures).
pub fn two_proportion_one_sided(
    canary_failures: f64,
    canary_total: f64,
    primary_failures: f64,
    primary_total: f64,
) -> Option<(f64, f64)> {
    let valid =
        |x: f64, n: f64| x.is_finite() && n.is_finite() && n > 0.0 && (0.0..=n).contains(&x);
    if !valid(canary_failures, canary_total) || !valid(primary_failures, primary_total) {
        return None;
    }
    let (p1, p2) = (
        canary_failures / canary_total,
        primary_failures / primary_total,
    );
    let pooled = (canary_failures + primary_failures) / (canary_total + primary_total);
    let variance = pooled * (1.0 - pooled) * (1.0 / canary_total + 1.0 / primary_total);
    if variance <= 0.0 {
        return None;
    }
    let z = (p1 - p2) / variance.sqrt();
    Some((z, normal_sf(z)))
}

/// P(Z > z) for a standard normal Z, to about 1e-15 absolute and, in the upper tail, 1e-13
/// relative: Marsaglia's series below 3, the Laplace continued fraction above.
pub fn normal_sf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z < 0.0 {
        return 1.0 - normal_sf(-z);
    }
    let density = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    if z < 3.0 {
        // Φ(z) = 1/2 + φ(z) (z + z³/3 + z⁵/(3·5) + …)
        let (mut term, mut sum, mut k) = (z, z, 1.0);
        while term > sum * 1e-17 {
            k += 2.0;
            term *= z * z / k;
            sum += term;
        }
        0.5 - density * sum
    } else {
        // Q(z) = φ(z) / (z + 1/(z + 2/(z + 3/(z + …)))), evaluated from the tail up.
        let mut t = z;
        for k in (1..=300).rev() {
            t = z + k as f64 / t;
        }
        density / t
    }
}

/// Judges the canary against the primary: the `baseline-error-rate` and `baseline-latency`
/// verdicts, in that order.
pub fn judge_baseline(
    plan: &CheckPlan,
    baseline: &BaselinePlan,
    m: &BaselineMeasurements,
) -> Vec<CheckVerdict> {
    let figures = BaselineFigures {
        canary: side_figures(&m.canary, plan.min_requests),
        primary: side_figures(&m.primary, plan.min_requests),
        test: None,
        statistic: None,
        p_value: None,
        tolerance: None,
        latency_ratio: None,
    };
    let (mut verdicts, tested) = judge_sides(plan, baseline, m);
    for v in &mut verdicts {
        let mut f = figures.clone();
        if v.name == BASELINE_ERROR_RATE {
            f.tolerance = Some(baseline.tolerance_points);
            if let Some(t) = tested {
                (f.test, f.statistic, f.p_value) = (Some(t.test), t.statistic, Some(t.p_value));
            }
        } else {
            f.latency_ratio = Some(baseline.latency_ratio);
        }
        v.baseline = Some(Box::new(f));
    }
    verdicts
}

/// The error-rate test that ran, for the record.
#[derive(Clone, Copy, Debug)]
struct Tested {
    test: BaselineTest,
    statistic: Option<f64>,
    p_value: f64,
}

/// What one side's figures were, for the record: what Prometheus answered, as the judgement
/// reads it, and a note for each figure it did not answer.
fn side_figures(side: &Side, min_requests: u64) -> SideFigures {
    let mut f = SideFigures::default();
    let mut notes = Vec::new();
    match &side.requests {
        Err(e) => notes.push(format!("requests: {}", describe(e))),
        Ok(None) => notes.push("no data: no requests in the window".to_string()),
        Ok(Some(v)) if !v.is_finite() || *v < 0.0 => {
            notes.push(format!("Prometheus counted {v} requests"));
        }
        Ok(Some(v)) => {
            f.requests = Some(*v);
            if *v < min_requests as f64 {
                notes.push(format!(
                    "{} requests < {} {min_requests}: no verdict",
                    num(*v),
                    Setting::MinRequests.as_str()
                ));
            }
        }
    }
    let traffic = f.requests.filter(|r| *r > 0.0);
    match (&side.failures, traffic) {
        (Err(e), _) => notes.push(format!("failures: {}", describe(e))),
        (Ok(None), Some(_)) => f.failures = Some(0.0),
        (Ok(Some(v)), Some(r)) if v.is_finite() && (0.0..=r).contains(v) => {
            f.failures = Some(*v);
        }
        (Ok(Some(v)), Some(r)) => notes.push(format!(
            "Prometheus counted {v} failures of {} requests",
            num(r)
        )),
        (Ok(_), None) => {}
    }
    if let (Some(r), Some(failed)) = (traffic, f.failures) {
        f.error_rate = Some(100.0 * failed / r);
    }
    match &side.latency_p99_ms {
        Err(e) => notes.push(format!("p99: {}", describe(e))),
        Ok(Some(v)) if v.is_finite() && *v >= 0.0 => f.p99_ms = Some(*v),
        Ok(Some(v)) => notes.push(format!("Prometheus returned {v} for the p99")),
        Ok(None) if traffic.is_some() => notes.push("no p99 despite traffic".to_string()),
        Ok(None) => {}
    }
    f.note = (!notes.is_empty()).then(|| notes.join("; "));
    f
}

/// The two verdicts, before the figures are attached, and the error-rate test if one ran.
fn judge_sides(
    plan: &CheckPlan,
    baseline: &BaselinePlan,
    m: &BaselineMeasurements,
) -> (Vec<CheckVerdict>, Option<Tested>) {
    let min = plan.min_requests as f64;
    let sides = [
        ("canary", &plan.canary, &m.canary),
        ("primary", &plan.primary, &m.primary),
    ];
    let mut totals = [0.0; 2];
    for (i, (role, name, side)) in sides.iter().enumerate() {
        let count = match &side.requests {
            Err(e) => {
                return (
                    both(
                        CheckResult::Fail,
                        &format!("cannot count the {role} {name}'s requests: {}", describe(e)),
                    ),
                    None,
                );
            }
            Ok(None) => 0.0,
            Ok(Some(v)) if !v.is_finite() || *v < 0.0 => {
                return (
                    both(
                        CheckResult::Fail,
                        &format!(
                            "Prometheus counted {v} requests for the {role} {name}, which is not a request count"
                        ),
                    ),
                    None,
                );
            }
            Ok(Some(v)) => *v,
        };
        if count < min {
            return (
                both(
                    CheckResult::NoVerdict,
                    &format!(
                        "{role} {name}: {} requests < {} {}: no verdict",
                        num(count),
                        Setting::MinRequests.as_str(),
                        plan.min_requests
                    ),
                ),
                None,
            );
        }
        totals[i] = count;
    }
    let (error_rate, tested) = judge_error_rate(baseline, m, totals);
    (vec![error_rate, judge_latency(baseline, m, totals)], tested)
}

/// Whether the z-test's normal approximation holds: each side expects at least
/// [`MIN_EXPECTED_FAILURES`] failures and successes at the pooled rate. `None` when it does;
/// otherwise the smallest expected count, for the message.
fn too_small_for_z_test(cf: f64, ct: f64, pf: f64, pt: f64) -> Option<f64> {
    let pooled = (cf + pf) / (ct + pt);
    let smallest = [ct, pt]
        .into_iter()
        .flat_map(|n| [n * pooled, n * (1.0 - pooled)])
        .fold(f64::INFINITY, f64::min);
    (smallest < MIN_EXPECTED_FAILURES).then_some(smallest)
}

/// One-sided Fisher's exact test that the canary's failure proportion exceeds the primary's:
/// P(X ≥ canary failures) for X hypergeometric (all failures spread over both sides at random).
/// Counts are rounded to whole requests (Prometheus' `increase` extrapolates). `None` when a
/// count is not a valid count.
pub fn fisher_one_sided(
    canary_failures: f64,
    canary_total: f64,
    primary_failures: f64,
    primary_total: f64,
) -> Option<f64> {
    let [cf, ct, pf, pt] = [
        canary_failures,
        canary_total,
        primary_failures,
        primary_total,
    ]
    .map(f64::round);
    if ![cf, ct, pf, pt].iter().all(|x| x.is_finite() && *x >= 0.0) || cf > ct || pf > pt {
        return None;
    }
    let (n, failures) = (ct + pt, cf + pf);
    // Support of X: lo..=hi. Weights relative to P(X = lo), in logs, by the ratio
    // P(k+1)/P(k) = (K-k)(n1-k) / ((k+1)(N-K-n1+k+1)).
    let lo = (ct + failures - n).max(0.0);
    let hi = failures.min(ct);
    let mut log_w = Vec::with_capacity((hi - lo) as usize + 1);
    let mut k = lo;
    let mut acc = 0.0;
    log_w.push(acc);
    while k < hi {
        acc += ((failures - k) * (ct - k) / ((k + 1.0) * (n - failures - ct + k + 1.0))).ln();
        log_w.push(acc);
        k += 1.0;
    }
    let top = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weight = |lw: &f64| (lw - top).exp();
    let total: f64 = log_w.iter().map(weight).sum();
    let from = (cf - lo).max(0.0) as usize;
    let tail: f64 = log_w.iter().skip(from).map(weight).sum();
    Some((tail / total).min(1.0))
}

fn judge_error_rate(
    baseline: &BaselinePlan,
    m: &BaselineMeasurements,
    [canary_total, primary_total]: [f64; 2],
) -> (CheckVerdict, Option<Tested>) {
    let failures = |role: &str, side: &Side, total: f64| match &side.failures {
        Err(e) => Err(format!(
            "cannot count the {role}'s failures: {}",
            describe(e)
        )),
        Ok(None) => Ok(0.0),
        Ok(Some(v)) if v.is_finite() && (0.0..=total).contains(v) => Ok(*v),
        Ok(Some(v)) => Err(format!(
            "Prometheus counted {v} failures of {} {role} requests, which is impossible",
            num(total)
        )),
    };
    let (cf, pf) = match (
        failures("canary", &m.canary, canary_total),
        failures("primary", &m.primary, primary_total),
    ) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(e), _) | (_, Err(e)) => {
            return (
                verdict(BASELINE_ERROR_RATE, CheckResult::Fail, None, e),
                None,
            );
        }
    };
    let (cr, pr) = (100.0 * cf / canary_total, 100.0 * pf / primary_total);
    let excess = cr - pr;
    let figures = format!(
        "canary {}% of {} vs primary {}% of {} requests failed",
        rate(cr),
        num(canary_total),
        rate(pr),
        num(primary_total)
    );
    let Some((z, p)) = two_proportion_one_sided(cf, canary_total, pf, primary_total) else {
        let v = verdict(
            BASELINE_ERROR_RATE,
            CheckResult::Pass,
            Some(excess),
            format!("{figures}: equal rates"),
        );
        return (v, None);
    };
    let (p, stats, note, tested) = match too_small_for_z_test(cf, canary_total, pf, primary_total) {
        None => (
            p,
            format!("z={z:.2}, p={}", p_value(p)),
            String::new(),
            (BaselineTest::ZTest, Some(z)),
        ),
        Some(expected) => {
            let exact = fisher_one_sided(cf, canary_total, pf, primary_total).unwrap_or(1.0);
            (
                exact,
                format!("Fisher's exact p={}", p_value(exact)),
                format!(
                    "; exact test, as a side expects {} < {} failures",
                    num(expected),
                    num(MIN_EXPECTED_FAILURES)
                ),
                (BaselineTest::FisherExact, None),
            )
        }
    };
    let v = judge_significance(baseline, excess, p, &figures, &stats, &note);
    let tested = Tested {
        test: tested.0,
        statistic: tested.1,
        p_value: p,
    };
    (v, Some(tested))
}

/// The error-rate verdict once the p-value is known: fails when significant and beyond the
/// tolerance.
fn judge_significance(
    baseline: &BaselinePlan,
    excess: f64,
    p: f64,
    figures: &str,
    stats: &str,
    note: &str,
) -> CheckVerdict {
    let tolerance = baseline.tolerance_points;
    if p < SIGNIFICANCE && excess > tolerance {
        verdict(
            BASELINE_ERROR_RATE,
            CheckResult::Fail,
            Some(excess),
            format!(
                "{figures}: +{} points > {} {}, and significant ({stats} < {SIGNIFICANCE}){note}",
                num(excess),
                Setting::BaselineTolerance.as_str(),
                num(tolerance)
            ),
        )
    } else {
        let why = if p >= SIGNIFICANCE {
            format!("not significant ({stats} >= {SIGNIFICANCE})")
        } else {
            format!(
                "{stats}, but within {} {}",
                Setting::BaselineTolerance.as_str(),
                num(tolerance)
            )
        };
        verdict(
            BASELINE_ERROR_RATE,
            CheckResult::Pass,
            Some(excess),
            format!("{figures}: {why}{note}"),
        )
    }
}

fn judge_latency(
    baseline: &BaselinePlan,
    m: &BaselineMeasurements,
    [canary_total, primary_total]: [f64; 2],
) -> CheckVerdict {
    let value = |role: &str, r: &Result<Option<f64>, PromError>| match r {
        Err(e) => Err(format!("{role} p99: {}", describe(e))),
        Ok(None) => Err(format!(
            "Prometheus returned no {role} p99 latency although the {role} had traffic"
        )),
        Ok(Some(v)) if v.is_finite() && *v >= 0.0 => Ok(*v),
        Ok(Some(v)) => Err(format!(
            "Prometheus returned {v} for the {role} p99 latency"
        )),
    };
    let (c, p) = match (
        value("canary", &m.canary.latency_p99_ms),
        value("primary", &m.primary.latency_p99_ms),
    ) {
        (Ok(c), Ok(p)) => (c, p),
        (Err(e), _) | (_, Err(e)) => return verdict(BASELINE_LATENCY, CheckResult::Fail, None, e),
    };
    let ratio = baseline.latency_ratio;
    if canary_total.min(primary_total) < MIN_LATENCY_SAMPLES {
        return verdict(
            BASELINE_LATENCY,
            CheckResult::Pass,
            Some(c),
            format!(
                "canary p99 {}ms of {} vs primary p99 {}ms of {} requests: not compared, a p99 needs {} requests on each side; {} still applies",
                num(c),
                num(canary_total),
                num(p),
                num(primary_total),
                num(MIN_LATENCY_SAMPLES),
                Setting::LatencyP99.as_str()
            ),
        );
    }
    let limit = p * ratio;
    let detail = |op: &str| {
        format!(
            "canary p99 {}ms {op} primary p99 {}ms × {} {}",
            num(c),
            num(p),
            Setting::BaselineLatencyRatio.as_str(),
            num(ratio)
        )
    };
    if c <= limit {
        verdict(BASELINE_LATENCY, CheckResult::Pass, Some(c), detail("<="))
    } else {
        verdict(BASELINE_LATENCY, CheckResult::Fail, Some(c), detail(">"))
    }
}

/// Runs the baseline comparison against Prometheus, now. Never fails: every problem is a verdict.
pub async fn run_baseline(
    prom: &PromClient,
    plan: &CheckPlan,
    baseline: &BaselinePlan,
) -> Vec<CheckVerdict> {
    run_baseline_at(prom, plan, baseline, SystemTime::now()).await
}

/// [`run_baseline`] for the window ending at `at`.
pub async fn run_baseline_at(
    prom: &PromClient,
    plan: &CheckPlan,
    baseline: &BaselinePlan,
    at: SystemTime,
) -> Vec<CheckVerdict> {
    if let Err(e) = plan.validate() {
        return both(CheckResult::Fail, &e.to_string());
    }
    let ask = |kind, deployment: &str| {
        let q = BuiltinQuery::new(kind, &plan.namespace, deployment, plan.interval).promql();
        async move {
            prom.query(&q, Some(at)).await.map(|s| match s {
                Sample::Value(v) => Some(v),
                Sample::Empty => None,
            })
        }
    };
    let (cr, cf, cl, pr, pf, pl) = tokio::join!(
        ask(QueryKind::Requests, &plan.canary),
        ask(QueryKind::Failures, &plan.canary),
        ask(QueryKind::LatencyP99, &plan.canary),
        ask(QueryKind::Requests, &plan.primary),
        ask(QueryKind::Failures, &plan.primary),
        ask(QueryKind::LatencyP99, &plan.primary),
    );
    let m = BaselineMeasurements {
        canary: Side {
            requests: cr,
            failures: cf,
            latency_p99_ms: cl,
        },
        primary: Side {
            requests: pr,
            failures: pf,
            latency_p99_ms: pl,
        },
    };
    judge_baseline(plan, baseline, &m)
}

fn both(result: CheckResult, detail: &str) -> Vec<CheckVerdict> {
    [BASELINE_ERROR_RATE, BASELINE_LATENCY]
        .into_iter()
        .map(|name| verdict(name, result, None, detail.to_string()))
        .collect()
}

fn verdict(name: &str, result: CheckResult, value: Option<f64>, detail: String) -> CheckVerdict {
    CheckVerdict {
        name: name.to_string(),
        result,
        value,
        detail,
        baseline: None,
    }
}

/// An error rate in percent with enough digits to tell 0.1 % from 0.14 % (`2`, `0.1`, `0.014`).
fn rate(v: f64) -> String {
    if v != 0.0 && v.abs() < 1.0 {
        format!("{}", (v * 1000.0).round() / 1000.0)
    } else {
        num(v)
    }
}

/// A p-value as a person reads one: `0.033`, `4.5e-40`.
fn p_value(p: f64) -> String {
    if p >= 0.001 {
        format!("{}", (p * 1000.0).round() / 1000.0)
    } else {
        format!("{p:.1e}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::analysis::checks::fixtures::mk_plan;

    fn side(requests: f64, failures: Option<f64>, p99: f64) -> Side {
        Side {
            requests: Ok(Some(requests)),
            failures: Ok(failures),
            latency_p99_ms: Ok(Some(p99)),
        }
    }

    fn judge(canary: Side, primary: Side) -> Vec<CheckVerdict> {
        judge_baseline(
            &mk_plan(),
            &BaselinePlan::default(),
            &BaselineMeasurements { canary, primary },
        )
    }

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs().max(f64::MIN_POSITIVE)
    }

    /// `((canary failures, canary total, primary failures, primary total), z, p)`.
    type Reference = ((f64, f64, f64, f64), f64, f64);

    /// Reference values from statsmodels 0.15.0 (scipy 1.17.1):
    /// `pip install scipy statsmodels && python3 -c "from statsmodels.stats.proportion import
    /// proportions_ztest as t; print(t([CF, PF], [CT, PT], alternative='larger'))"`
    /// for each `(CF, CT, PF, PT)` below.
    const REFERENCE: [Reference; 9] = [
        (
            (20.0, 1000.0, 10.0, 1000.0),
            1.839590920463876,
            0.03291415918759529,
        ),
        (
            (200.0, 10000.0, 10.0, 10000.0),
            13.180626522199075,
            5.672238523740141e-40,
        ),
        ((10.0, 1000.0, 10.0, 1000.0), 0.0, 0.5),
        (
            (5.0, 1000.0, 20.0, 1000.0),
            -3.018927632559765,
            0.9987316444125157,
        ),
        (
            (3.0, 50.0, 1.0, 60.0),
            1.208916038201737,
            0.11334755192665058,
        ),
        (
            (27.0, 1000.0, 16.0, 1000.0),
            1.6958133207933492,
            0.04496061949004338,
        ),
        (
            (1.0, 20.0, 0.0, 20.0),
            1.0127393670836666,
            0.15559233441130899,
        ),
        (
            (25.0, 1000.0, 16.0, 1000.0),
            1.4201962478606718,
            0.07777527785761171,
        ),
        // Too small for the normal approximation: Fisher's exact test gives p = 0.1 here
        // (`scipy.stats.fisher_exact([[1, 19], [0, 180]], alternative='greater')`).
        (
            (1.0, 20.0, 0.0, 180.0),
            3.007528242702513,
            0.0013169082494085475,
        ),
    ];

    #[test]
    fn the_z_test_matches_statsmodels() {
        for ((cf, ct, pf, pt), want_z, want_p) in REFERENCE {
            let (z, p) = two_proportion_one_sided(cf, ct, pf, pt).unwrap();
            assert!(
                (z - want_z).abs() < 1e-12,
                "{cf}/{ct} vs {pf}/{pt}: z {z} != {want_z}"
            );
            assert!(
                close(p, want_p, 1e-9),
                "{cf}/{ct} vs {pf}/{pt}: p {p} != {want_p}"
            );
        }
    }

    #[test]
    fn the_normal_tail_matches_scipy_across_the_switch_from_series_to_fraction() {
        // python3 -c "from scipy.stats import norm; print([norm.sf(z) for z in (0.5, 2.9999, 3.0, 5, 8)])"
        let reference = [
            (0.5, 0.3085375387259869),
            (2.9999, 0.001350341282954925),
            (3.0, 0.0013498980316300933),
            (5.0, 2.866515718791933e-07),
            (8.0, 6.22096057427174e-16),
        ];
        for (z, want) in reference {
            assert!(
                close(normal_sf(z), want, 1e-10),
                "sf({z}) = {} != {want}",
                normal_sf(z)
            );
        }
    }

    #[test]
    fn an_undefined_test_is_none() {
        assert_eq!(two_proportion_one_sided(0.0, 1000.0, 0.0, 1000.0), None);
        assert_eq!(two_proportion_one_sided(5.0, 5.0, 9.0, 9.0), None);
        assert_eq!(two_proportion_one_sided(1.0, 0.0, 1.0, 10.0), None);
        assert_eq!(two_proportion_one_sided(11.0, 10.0, 1.0, 10.0), None);
        assert_eq!(two_proportion_one_sided(f64::NAN, 10.0, 1.0, 10.0), None);
    }

    #[test]
    fn a_canary_significantly_worse_beyond_tolerance_fails() {
        // The issue's scenario: primary 0.1 % errors, canary 2 %.
        let v = judge(
            side(10_000.0, Some(200.0), 40.0),
            side(10_000.0, Some(10.0), 40.0),
        );
        assert_eq!(v[0].name, BASELINE_ERROR_RATE);
        assert_eq!(v[0].result, CheckResult::Fail, "{}", v[0].detail);
        assert_eq!(
            v[0].detail,
            "canary 2% of 10000 vs primary 0.1% of 10000 requests failed: +1.9 points > baseline-tolerance 0.5, and significant (z=13.18, p=5.7e-40 < 0.05)"
        );
        assert!((v[0].value.unwrap() - 1.9).abs() < 1e-9);
        assert_eq!(v[1].result, CheckResult::Pass);
    }

    #[test]
    fn a_significant_difference_within_tolerance_passes() {
        // 2.7 % vs 1.6 %: p = 0.045 < 0.05, but +1.1 points; with tolerance 1.5 it passes.
        let plan = BaselinePlan {
            tolerance_points: 1.5,
            ..BaselinePlan::default()
        };
        let v = judge_baseline(
            &mk_plan(),
            &plan,
            &BaselineMeasurements {
                canary: side(1000.0, Some(27.0), 40.0),
                primary: side(1000.0, Some(16.0), 40.0),
            },
        );
        assert_eq!(v[0].result, CheckResult::Pass, "{}", v[0].detail);
        assert!(
            v[0].detail.contains("within baseline-tolerance 1.5"),
            "{}",
            v[0].detail
        );
    }

    #[test]
    fn a_large_difference_that_is_not_significant_passes() {
        // 2.5 % vs 1.6 % of 1000: +0.9 points, p = 0.078.
        let v = judge(
            side(1000.0, Some(25.0), 40.0),
            side(1000.0, Some(16.0), 40.0),
        );
        assert_eq!(v[0].result, CheckResult::Pass, "{}", v[0].detail);
        assert!(
            v[0].detail.contains("not significant (z=1.42, p=0.078"),
            "{}",
            v[0].detail
        );
    }

    /// `((canary failures, canary total, primary failures, primary total), p)` from scipy 1.17.1:
    /// `python3 -c "from scipy.stats import fisher_exact as f;
    /// print(f([[CF, CT-CF], [PF, PT-PF]], alternative='greater').pvalue)"`.
    const FISHER_REFERENCE: [((f64, f64, f64, f64), f64); 4] = [
        ((6.0, 62.0, 0.0, 92.0), 0.0036619922546878778),
        ((1.0, 20.0, 0.0, 180.0), 0.1),
        ((3.0, 50.0, 1.0, 60.0), 0.24359170890938014),
        ((2.0, 10000.0, 1.0, 100000.0), 0.02328891465189606),
    ];

    #[test]
    fn fishers_exact_test_matches_scipy() {
        for ((cf, ct, pf, pt), want) in FISHER_REFERENCE {
            let p = fisher_one_sided(cf, ct, pf, pt).unwrap();
            assert!(
                close(p, want, 1e-9),
                "{cf}/{ct} vs {pf}/{pt}: p {p} != {want}"
            );
        }
        assert_eq!(fisher_one_sided(0.0, 10.0, 0.0, 10.0), Some(1.0));
        assert_eq!(fisher_one_sided(11.0, 10.0, 0.0, 10.0), None);
    }

    #[test]
    fn one_stray_failure_in_a_small_sample_is_judged_by_the_exact_test_and_passes() {
        // z = 3.0, p = 0.001 by the normal approximation, but 0.1 by Fisher's exact test.
        let v = judge(side(20.0, Some(1.0), 40.0), side(180.0, None, 40.0));
        assert_eq!(v[0].result, CheckResult::Pass, "{}", v[0].detail);
        assert_eq!(
            v[0].detail,
            "canary 5% of 20 vs primary 0% of 180 requests failed: not significant (Fisher's exact p=0.1 >= 0.05); exact test, as a side expects 0.1 < 5 failures"
        );
    }

    #[test]
    fn a_real_regression_at_low_traffic_still_fails_on_the_exact_test() {
        let v = judge(side(62.0, Some(6.0), 40.0), side(92.0, None, 40.0));
        assert_eq!(v[0].result, CheckResult::Fail, "{}", v[0].detail);
        assert!(
            v[0].detail.contains("Fisher's exact p=0.004"),
            "{}",
            v[0].detail
        );
    }

    #[test]
    fn p99s_of_fewer_than_a_hundred_requests_are_not_compared() {
        let v = judge(side(60.0, None, 100.0), side(1000.0, None, 50.0));
        assert_eq!(v[1].result, CheckResult::Pass, "{}", v[1].detail);
        assert!(
            v[1].detail
                .contains("not compared, a p99 needs 100 requests"),
            "{}",
            v[1].detail
        );
        let v = judge(side(100.0, None, 100.0), side(1000.0, None, 50.0));
        assert_eq!(v[1].result, CheckResult::Fail, "{}", v[1].detail);
    }

    #[test]
    fn equal_error_rates_raise_no_alarm() {
        let v = judge(
            side(1000.0, Some(10.0), 40.0),
            side(1000.0, Some(10.0), 40.0),
        );
        assert_eq!(v[0].result, CheckResult::Pass);
        let v = judge(side(1000.0, None, 40.0), side(1000.0, None, 40.0));
        assert_eq!(v[0].result, CheckResult::Pass);
        assert!(v[0].detail.ends_with("equal rates"), "{}", v[0].detail);
    }

    #[test]
    fn a_canary_p99_beyond_the_ratio_fails_and_exactly_at_it_passes() {
        let v = judge(side(1000.0, None, 61.0), side(1000.0, None, 50.0));
        assert_eq!(v[1].result, CheckResult::Fail);
        assert_eq!(
            v[1].detail,
            "canary p99 61ms > primary p99 50ms × baseline-latency-ratio 1.2"
        );
        let v = judge(side(1000.0, None, 60.0), side(1000.0, None, 50.0));
        assert_eq!(v[1].result, CheckResult::Pass, "{}", v[1].detail);
    }

    #[test]
    fn too_few_requests_on_either_side_is_no_verdict() {
        let v = judge(side(1000.0, None, 40.0), side(12.0, None, 40.0));
        assert!(
            v.iter().all(|v| v.result == CheckResult::NoVerdict),
            "{v:?}"
        );
        assert_eq!(
            v[0].detail,
            "primary app-primary: 12 requests < min-requests 20: no verdict"
        );
        let v = judge(
            Side {
                requests: Ok(None),
                failures: Ok(None),
                latency_p99_ms: Ok(None),
            },
            side(1000.0, None, 40.0),
        );
        assert!(
            v.iter().all(|v| v.result == CheckResult::NoVerdict),
            "{v:?}"
        );
    }

    fn figures(v: &CheckVerdict) -> &BaselineFigures {
        v.baseline
            .as_deref()
            .unwrap_or_else(|| panic!("no figures on {v:?}"))
    }

    #[test]
    fn a_failed_comparison_records_the_statistic_the_p_value_and_both_sides() {
        let v = judge(
            side(10_000.0, Some(200.0), 40.0),
            side(10_000.0, None, 38.0),
        );
        let f = figures(&v[0]);
        assert_eq!(f.test, Some(BaselineTest::ZTest));
        let (z, p) = two_proportion_one_sided(200.0, 10_000.0, 0.0, 10_000.0).unwrap();
        assert_eq!((f.statistic, f.p_value), (Some(z), Some(p)));
        assert_eq!((f.tolerance, f.latency_ratio), (Some(0.5), None));
        assert_eq!(
            f.canary,
            SideFigures {
                requests: Some(10_000.0),
                failures: Some(200.0),
                error_rate: Some(2.0),
                p99_ms: Some(40.0),
                note: None,
            }
        );
        // An empty failure count with traffic is 0 failures, as the judgement read it.
        assert_eq!(
            (f.primary.failures, f.primary.error_rate, f.primary.p99_ms),
            (Some(0.0), Some(0.0), Some(38.0))
        );
        let latency = figures(&v[1]);
        assert_eq!(
            (latency.test, latency.p_value, latency.tolerance),
            (None, None, None)
        );
        assert_eq!(latency.latency_ratio, Some(1.2));
        assert_eq!((&latency.canary, &latency.primary), (&f.canary, &f.primary));
    }

    #[test]
    fn the_exact_test_records_its_p_value_and_no_statistic() {
        let v = judge(side(20.0, Some(1.0), 40.0), side(180.0, None, 40.0));
        let f = figures(&v[0]);
        assert_eq!(f.test, Some(BaselineTest::FisherExact));
        assert_eq!(f.statistic, None);
        assert!(close(f.p_value.unwrap(), 0.1, 1e-9), "{f:?}");
    }

    #[test]
    fn equal_rates_record_both_sides_and_no_test() {
        let v = judge(side(1000.0, None, 40.0), side(1000.0, None, 40.0));
        let f = figures(&v[0]);
        assert_eq!((f.test, f.statistic, f.p_value), (None, None, None));
        assert_eq!(f.canary.error_rate, Some(0.0));
    }

    #[test]
    fn without_enough_traffic_the_figures_say_why_and_invent_nothing() {
        let empty = Side {
            requests: Ok(None),
            failures: Ok(None),
            latency_p99_ms: Ok(None),
        };
        let v = judge(empty, side(12.0, Some(1.0), 40.0));
        for v in &v {
            assert_eq!(v.result, CheckResult::NoVerdict);
            let f = figures(v);
            assert_eq!((f.test, f.statistic, f.p_value), (None, None, None));
            assert_eq!(
                f.canary,
                SideFigures {
                    note: Some("no data: no requests in the window".into()),
                    ..SideFigures::default()
                }
            );
            assert_eq!(f.primary.requests, Some(12.0));
            assert_eq!(
                f.primary.note.as_deref(),
                Some("12 requests < min-requests 20: no verdict")
            );
        }
    }

    #[test]
    fn a_query_error_is_the_sides_note_and_its_figure_is_absent() {
        let mut primary = side(1000.0, Some(3.0), 40.0);
        primary.latency_p99_ms = Err(PromError::Timeout {
            url: "http://prom".into(),
            timeout: Duration::from_secs(5),
        });
        let v = judge(side(1000.0, Some(2.0), 40.0), primary);
        let f = figures(&v[1]);
        assert_eq!(v[1].result, CheckResult::Fail);
        assert_eq!(f.primary.p99_ms, None);
        assert!(
            f.primary
                .note
                .as_deref()
                .is_some_and(|n| n.starts_with("p99: ") && n.contains("timed out")),
            "{f:?}"
        );
        assert_eq!(f.primary.error_rate, Some(0.3));
    }

    #[test]
    fn the_figures_read_as_camel_case_json_in_the_status() {
        let v = judge(side(20.0, Some(1.0), 40.0), side(180.0, None, 50.0));
        let json = serde_json::to_value(&v[0]).unwrap();
        assert_eq!(
            json["baseline"],
            serde_json::json!({
                "canary": {"requests": 20.0, "failures": 1.0, "errorRate": 5.0, "p99Ms": 40.0},
                "primary": {"requests": 180.0, "failures": 0.0, "errorRate": 0.0, "p99Ms": 50.0},
                "test": "fisherExact",
                "pValue": figures(&v[0]).p_value,
                "tolerance": 0.5
            })
        );
        let back: CheckVerdict = serde_json::from_value(json).unwrap();
        assert_eq!(back, v[0]);
    }

    #[test]
    fn query_errors_and_nonsense_fail_the_comparison() {
        let timeout = || PromError::Timeout {
            url: "http://prom".into(),
            timeout: Duration::from_secs(5),
        };
        let mut canary = side(1000.0, None, 40.0);
        canary.requests = Err(timeout());
        let v = judge(canary, side(1000.0, None, 40.0));
        assert!(v.iter().all(|v| v.result == CheckResult::Fail), "{v:?}");
        assert!(v[0].detail.contains("timed out"), "{}", v[0].detail);

        let v = judge(
            side(1000.0, Some(2000.0), 40.0),
            side(1000.0, None, f64::NAN),
        );
        assert_eq!(v[0].result, CheckResult::Fail);
        assert!(v[0].detail.contains("impossible"), "{}", v[0].detail);
        assert_eq!(v[1].result, CheckResult::Fail);

        let mut primary = side(1000.0, None, 40.0);
        primary.latency_p99_ms = Ok(None);
        let v = judge(side(1000.0, None, 40.0), primary);
        assert_eq!(v[1].result, CheckResult::Fail);
        assert!(v[1].detail.contains("no primary p99"), "{}", v[1].detail);
    }
}
