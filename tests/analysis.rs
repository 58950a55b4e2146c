//! Analysis tests: the built-in checks against a Prometheus HTTP API.
//!
//! - The sandbox's built-in query endpoint, over a fake counter source with exact counters,
//!   gives `run_builtin_at` the figures that must pass, fail, or give no verdict.
//! - The baseline comparison catches a canary worse than its primary that the absolute checks
//!   let through, and gives no verdict without a primary serving.
//! - A Prometheus that is down, answers garbage or too slowly fails every check with the reason.
//! - The real Prometheus, scraping a tiny Linkerd-format exporter, gives the verdicts its known
//!   rates imply, built-in and baseline (skipped with one line when no binary is installed, unless `CI=true`, where that
//!   is a failure saying how to install it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use sluice::analysis::checks::baseline::{
    BASELINE_ERROR_RATE, BASELINE_LATENCY, BaselinePlan, run_baseline, run_baseline_at,
};
use sluice::analysis::checks::{
    CheckPlan, IntervalOutcome, LATENCY_P99, SUCCESS_RATE, outcome, run_builtin, run_builtin_at,
};
use sluice::analysis::prometheus::PromClient;
use sluice::analysis::queries::{BuiltinQuery, QueryKind};
use sluice::controller::status::{CheckResult, CheckVerdict};
use sluice::sandbox::prometheus::{
    BuiltinQueryEndpoint, CounterSource, Counters, INSTALL_HINT, Prometheus, PrometheusBinary,
    PrometheusOptions, locate_binary,
};

const INF: f64 = f64::INFINITY;
const T0: u64 = 1_800_000_000;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

/// Exact counters per deployment in namespace `shop`: `(seconds after T0, counters)`, ascending.
struct FakeMesh(HashMap<&'static str, Vec<(u64, Counters)>>);

impl CounterSource for FakeMesh {
    fn counters_at(&self, ns: &str, dep: &str, at: SystemTime) -> Option<Counters> {
        if ns != "shop" {
            return None;
        }
        self.0
            .get(dep)?
            .iter()
            .rev()
            .find(|(s, _)| t(*s) <= at)
            .map(|(_, c)| c.clone())
    }
}

fn mk_counters(requests: u64, failures: u64, buckets: &[(f64, u64)]) -> Counters {
    Counters {
        requests,
        failures,
        latency_buckets: buckets.to_vec(),
    }
}

/// Deployments whose last minute (T0 → T0+60) has known figures.
fn mk_mesh() -> FakeMesh {
    FakeMesh(HashMap::from([
        // 1000 requests, 5 failures (99.5 %); 990 ≤ 100 ms, all ≤ 200 ms → p99 = 100 ms.
        (
            "healthy",
            vec![
                (0, mk_counters(0, 0, &[(100.0, 0), (200.0, 0), (INF, 0)])),
                (
                    60,
                    mk_counters(1000, 5, &[(100.0, 990), (200.0, 1000), (INF, 1000)]),
                ),
            ],
        ),
        // 1000 requests, 50 failures (95 %); 900 ≤ 100 ms, 980 ≤ 500, all ≤ 1000 → p99 = 750 ms.
        (
            "broken",
            vec![
                (0, mk_counters(0, 0, &[])),
                (
                    60,
                    mk_counters(
                        1000,
                        50,
                        &[(100.0, 900), (500.0, 980), (1000.0, 1000), (INF, 1000)],
                    ),
                ),
            ],
        ),
        // 12 requests in the window, all failing: too few to judge.
        (
            "quiet",
            vec![
                (0, mk_counters(500, 0, &[(10.0, 500), (INF, 500)])),
                (60, mk_counters(512, 12, &[(10.0, 500), (INF, 512)])),
            ],
        ),
        // Exactly 20 requests, all fine: enough for a verdict.
        (
            "just-enough",
            vec![
                (0, mk_counters(0, 0, &[])),
                (60, mk_counters(20, 0, &[(10.0, 20), (INF, 20)])),
            ],
        ),
        // Baseline pair: the canary fails 2 % of 10000, its primary 0.1 %; same latency.
        (
            "regressed",
            vec![
                (0, mk_counters(0, 0, &[])),
                (
                    60,
                    mk_counters(10_000, 200, &[(50.0, 9_950), (INF, 10_000)]),
                ),
            ],
        ),
        (
            "regressed-primary",
            vec![
                (0, mk_counters(0, 0, &[])),
                (60, mk_counters(10_000, 10, &[(50.0, 9_950), (INF, 10_000)])),
            ],
        ),
        // Traffic, but no latency histogram exported.
        (
            "no-histogram",
            vec![(0, mk_counters(0, 0, &[])), (60, mk_counters(100, 0, &[]))],
        ),
    ]))
}

fn mk_plan(canary: &str) -> CheckPlan {
    CheckPlan {
        namespace: "shop".into(),
        canary: canary.into(),
        primary: format!("{canary}-primary"),
        interval: Duration::from_secs(60),
        success_rate_min: 99.0,
        latency_p99_max: Duration::from_millis(500),
        min_requests: 20,
    }
}

fn results(v: &[CheckVerdict]) -> Vec<(&str, CheckResult)> {
    v.iter().map(|v| (v.name.as_str(), v.result)).collect()
}

async fn endpoint() -> (BuiltinQueryEndpoint, PromClient) {
    sluice::tls::install_crypto_provider();
    let ep = BuiltinQueryEndpoint::start(Arc::new(mk_mesh()))
        .await
        .unwrap();
    let client = PromClient::new(ep.url(), Duration::from_secs(5)).unwrap();
    (ep, client)
}

/// Serves `app` on a free loopback port until the test ends.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn a_healthy_canary_passes_with_the_exact_figures() {
    let (_ep, prom) = endpoint().await;
    let v = run_builtin_at(&prom, &mk_plan("healthy"), t(60)).await;
    assert_eq!(
        results(&v),
        [
            (SUCCESS_RATE, CheckResult::Pass),
            (LATENCY_P99, CheckResult::Pass)
        ]
    );
    // 100 * (995/60) / (1000/60), in floating point as PromQL computes it.
    assert!((v[0].value.unwrap() - 99.5).abs() < 1e-9, "{v:?}");
    assert_eq!(v[0].detail, "99.50% >= 99%");
    assert_eq!(v[1].value, Some(100.0));
    assert_eq!(v[1].detail, "100ms <= 500ms");
    assert_eq!(outcome(&v), IntervalOutcome::Passed);
}

#[tokio::test]
async fn an_erroring_slow_canary_fails_both_checks() {
    let (_ep, prom) = endpoint().await;
    let v = run_builtin_at(&prom, &mk_plan("broken"), t(60)).await;
    assert_eq!(
        results(&v),
        [
            (SUCCESS_RATE, CheckResult::Fail),
            (LATENCY_P99, CheckResult::Fail)
        ]
    );
    assert_eq!(v[0].detail, "95.00% < 99%");
    assert_eq!(v[1].detail, "750ms > 500ms");
    assert_eq!(
        outcome(&v),
        IntervalOutcome::Failed {
            checks: vec![SUCCESS_RATE.into(), LATENCY_P99.into()]
        }
    );
}

#[tokio::test]
async fn too_little_traffic_is_no_verdict_even_when_every_request_failed() {
    let (_ep, prom) = endpoint().await;
    let v = run_builtin_at(&prom, &mk_plan("quiet"), t(60)).await;
    assert_eq!(
        results(&v),
        [
            (SUCCESS_RATE, CheckResult::NoVerdict),
            (LATENCY_P99, CheckResult::NoVerdict)
        ]
    );
    assert_eq!(v[0].detail, "12 requests < min-requests 20: no verdict");
    assert_eq!(outcome(&v), IntervalOutcome::NoVerdict);
}

#[tokio::test]
async fn a_canary_linkerd_has_never_seen_is_no_verdict() {
    let (_ep, prom) = endpoint().await;
    let v = run_builtin_at(&prom, &mk_plan("unknown"), t(60)).await;
    assert_eq!(outcome(&v), IntervalOutcome::NoVerdict);
    assert_eq!(v[1].detail, "0 requests < min-requests 20: no verdict");
}

#[tokio::test]
async fn exactly_min_requests_gets_a_verdict() {
    let (_ep, prom) = endpoint().await;
    let v = run_builtin_at(&prom, &mk_plan("just-enough"), t(60)).await;
    assert_eq!(outcome(&v), IntervalOutcome::Passed, "{v:?}");
}

#[tokio::test]
async fn a_missing_latency_histogram_despite_traffic_fails_that_check() {
    let (_ep, prom) = endpoint().await;
    let v = run_builtin_at(&prom, &mk_plan("no-histogram"), t(60)).await;
    assert_eq!(
        results(&v),
        [
            (SUCCESS_RATE, CheckResult::Pass),
            (LATENCY_P99, CheckResult::Fail)
        ]
    );
    assert!(v[1].detail.contains("no data"), "{}", v[1].detail);
}

#[tokio::test]
async fn the_baseline_catches_a_canary_worse_than_its_primary() {
    let (_ep, prom) = endpoint().await;
    let v = run_baseline_at(
        &prom,
        &mk_plan("regressed"),
        &BaselinePlan::default(),
        t(60),
    )
    .await;
    assert_eq!(
        results(&v),
        [
            (BASELINE_ERROR_RATE, CheckResult::Fail),
            (BASELINE_LATENCY, CheckResult::Pass)
        ],
        "{v:?}"
    );
    assert!(
        v[0].detail
            .starts_with("canary 2% of 10000 vs primary 0.1% of 10000 requests failed"),
        "{}",
        v[0].detail
    );
    // The absolute check alone would have let this canary through at success-rate 97.
    let lenient = CheckPlan {
        success_rate_min: 97.0,
        ..mk_plan("regressed")
    };
    let absolute = run_builtin_at(&prom, &lenient, t(60)).await;
    assert_eq!(outcome(&absolute), IntervalOutcome::Passed, "{absolute:?}");
}

#[tokio::test]
async fn the_baseline_gives_no_verdict_without_a_primary_serving() {
    let (_ep, prom) = endpoint().await;
    // "healthy" has no "healthy-primary" in the mesh.
    let v = run_baseline_at(&prom, &mk_plan("healthy"), &BaselinePlan::default(), t(60)).await;
    assert_eq!(outcome(&v), IntervalOutcome::NoVerdict, "{v:?}");
    assert!(
        v[0].detail.contains("primary healthy-primary: 0 requests"),
        "{}",
        v[0].detail
    );
}

#[tokio::test]
async fn prometheus_down_fails_every_check_saying_it_is_unreachable() {
    sluice::tls::install_crypto_provider();
    // A port that was just free and has nothing listening on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let prom = PromClient::new(&format!("http://{closed}"), Duration::from_secs(2)).unwrap();
    let v = run_builtin(&prom, &mk_plan("healthy")).await;
    assert_eq!(
        results(&v),
        [
            (SUCCESS_RATE, CheckResult::Fail),
            (LATENCY_P99, CheckResult::Fail)
        ]
    );
    for verdict in &v {
        assert!(
            verdict.detail.contains("unreachable") && verdict.detail.contains(&closed.to_string()),
            "{}",
            verdict.detail
        );
    }
    assert!(matches!(outcome(&v), IntervalOutcome::Failed { .. }));
}

#[tokio::test]
async fn a_prometheus_answering_garbage_fails_every_check() {
    sluice::tls::install_crypto_provider();
    let addr = serve(Router::new().route(
        "/api/v1/query",
        post(|| async { "<html>hello</html>" }).get(|| async { "<html>hello</html>" }),
    ))
    .await;
    let prom = PromClient::new(&format!("http://{addr}"), Duration::from_secs(2)).unwrap();
    let v = run_builtin(&prom, &mk_plan("healthy")).await;
    assert_eq!(
        outcome(&v),
        IntervalOutcome::Failed {
            checks: vec![SUCCESS_RATE.into(), LATENCY_P99.into()],
        }
    );
    assert!(
        v[0].detail.contains("not a Prometheus answer"),
        "{}",
        v[0].detail
    );
}

#[tokio::test]
async fn a_prometheus_slower_than_the_timeout_fails_every_check() {
    sluice::tls::install_crypto_provider();
    let addr = serve(Router::new().route(
        "/api/v1/query",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "{}"
        }),
    ))
    .await;
    let prom = PromClient::new(&format!("http://{addr}"), Duration::from_millis(300)).unwrap();
    let v = run_builtin(&prom, &mk_plan("healthy")).await;
    assert!(matches!(outcome(&v), IntervalOutcome::Failed { .. }));
    assert!(v[0].detail.contains("timed out"), "{}", v[0].detail);
}

// ---------------------------------------------------------------------------------------------
// The real Prometheus

/// One pod's inbound Linkerd metrics: `n` responses, `failure_permille` ‰ failing, latency
/// buckets `(le, permille at or under it)`.
fn pod_metrics(
    out: &mut String,
    deployment: &str,
    n: u64,
    failure_permille: u64,
    buckets: &[(&str, u64)],
) {
    let failures = n * failure_permille / 1000;
    let labels = format!(
        "namespace=\"shop\",deployment=\"{deployment}\",pod=\"{deployment}-1\",direction=\"inbound\",tls=\"true\""
    );
    out.push_str(&format!(
        "response_total{{{labels},classification=\"success\",status_code=\"200\"}} {}\n",
        n - failures
    ));
    out.push_str(&format!(
        "response_total{{{labels},classification=\"failure\",status_code=\"500\"}} {failures}\n"
    ));
    for (le, permille) in buckets {
        out.push_str(&format!(
            "response_latency_ms_bucket{{{labels},le=\"{le}\"}} {}\n",
            n * permille / 1000
        ));
    }
}

/// 1000 responses/s each: `app` 5 % failing with p99 75 ms; `calm` 0.1 % failing, p99 45 ms.
async fn linkerd_metrics(State(started): State<Instant>) -> String {
    let n = started.elapsed().as_millis() as u64;
    let mut out =
        String::from("# TYPE response_total counter\n# TYPE response_latency_ms histogram\n");
    let slowish = [
        ("10", 500),
        ("25", 900),
        ("50", 980),
        ("100", 1000),
        ("+Inf", 1000),
    ];
    let fast = [
        ("10", 600),
        ("25", 950),
        ("50", 1000),
        ("100", 1000),
        ("+Inf", 1000),
    ];
    pod_metrics(&mut out, "app", n, 50, &slowish);
    pod_metrics(&mut out, "calm", n, 1, &fast);
    out
}

#[tokio::test]
async fn real_prometheus_gives_the_verdicts_the_exporters_rates_imply() {
    sluice::tls::install_crypto_provider();
    let binary = match locate_binary() {
        Ok(PrometheusBinary::Installed(path)) => path,
        Ok(PrometheusBinary::NotInstalled) => {
            eprintln!(
                "skipping real_prometheus_gives_the_verdicts: prometheus is not installed ({INSTALL_HINT})"
            );
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let exporter = serve(
        Router::new()
            .route("/metrics", get(linkerd_metrics))
            .with_state(Instant::now()),
    )
    .await;
    let prom = Prometheus::start(PrometheusOptions::new(binary, vec![exporter]))
        .await
        .unwrap();
    let plan = |canary: &str| CheckPlan {
        interval: Duration::from_secs(5),
        success_rate_min: 99.0,
        latency_p99_max: Duration::from_millis(60),
        ..mk_plan(canary)
    };
    // Wait for the first scrapes; then let a whole window of them accumulate.
    let sr = BuiltinQuery::new(
        QueryKind::SuccessRate,
        "shop",
        "app",
        Duration::from_secs(5),
    );
    prom.wait_for_value(&sr.promql(), Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", prom.log_tail()));
    tokio::time::sleep(Duration::from_secs(6)).await;

    let v = run_builtin(prom.client(), &plan("app")).await;
    assert_eq!(
        results(&v),
        [
            (SUCCESS_RATE, CheckResult::Fail),
            (LATENCY_P99, CheckResult::Fail)
        ],
        "{v:?}"
    );
    let (rate, p99) = (v[0].value.unwrap(), v[1].value.unwrap());
    assert!((rate - 95.0).abs() < 0.3, "{rate}");
    assert!((p99 - 75.0).abs() < 3.0, "{p99}");

    let v = run_builtin(prom.client(), &plan("calm")).await;
    assert_eq!(outcome(&v), IntervalOutcome::Passed, "{v:?}");
    assert!((v[1].value.unwrap() - 45.0).abs() < 2.0, "{v:?}");

    // Same traffic, but a gate above what 5 s of 1000/s can reach: no verdict, no false fail.
    let gated = CheckPlan {
        min_requests: 1_000_000,
        ..plan("app")
    };
    let v = run_builtin(prom.client(), &gated).await;
    assert_eq!(outcome(&v), IntervalOutcome::NoVerdict, "{v:?}");
    assert!(
        v[0].detail.contains("< min-requests 1000000"),
        "{}",
        v[0].detail
    );

    // The baseline against the real Prometheus: `app` (5 %, p99 75 ms) next to `calm` (0.1 %,
    // p99 45 ms) fails both comparisons; the other way round passes both.
    let worse = CheckPlan {
        primary: "calm".into(),
        ..plan("app")
    };
    let v = run_baseline(prom.client(), &worse, &BaselinePlan::default()).await;
    assert_eq!(
        results(&v),
        [
            (BASELINE_ERROR_RATE, CheckResult::Fail),
            (BASELINE_LATENCY, CheckResult::Fail)
        ],
        "{v:?}"
    );
    let better = CheckPlan {
        primary: "app".into(),
        ..plan("calm")
    };
    let v = run_baseline(prom.client(), &better, &BaselinePlan::default()).await;
    assert_eq!(outcome(&v), IntervalOutcome::Passed, "{v:?}");

    // A deployment Prometheus has never seen: no traffic, no verdict.
    let v = run_builtin(prom.client(), &plan("nobody")).await;
    assert_eq!(outcome(&v), IntervalOutcome::NoVerdict, "{v:?}");

    prom.shutdown().await.unwrap();
}
