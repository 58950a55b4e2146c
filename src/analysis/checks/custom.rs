//! Custom checks (the `metrics` key): a person's PromQL with bounds, run beside the built-in
//! checks every interval.
//!
//! ```text
//! MetricCheck {name, query, min, max} ──render (pure)──► PromQL ──► Prometheus ──► Sample
//!                                                                      │
//!                                       judge (pure): in [min, max]? ◄─┘──► CheckVerdict
//! ```
//!
//! - The query's `{{namespace}}`, `{{name}}`, `{{canary}}`, `{{primary}}` and `{{interval}}`
//!   (whitespace inside the braces allowed) become the Deployment's namespace, its name, the
//!   canary's Deployment (`app`), the primary's (`app-primary`) and the interval as Prometheus
//!   writes a duration (`1m`, `30s`). An unknown variable never gets here: the policy parser
//!   refuses it at admission, and [`render`] leaves it as it is.
//! - A query error, an empty result, NaN or ±Inf, or several series fail the check with the
//!   reason in the verdict: never a pass. Unlike the built-in checks, `min-requests` does not
//!   apply: a custom check has no notion of traffic, so it always gives a verdict.
//! - Both bounds are inclusive.

use std::time::SystemTime;

use futures::future::join_all;

use crate::analysis::checks::{CheckPlan, describe, num};
use crate::analysis::prometheus::{PromClient, PromError, Sample};
use crate::analysis::queries::prom_duration;
use crate::controller::status::{CheckResult, CheckVerdict};
use crate::policy::values::MetricCheck;

/// `query` with every known `{{variable}}` replaced by its value for `plan`.
pub fn render(query: &str, plan: &CheckPlan) -> String {
    let value = |var: &str| -> Option<String> {
        Some(match var {
            "namespace" => plan.namespace.clone(),
            "name" | "canary" => plan.canary.clone(),
            "primary" => plan.primary.clone(),
            "interval" => prom_duration(plan.interval),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        match value(after[..close].trim()) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// The verdict of `check` on what Prometheus answered.
pub fn judge(check: &MetricCheck, answer: Result<Sample, PromError>) -> CheckVerdict {
    let verdict = |result, value, detail: String| CheckVerdict {
        name: check.name.clone(),
        result,
        value,
        detail,
        baseline: None,
    };
    let v = match answer {
        Ok(Sample::Value(v)) => v,
        Ok(Sample::Empty) => {
            return verdict(
                CheckResult::Fail,
                None,
                "no data: the query matched no series; check its labels".into(),
            );
        }
        Err(e) => return verdict(CheckResult::Fail, None, describe(&e)),
    };
    if let Some(min) = check.min.filter(|min| v < *min) {
        return verdict(
            CheckResult::Fail,
            Some(v),
            format!("{} < min {}", num(v), num(min)),
        );
    }
    if let Some(max) = check.max.filter(|max| v > *max) {
        return verdict(
            CheckResult::Fail,
            Some(v),
            format!("{} > max {}", num(v), num(max)),
        );
    }
    let bounds = match (check.min, check.max) {
        (Some(lo), Some(hi)) => format!("within [{}, {}]", num(lo), num(hi)),
        (Some(lo), None) => format!(">= {}", num(lo)),
        (None, Some(hi)) => format!("<= {}", num(hi)),
        (None, None) => "unbounded".into(),
    };
    verdict(CheckResult::Pass, Some(v), format!("{} {bounds}", num(v)))
}

/// Runs every custom check for the window ending at `at`, concurrently.
pub async fn run_custom_at(
    prom: &PromClient,
    plan: &CheckPlan,
    checks: &[MetricCheck],
    at: SystemTime,
) -> Vec<CheckVerdict> {
    join_all(checks.iter().map(|check| async move {
        let query = render(&check.query, plan);
        judge(check, prom.query(&query, Some(at)).await)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::checks::fixtures::mk_plan as plan;

    fn check(min: Option<f64>, max: Option<f64>) -> MetricCheck {
        MetricCheck {
            name: "errors".into(),
            query: "q".into(),
            min,
            max,
        }
    }

    #[test]
    fn every_variable_is_replaced_with_or_without_spaces_inside_the_braces() {
        let q = "sum(rate(x{namespace=\"{{namespace}}\",deployment=\"{{ canary }}\"}[{{interval}}])) / \
                 sum(rate(x{deployment=\"{{primary}}\",app=\"{{name}}\"}[{{ interval }}]))";
        assert_eq!(
            render(q, &plan()),
            "sum(rate(x{namespace=\"shop\",deployment=\"app\"}[1m])) / \
             sum(rate(x{deployment=\"app-primary\",app=\"app\"}[1m]))"
        );
    }

    #[test]
    fn an_unknown_or_unclosed_variable_is_left_as_written() {
        assert_eq!(render("a{{pod}}b", &plan()), "a{{pod}}b");
        assert_eq!(render("a{{name", &plan()), "a{{name");
        assert_eq!(render("{{name}}{{x}}", &plan()), "app{{x}}");
    }

    #[test]
    fn a_value_within_the_bounds_passes_and_says_so() {
        let v = judge(&check(Some(1.0), Some(5.0)), Ok(Sample::Value(5.0)));
        assert_eq!((v.result, v.value), (CheckResult::Pass, Some(5.0)));
        assert_eq!(v.detail, "5 within [1, 5]");
        let v = judge(&check(None, Some(0.01)), Ok(Sample::Value(0.0)));
        assert_eq!(
            (v.result, v.detail.as_str()),
            (CheckResult::Pass, "0 <= 0.01")
        );
    }

    #[test]
    fn a_value_outside_either_bound_fails_naming_it() {
        let v = judge(&check(Some(1.0), None), Ok(Sample::Value(0.5)));
        assert_eq!(
            (v.result, v.detail.as_str()),
            (CheckResult::Fail, "0.5 < min 1")
        );
        let v = judge(&check(None, Some(0.01)), Ok(Sample::Value(0.2)));
        assert_eq!(
            (v.result, v.detail.as_str()),
            (CheckResult::Fail, "0.2 > max 0.01")
        );
    }

    #[test]
    fn no_data_and_query_errors_fail_with_the_reason_never_pass() {
        let v = judge(&check(None, Some(1.0)), Ok(Sample::Empty));
        assert_eq!(v.result, CheckResult::Fail);
        assert!(v.detail.starts_with("no data"), "{}", v.detail);
        let nan = PromError::NotFinite {
            query: "q".into(),
            value: "NaN".into(),
        };
        let v = judge(&check(None, Some(1.0)), Err(nan));
        assert_eq!((v.result, v.value), (CheckResult::Fail, None));
        assert!(v.detail.contains("not a number"), "{}", v.detail);
    }
}
