//! The built-in checks' PromQL, built and recognised in one place.
//!
//! The built-in checks read Linkerd's proxy metrics as linkerd-viz's Prometheus labels them
//! (`namespace`, `deployment`, `direction`, `classification`; see REFERENCE.md). Canary pods
//! report `deployment="app"`, primary pods `deployment="app-primary"`.
//!
//! Every selector matches `deployment` **exactly** (`=`), never by regular expression (`=~`), so
//! `app` can never match `app-primary` and the stable version's traffic can never blend into the
//! canary's verdict. A regex is anchored, but Kubernetes names may contain `.`, which a regex reads
//! as "any character": `deployment=~"app.v2"` would also select `app-v2`. An exact matcher has no
//! such reading (and Prometheus resolves it straight from its index).
//!
//! ```text
//! BuiltinQuery ──promql()──► "100 * (1 - (failures or vector(0)) / requests)"
//!      ▲                                        │
//!      └────────────────parse()─────────────────┘   (the sandbox's built-in query endpoint)
//! ```
//!
//! [`BuiltinQuery::parse`] accepts exactly what [`BuiltinQuery::promql`] produces, ignoring
//! whitespace outside label values, and nothing else. That is how the sandbox's built-in query
//! endpoint knows which check it is asked to answer.

use std::fmt;
use std::time::Duration;

/// One of the built-in checks' queries, for the inbound traffic of one Deployment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinQuery {
    /// Percentage (0–100) of inbound responses not classified `failure` over `interval`.
    SuccessRate {
        namespace: String,
        deployment: String,
        interval: Duration,
    },
    /// 99th percentile of inbound response latency over `interval`, in milliseconds.
    LatencyP99 {
        namespace: String,
        deployment: String,
        interval: Duration,
    },
    /// Number of inbound responses over `interval`.
    Requests {
        namespace: String,
        deployment: String,
        interval: Duration,
    },
    /// Number of inbound responses classified `failure` over `interval`.
    Failures {
        namespace: String,
        deployment: String,
        interval: Duration,
    },
}

/// Which of the built-in queries, without its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryKind {
    SuccessRate,
    LatencyP99,
    Requests,
    Failures,
}

impl QueryKind {
    /// Every kind, in a fixed order.
    pub const ALL: [QueryKind; 4] = [
        QueryKind::SuccessRate,
        QueryKind::LatencyP99,
        QueryKind::Requests,
        QueryKind::Failures,
    ];

    /// The kind's name as Events and metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryKind::SuccessRate => "success-rate",
            QueryKind::LatencyP99 => "latency-p99",
            QueryKind::Requests => "requests",
            QueryKind::Failures => "failures",
        }
    }
}

impl std::str::FromStr for QueryKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QueryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown built-in query {s:?}; expected one of success-rate, latency-p99, requests, failures"
                )
            })
    }
}

impl BuiltinQuery {
    /// Builds the query of `kind` for `deployment` in `namespace` over `interval`.
    pub fn new(
        kind: QueryKind,
        namespace: impl Into<String>,
        deployment: impl Into<String>,
        interval: Duration,
    ) -> Self {
        let (namespace, deployment) = (namespace.into(), deployment.into());
        match kind {
            QueryKind::SuccessRate => BuiltinQuery::SuccessRate {
                namespace,
                deployment,
                interval,
            },
            QueryKind::LatencyP99 => BuiltinQuery::LatencyP99 {
                namespace,
                deployment,
                interval,
            },
            QueryKind::Requests => BuiltinQuery::Requests {
                namespace,
                deployment,
                interval,
            },
            QueryKind::Failures => BuiltinQuery::Failures {
                namespace,
                deployment,
                interval,
            },
        }
    }

    /// Which query this is.
    pub fn kind(&self) -> QueryKind {
        match self {
            BuiltinQuery::SuccessRate { .. } => QueryKind::SuccessRate,
            BuiltinQuery::LatencyP99 { .. } => QueryKind::LatencyP99,
            BuiltinQuery::Requests { .. } => QueryKind::Requests,
            BuiltinQuery::Failures { .. } => QueryKind::Failures,
        }
    }

    /// The namespace of the Deployment whose pods are measured.
    pub fn namespace(&self) -> &str {
        self.parts().0
    }

    /// The Deployment whose pods are measured (`app` or `app-primary`).
    pub fn deployment(&self) -> &str {
        self.parts().1
    }

    /// The range of the `rate`/`increase` window.
    pub fn interval(&self) -> Duration {
        self.parts().2
    }

    fn parts(&self) -> (&str, &str, Duration) {
        match self {
            BuiltinQuery::SuccessRate {
                namespace,
                deployment,
                interval,
            }
            | BuiltinQuery::LatencyP99 {
                namespace,
                deployment,
                interval,
            }
            | BuiltinQuery::Requests {
                namespace,
                deployment,
                interval,
            }
            | BuiltinQuery::Failures {
                namespace,
                deployment,
                interval,
            } => (namespace, deployment, *interval),
        }
    }

    /// The PromQL text of this query.
    ///
    /// The interval is rendered to millisecond precision (anything finer is dropped, as
    /// Prometheus has no finer unit); a zero interval renders as `0s`, which Prometheus rejects.
    pub fn promql(&self) -> String {
        let (ns, dep, interval) = self.parts();
        let sel = format!(
            "namespace=\"{}\",deployment=\"{}\",direction=\"inbound\"",
            escape(ns),
            escape(dep)
        );
        let range = prom_duration(interval);
        let requests = growth(&format!("response_total{{{sel}}}"), &range, "");
        let failures = growth(
            &format!("response_total{{{sel},classification=\"failure\"}}"),
            &range,
            "",
        );
        match self.kind() {
            QueryKind::SuccessRate => {
                format!("100 * (1 - ({failures} or vector(0)) / {requests})")
            }
            QueryKind::LatencyP99 => format!(
                "histogram_quantile(0.99, {})",
                growth(
                    &format!("response_latency_ms_bucket{{{sel}}}"),
                    &range,
                    " by (le) "
                )
            ),
            QueryKind::Requests => requests,
            QueryKind::Failures => failures,
        }
    }

    /// Recognises a query that [`promql`](Self::promql) produced, ignoring whitespace outside
    /// label values. Anything else, even an equivalent PromQL spelling, is `None`.
    pub fn parse(q: &str) -> Option<BuiltinQuery> {
        let compact = strip_whitespace(q)?;
        let kind = if compact.starts_with("histogram_quantile(") {
            QueryKind::LatencyP99
        } else if compact.starts_with("100*") {
            QueryKind::SuccessRate
        } else if compact.contains("classification=\"failure\"") {
            QueryKind::Failures
        } else {
            QueryKind::Requests
        };
        let namespace = label_value(&compact, "{namespace=\"")?;
        let deployment = label_value(&compact, ",deployment=\"")?;
        let range = compact.split_once("offset")?.1;
        let end = range
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(range.len());
        let interval = parse_prom_duration(&range[..end])?;
        let candidate = BuiltinQuery::new(kind, namespace, deployment, interval);
        // The candidate must render back to exactly the text given: this rejects every
        // other spelling, extra matchers, different functions and non-canonical durations.
        (strip_whitespace(&candidate.promql())? == compact).then_some(candidate)
    }
}

impl fmt::Display for BuiltinQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.promql())
    }
}

/// How much the counters `series` grew over the `range` ending at the query's time, summed
/// (`by` groups, e.g. ` by (le) `): a series that existed at the range's start counts its growth
/// (from zero if it reset), and a series born within the range counts in full.
///
/// This is not `increase()`/`rate()`, which is what Flagger queries. Those need two samples of a
/// series inside the range and drop what it counted before its first scrape, and Linkerd creates
/// a series lazily: a pod's `classification="failure"` series appears with its first failure,
/// and every series of a new canary pod appears with its first request. So in the first
/// interval of a step, a canary failing 10% of requests could read 100% and be promoted a step
/// (the sandbox demo showed it). Counting a newborn series from zero sees every failure that
/// was scraped by the query's time.
fn growth(series: &str, range: &str, by: &str) -> String {
    format!("sum{by}(({series} - {series} offset {range}) >= 0 or {series})")
}

/// Renders a duration as Prometheus writes one: the largest of `h`, `m`, `s`, `ms` that divides
/// it exactly (`30s`, `1m`, `90s`, `2h`, `1500ms`). Sub-millisecond parts are dropped.
pub fn prom_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Parses a single-unit Prometheus duration (`90s`, `1m`, `250ms`, `2h`). Compound forms
/// (`1m30s`) and days or longer are not accepted: [`prom_duration`] never writes them.
fn parse_prom_duration(s: &str) -> Option<Duration> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// Escapes a label value as a PromQL double-quoted string.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Removes whitespace outside double-quoted strings; `None` if a string is left unterminated.
fn strip_whitespace(q: &str) -> Option<String> {
    let mut out = String::with_capacity(q.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in q.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    (!in_string).then_some(out)
}

/// The unescaped value of the first string after `prefix` in `compact`.
fn label_value(compact: &str, prefix: &str) -> Option<String> {
    let rest = &compact[compact.find(prefix)? + prefix.len()..];
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                c @ ('\\' | '"') => out.push(c),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(kind: QueryKind, deployment: &str, secs: u64) -> BuiltinQuery {
        BuiltinQuery::new(kind, "shop", deployment, Duration::from_secs(secs))
    }

    const SEL: &str = "namespace=\"shop\",deployment=\"app\",direction=\"inbound\"";

    fn grown(series: &str, range: &str) -> String {
        format!("({series} - {series} offset {range}) >= 0 or {series}")
    }

    #[test]
    fn requests_and_failures_count_the_growth_of_every_series_newborn_ones_in_full() {
        let all = format!("response_total{{{SEL}}}");
        assert_eq!(
            mk(QueryKind::Requests, "app", 90).promql(),
            format!("sum({})", grown(&all, "90s"))
        );
        let failed = format!("response_total{{{SEL},classification=\"failure\"}}");
        assert_eq!(
            mk(QueryKind::Failures, "app", 120).promql(),
            format!("sum({})", grown(&failed, "2m"))
        );
    }

    #[test]
    fn success_rate_is_one_minus_failures_over_requests_with_no_failure_series_as_none() {
        let all = format!("response_total{{{SEL}}}");
        let failed = format!("response_total{{{SEL},classification=\"failure\"}}");
        assert_eq!(
            mk(QueryKind::SuccessRate, "app", 60).promql(),
            format!(
                "100 * (1 - (sum({}) or vector(0)) / sum({}))",
                grown(&failed, "1m"),
                grown(&all, "1m")
            )
        );
    }

    #[test]
    fn latency_p99_is_the_quantile_of_the_bucket_growth_by_le() {
        let buckets = "response_latency_ms_bucket{namespace=\"shop\",deployment=\"app-primary\",direction=\"inbound\"}";
        assert_eq!(
            mk(QueryKind::LatencyP99, "app-primary", 30).promql(),
            format!(
                "histogram_quantile(0.99, sum by (le) ({}))",
                grown(buckets, "30s")
            )
        );
    }

    #[test]
    fn matches_the_deployment_exactly_never_by_regex() {
        for kind in QueryKind::ALL {
            let q = mk(kind, "app", 60).promql();
            assert!(q.contains("deployment=\"app\""), "{q}");
            assert!(!q.contains("=~"), "{q}");
        }
    }

    #[test]
    fn renders_durations_in_the_largest_exact_unit() {
        let cases = [
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(5400), "90m"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_micros(1_000_700), "1s"),
            (Duration::ZERO, "0s"),
        ];
        for (d, want) in cases {
            assert_eq!(prom_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn every_query_round_trips_through_parse() {
        for kind in QueryKind::ALL {
            for secs in [1, 30, 60, 90, 3600, 5400] {
                for dep in ["app", "app-primary", "with\"quote\\and\nnewline"] {
                    let q = mk(kind, dep, secs);
                    assert_eq!(BuiltinQuery::parse(&q.promql()), Some(q.clone()), "{q}");
                }
            }
        }
        let ms = BuiltinQuery::new(QueryKind::Requests, "a", "b", Duration::from_millis(2500));
        assert_eq!(BuiltinQuery::parse(&ms.promql()), Some(ms));
    }

    #[test]
    fn query_kinds_round_trip_through_their_names() {
        for kind in QueryKind::ALL {
            assert_eq!(kind.as_str().parse::<QueryKind>(), Ok(kind));
        }
        let err = "p99".parse::<QueryKind>().unwrap_err();
        assert!(err.contains("latency-p99"), "{err}");
    }

    #[test]
    fn parse_ignores_whitespace_outside_label_values() {
        let q = mk(QueryKind::SuccessRate, "app", 60)
            .promql()
            .replace(" offset 1m", "\n offset\t1m ")
            .replace("\",", "\",\n ")
            .replace("100 * (", "100*(");
        assert_eq!(
            BuiltinQuery::parse(&q),
            Some(mk(QueryKind::SuccessRate, "app", 60))
        );
    }

    #[test]
    fn parse_keeps_whitespace_inside_label_values() {
        let q = mk(QueryKind::Requests, "app", 60).promql();
        assert_eq!(
            BuiltinQuery::parse(&q.replace("\"app\"", "\"a pp\"")),
            Some(mk(QueryKind::Requests, "a pp", 60))
        );
    }

    #[test]
    fn parse_refuses_anything_promql_would_not_produce() {
        let good = mk(QueryKind::SuccessRate, "app", 60).promql();
        let bad = [
            String::new(),
            "up".to_string(),
            good.replace("deployment=\"app\"", "deployment=~\"app\""),
            good.replace("offset 1m", "offset 60s"),
            good.replace("offset 1m", "offset 1m30s"),
            good.replace("offset 1m", "offset 01m"),
            good.replace("offset 1m", "offset 1d"),
            good.replacen("offset 1m", "offset 2m", 1),
            good.replacen("deployment=\"app\"", "deployment=\"app-primary\"", 1),
            good.replace("100 *", "99 *"),
            good.replace("sum(", "avg("),
            good.replace(" or vector(0)", ""),
            good.replacen(">= 0", "> 0", 1),
            format!("{good} + 1"),
            good.replace(",direction=\"inbound\"", ""),
            good.replacen("\"inbound\"", "\"inbound", 1),
            mk(QueryKind::LatencyP99, "app", 60)
                .promql()
                .replace("0.99", "0.95"),
            mk(QueryKind::Requests, "app", 60).promql().replacen(
                " or response_total",
                " and response_total",
                1,
            ),
            mk(QueryKind::Failures, "app", 60)
                .promql()
                .replace("=\"failure\"", "!=\"failure\""),
        ];
        for q in bad {
            assert_eq!(BuiltinQuery::parse(&q), None, "{q}");
        }
    }

    #[test]
    fn parse_refuses_a_non_ascii_digit_duration_without_panicking() {
        let q = mk(QueryKind::Requests, "app", 60)
            .promql()
            .replace("offset 1m", "offset ١m");
        assert_eq!(BuiltinQuery::parse(&q), None);
    }
}
