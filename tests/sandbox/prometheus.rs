//! Sandbox tests: prometheus.
//!
//! - The real Prometheus, scraping a tiny Linkerd-format exporter, answers every built-in query
//!   with the values the exporter's known rates imply (skipped with one line when no binary is
//!   installed, unless `CI=true`, where that is a failure saying how to install it).
//! - The built-in query endpoint answers the built-in queries exactly from a fake counter
//!   source and refuses everything else.
//! - `PromClient` turns each way a server can misbehave into the right `PromError`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use sluice::analysis::prometheus::{PromClient, PromError, Sample};
use sluice::analysis::queries::{BuiltinQuery, QueryKind};
use sluice::sandbox::prometheus::{
    BuiltinQueryEndpoint, CounterSource, Counters, Error, INSTALL_HINT, NOT_A_PROMQL_ENGINE,
    Prometheus, PrometheusBinary, PrometheusOptions, QueryBackend,
};

/// Serves `app` on a free loopback port until the test ends.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

// ---------------------------------------------------------------------------------------------
// A Linkerd-format exporter with known rates

/// Latency buckets (le in ms) and the fraction of requests at or under each.
type Profile = &'static [(&'static str, u64)];

/// `app`: 5% failures; 50% ≤ 10 ms, 90% ≤ 25, 98% ≤ 50, all ≤ 100 → p99 = 75 ms.
const CANARY: Profile = &[
    ("10", 50),
    ("25", 90),
    ("50", 98),
    ("100", 100),
    ("+Inf", 100),
];
/// `app-primary`: 1% failures; 60% ≤ 10 ms, 95% ≤ 25, all ≤ 50 → p99 = 45 ms.
const PRIMARY: Profile = &[
    ("10", 60),
    ("25", 95),
    ("50", 100),
    ("100", 100),
    ("+Inf", 100),
];

/// One pod's inbound traffic: `requests` responses, `failure_pct` % failing.
fn pod_metrics(
    out: &mut String,
    ns: &str,
    deployment: &str,
    pod: &str,
    requests: u64,
    failure_pct: u64,
    profile: Profile,
) {
    let failures = requests * failure_pct / 100;
    let labels = format!(
        "namespace=\"{ns}\",deployment=\"{deployment}\",pod=\"{pod}\",authority=\"{deployment}.{ns}.svc.cluster.local:8080\",tls=\"true\""
    );
    out.push_str(&format!(
        "response_total{{direction=\"inbound\",classification=\"success\",status_code=\"200\",{labels}}} {}\n",
        requests - failures
    ));
    out.push_str(&format!(
        "response_total{{direction=\"inbound\",classification=\"failure\",status_code=\"500\",{labels}}} {failures}\n"
    ));
    for (le, pct) in profile {
        out.push_str(&format!(
            "response_latency_ms_bucket{{direction=\"inbound\",{labels},le=\"{le}\"}} {}\n",
            requests * pct / 100
        ));
    }
    out.push_str(&format!(
        "response_latency_ms_count{{direction=\"inbound\",{labels}}} {requests}\n"
    ));
}

/// Counters that grow with time since `started`: 1000 responses/s for `app`, 1000/s split over
/// two `app-primary` pods; plus traffic that the queries must not count (outbound, another
/// namespace), failing and slow so that counting it would show.
async fn linkerd_metrics(State(started): State<Instant>) -> String {
    let n = started.elapsed().as_millis() as u64;
    let mut out =
        String::from("# TYPE response_total counter\n# TYPE response_latency_ms histogram\n");
    pod_metrics(&mut out, "shop", "app", "app-7d9f-x1", n, 5, CANARY);
    pod_metrics(
        &mut out,
        "shop",
        "app-primary",
        "app-primary-5c4b-a1",
        n / 2,
        1,
        PRIMARY,
    );
    pod_metrics(
        &mut out,
        "shop",
        "app-primary",
        "app-primary-5c4b-b2",
        n - n / 2,
        1,
        PRIMARY,
    );
    const SLOW: Profile = &[("10", 0), ("25", 0), ("50", 0), ("100", 0), ("+Inf", 100)];
    pod_metrics(&mut out, "other", "app", "app-other", n, 100, SLOW);
    let outbound = pod_metrics_outbound(n);
    out.push_str(&outbound);
    out
}

fn pod_metrics_outbound(n: u64) -> String {
    format!(
        "response_total{{direction=\"outbound\",classification=\"failure\",status_code=\"503\",namespace=\"shop\",deployment=\"app\",pod=\"app-7d9f-x1\",authority=\"db.shop.svc.cluster.local:5432\",tls=\"true\"}} {}\n\
         response_latency_ms_bucket{{direction=\"outbound\",namespace=\"shop\",deployment=\"app\",pod=\"app-7d9f-x1\",le=\"+Inf\"}} {n}\n",
        n * 3
    )
}

fn assert_near(what: &str, got: f64, want: f64, tolerance: f64) {
    eprintln!("{what}: {got} (want {want} ± {tolerance})");
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: got {got}, want {want} ± {tolerance}"
    );
}

/// A real Prometheus scraping `metrics` (its state: when the test started); `None` after one
/// skip line when no prometheus is installed outside CI.
async fn scraping(metrics: axum::routing::MethodRouter<Instant>) -> Option<Prometheus> {
    support::init();
    let binary = support::prometheus_binary()?;
    let exporter = serve(
        Router::new()
            .route("/metrics", metrics)
            .with_state(Instant::now()),
    )
    .await;
    Some(
        Prometheus::start(PrometheusOptions::new(binary, vec![exporter]))
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn real_prometheus_answers_every_builtin_query_from_linkerd_metrics() {
    let Some(prom) = scraping(get(linkerd_metrics)).await else {
        return;
    };
    let interval = Duration::from_secs(5);
    let q = |kind, dep: &str| BuiltinQuery::new(kind, "shop", dep, interval).promql();

    // Wait for the first scrapes; then let a whole window of them accumulate.
    prom.wait_for_value(&q(QueryKind::SuccessRate, "app"), Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", prom.log_tail()));
    tokio::time::sleep(interval + Duration::from_secs(1)).await;

    let client = prom.client();
    // (query, deployment, expected, tolerance): the exporter's rates over a 5 s window.
    let expected = [
        (QueryKind::SuccessRate, "app", 95.0, 0.3),
        (QueryKind::SuccessRate, "app-primary", 99.0, 0.3),
        (QueryKind::LatencyP99, "app", 75.0, 3.0),
        (QueryKind::LatencyP99, "app-primary", 45.0, 2.0),
        (QueryKind::Requests, "app", 5000.0, 500.0),
        (QueryKind::Failures, "app", 250.0, 30.0),
        (QueryKind::Requests, "app-primary", 5000.0, 500.0),
        (QueryKind::Failures, "app-primary", 50.0, 10.0),
    ];
    for (kind, dep, want, tolerance) in expected {
        let got = client.query_value(&q(kind, dep), None).await.unwrap();
        assert_near(&format!("{kind:?} of {dep}"), got, want, tolerance);
    }

    // What Prometheus itself refuses or cannot reduce to one number is a typed error.
    let err = client.query("sum(rate(", None).await.unwrap_err();
    assert!(
        matches!(&err, PromError::Api { error_type, .. } if error_type == "bad_data"),
        "{err}"
    );
    let err = client
        .query(
            "response_total{namespace=\"shop\",direction=\"inbound\"}",
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, PromError::MultipleSeries { count: 6, .. }),
        "{err}"
    );
    let empty = BuiltinQuery::new(QueryKind::Requests, "shop", "nobody", interval).promql();
    assert_eq!(client.query(&empty, None).await.unwrap(), Sample::Empty);

    prom.shutdown().await.unwrap();
}

/// A pod whose first failure happens 3 s after start: its `classification="failure"` series is
/// born then, as Linkerd creates series lazily.
async fn late_failures(State(started): State<Instant>) -> String {
    let ms = started.elapsed().as_millis() as u64;
    let labels = "namespace=\"shop\",deployment=\"app\",pod=\"app-1\",direction=\"inbound\"";
    let mut out = format!(
        "# TYPE response_total counter\nresponse_total{{{labels},classification=\"success\"}} {ms}\n"
    );
    if let Some(since) = ms.checked_sub(3000) {
        out.push_str(&format!(
            "response_total{{{labels},classification=\"failure\"}} {}\n",
            since / 10 + 1
        ));
    }
    out
}

#[tokio::test]
async fn a_failure_series_born_inside_the_window_counts_from_its_first_scrape() {
    let Some(prom) = scraping(get(late_failures)).await else {
        return;
    };
    let client = prom.client();
    let raw = "response_total{namespace=\"shop\",deployment=\"app\",classification=\"failure\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(client.query(raw, None).await, Ok(Sample::Value(_))) {
        assert!(Instant::now() < deadline, "{}", prom.log_tail());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One scrape of the new series so far: rate()/increase() cannot see it yet.
    let interval = Duration::from_secs(10);
    let q = |kind| BuiltinQuery::new(kind, "shop", "app", interval).promql();
    let failures = client
        .query_value(&q(QueryKind::Failures), None)
        .await
        .unwrap();
    let success = client
        .query_value(&q(QueryKind::SuccessRate), None)
        .await
        .unwrap();
    let flagger = client
        .query(
            "sum(increase(response_total{namespace=\"shop\",deployment=\"app\",classification=\"failure\"}[10s]))",
            None,
        )
        .await;
    eprintln!("failures {failures}, success rate {success}%; increase() reads {flagger:?}");
    assert!(
        failures >= 1.0,
        "the newborn failures are counted: {failures}"
    );
    assert!(success < 100.0, "the success rate shows them: {success}");
    prom.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_prometheus_that_exits_at_start_up_is_reported_with_its_log() {
    support::init();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("prometheus");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'level=error msg=\"Error loading config\" err=\"bad flag\"' >&2\nexit 3\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let err = Prometheus::start(PrometheusOptions::new(fake, vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("exit status: 3"), "{msg}");
    assert!(msg.contains("Error loading config"), "{msg}");
}

#[tokio::test]
async fn a_prometheus_binary_that_cannot_run_says_how_to_install_one() {
    support::init();
    let err = Prometheus::start(PrometheusOptions::new(
        "/nonexistent/prometheus".into(),
        vec![],
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err}");
    assert!(err.to_string().contains(INSTALL_HINT), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The built-in query endpoint

const T0: u64 = 1_800_000_000;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

/// Counter snapshots per deployment in namespace `shop`, latest not after `at` wins.
struct FakeCounters(HashMap<&'static str, Vec<(SystemTime, Counters)>>);

impl CounterSource for FakeCounters {
    fn counters_at(&self, ns: &str, dep: &str, at: SystemTime) -> Option<Counters> {
        if ns != "shop" {
            return None;
        }
        let history = self.0.get(dep)?;
        history
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
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

/// A client of `url` that waits 5 s at most.
fn mk_client(url: &str) -> PromClient {
    PromClient::new(url, Duration::from_secs(5)).unwrap()
}

/// The built-in query endpoint over fake counters of `shop/app` (traffic between `t(0)` and
/// `t(60)`) and `shop/idle` (none).
async fn mk_endpoint() -> BuiltinQueryEndpoint {
    support::init();
    const INF: f64 = f64::INFINITY;
    let source = FakeCounters(HashMap::from([
        (
            "app",
            vec![
                (
                    t(0),
                    mk_counters(0, 0, &[(25.0, 0), (50.0, 0), (100.0, 0), (INF, 0)]),
                ),
                // 1000 responses, 40 failures; 900 ≤ 25 ms, 980 ≤ 50, 1000 ≤ 100.
                (
                    t(60),
                    mk_counters(
                        1000,
                        40,
                        &[(25.0, 900), (50.0, 980), (100.0, 1000), (INF, 1000)],
                    ),
                ),
            ],
        ),
        (
            "idle",
            vec![(t(0), mk_counters(7, 0, &[(25.0, 7), (INF, 7)]))],
        ),
    ]));
    BuiltinQueryEndpoint::start(Arc::new(source)).await.unwrap()
}

fn query(kind: QueryKind, dep: &str) -> String {
    BuiltinQuery::new(kind, "shop", dep, Duration::from_secs(60)).promql()
}

#[tokio::test]
async fn builtin_endpoint_answers_each_builtin_query_exactly() {
    let endpoint = mk_endpoint().await;
    let client = mk_client(endpoint.url());
    let at = Some(t(60));
    let v = |kind| {
        let client = client.clone();
        async move { client.query_value(&query(kind, "app"), at).await.unwrap() }
    };
    assert_eq!(v(QueryKind::Requests).await, 1000.0);
    assert_eq!(v(QueryKind::Failures).await, 40.0);
    assert_near("success rate", v(QueryKind::SuccessRate).await, 96.0, 1e-9);
    // Rank 990 lies halfway through (50, 100]: 75 ms by Prometheus' interpolation.
    assert_near("p99", v(QueryKind::LatencyP99).await, 75.0, 1e-9);
    endpoint.shutdown().await;
}

#[tokio::test]
async fn builtin_endpoint_answers_get_like_prometheus() {
    let endpoint = mk_endpoint().await;
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", endpoint.url()),
        &[
            ("query", query(QueryKind::Requests, "app")),
            ("time", format!("{}", T0 + 60)),
        ],
    )
    .unwrap();
    let response = reqwest::Client::new().get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [T0 + 60, "1000"]}]},
        })
    );
    let ready = reqwest::get(format!("{}/-/ready", endpoint.url()))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert!(
        ready
            .text()
            .await
            .unwrap()
            .contains("a simulation, not Prometheus")
    );
}

#[tokio::test]
async fn builtin_endpoint_gives_an_empty_result_without_data() {
    let endpoint = mk_endpoint().await;
    let client = mk_client(endpoint.url());
    for (dep, at) in [("nobody", t(60)), ("app", t(0) - Duration::from_secs(1))] {
        for kind in QueryKind::ALL {
            let sample = client.query(&query(kind, dep), Some(at)).await.unwrap();
            assert_eq!(sample, Sample::Empty, "{kind:?} {dep}");
        }
    }
    let err = client
        .query_value(&query(QueryKind::Requests, "nobody"), Some(t(60)))
        .await
        .unwrap_err();
    assert!(matches!(err, PromError::EmptyResult { .. }), "{err}");
}

#[tokio::test]
async fn builtin_endpoint_answers_nan_for_a_window_without_traffic() {
    let endpoint = mk_endpoint().await;
    let client = mk_client(endpoint.url());
    let at = Some(t(600));
    assert_eq!(
        client
            .query(&query(QueryKind::Requests, "idle"), at)
            .await
            .unwrap(),
        Sample::Value(0.0)
    );
    for kind in [QueryKind::SuccessRate, QueryKind::LatencyP99] {
        let err = client.query(&query(kind, "idle"), at).await.unwrap_err();
        assert!(
            matches!(&err, PromError::NotFinite { value, .. } if value == "NaN"),
            "{kind:?}: {err}"
        );
    }
}

#[tokio::test]
async fn builtin_endpoint_refuses_any_other_query_saying_it_is_a_simulation() {
    let endpoint = mk_endpoint().await;
    let url = format!("{}/api/v1/query", endpoint.url());
    let http = reqwest::Client::new();
    let custom = [
        "up".to_string(),
        query(QueryKind::Requests, "app").replace("deployment=", "deployment=~"),
        String::new(),
    ];
    for q in custom {
        let with_query = reqwest::Url::parse_with_params(&url, &[("query", &q)]).unwrap();
        let response = http.post(with_query).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{q}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"status": "error", "errorType": "bad_data", "error": NOT_A_PROMQL_ENGINE}),
            "{q}"
        );
    }
    let client = mk_client(endpoint.url());
    let err = client
        .query("sum(rate(http_requests_total[1m]))", None)
        .await
        .unwrap_err();
    match err {
        PromError::Api {
            error_type, error, ..
        } => {
            assert_eq!(error_type, "bad_data");
            assert!(error.contains("apt-get install -y prometheus"), "{error}");
        }
        other => panic!("{other}"),
    }
    let bad_time = reqwest::Url::parse_with_params(
        &url,
        &[
            ("query", query(QueryKind::Requests, "app").as_str()),
            ("time", "soon"),
        ],
    )
    .unwrap();
    let response = http.get(bad_time).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "invalid parameter \"time\": cannot parse \"soon\" to a valid timestamp"
    );
}

#[tokio::test]
async fn without_a_binary_the_sandbox_answers_from_the_builtin_endpoint() {
    support::init();
    let source = Arc::new(FakeCounters(HashMap::from([(
        "app",
        vec![
            (t(0), mk_counters(0, 0, &[])),
            (t(60), mk_counters(300, 3, &[])),
        ],
    )])));
    let backend = QueryBackend::start(PrometheusBinary::NotInstalled, vec![], source)
        .await
        .unwrap();
    assert!(backend.is_simulated());
    let client = mk_client(backend.url());
    let failures = client
        .query_value(&query(QueryKind::Failures, "app"), Some(t(60)))
        .await
        .unwrap();
    assert_eq!(failures, 3.0);
    backend.shutdown().await.unwrap();
    let err = client
        .query(&query(QueryKind::Failures, "app"), Some(t(60)))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "unreachable", "{err}");
}

// ---------------------------------------------------------------------------------------------
// PromClient against misbehaving servers

async fn stub_prometheus() -> String {
    fn vector(values: &[&str]) -> String {
        let series: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!(r#"{{"metric":{{"pod":"p{i}"}},"value":[1800000000,"{v}"]}}"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            series.join(",")
        )
    }
    let app = Router::new()
        .route("/ok/api/v1/query", post(|| async { vector(&["42.5"]) }))
        .route("/garbage/api/v1/query", post(|| async { "<html>surprise</html>" }))
        .route(
            "/error/api/v1/query",
            post(|| async {
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    r#"{"status":"error","errorType":"execution","error":"query processing would load too many samples"}"#,
                )
            }),
        )
        .route(
            "/bad-gateway/api/v1/query",
            post(|| async { (StatusCode::BAD_GATEWAY, "upstream connect error") }),
        )
        .route("/nan/api/v1/query", post(|| async { vector(&["NaN"]) }))
        .route("/inf/api/v1/query", post(|| async { vector(&["+Inf"]) }))
        .route("/many/api/v1/query", post(|| async { vector(&["1", "2", "3"]) }))
        .route(
            "/slow/api/v1/query",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                vector(&["1"])
            }),
        );
    format!("http://{}", serve(app).await)
}

#[tokio::test]
async fn prom_client_turns_each_misbehaviour_into_its_error() {
    support::init();
    let base = stub_prometheus().await;
    let client = |path: &str| {
        PromClient::new(&format!("{base}/{path}"), Duration::from_millis(500)).unwrap()
    };

    assert_eq!(
        client("ok").query("q", None).await.unwrap(),
        Sample::Value(42.5)
    );

    let cases = [
        ("garbage", "unparseable"),
        ("error", "api_error"),
        ("bad-gateway", "http_error"),
        ("nan", "not_finite"),
        ("inf", "not_finite"),
        ("many", "multiple_series"),
        ("slow", "timeout"),
    ];
    for (path, label) in cases {
        let started = Instant::now();
        let err = client(path).query("q", None).await.unwrap_err();
        assert_eq!(err.metric_label(), label, "{path}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    let err = client("error").query("q", None).await.unwrap_err();
    assert!(err.to_string().contains("too many samples"), "{err}");
    let err = client("many").query("q", None).await.unwrap_err();
    assert!(err.to_string().contains("3 series"), "{err}");
}

#[tokio::test]
async fn prom_client_names_the_url_when_prometheus_is_unreachable() {
    support::init();
    let port = support::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let err = PromClient::new(&base, Duration::from_secs(2))
        .unwrap()
        .query("q", None)
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "unreachable", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&base) && msg.contains("--prometheus-url"),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("connection refused"), "{msg}");
}
