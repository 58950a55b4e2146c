//! `/metrics` on the admin port and the route watch, end to end: the real webhook and
//! controller inside the sandbox, scraped over HTTP as Prometheus would.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use sluice::controller::status::{Phase, RolloutStatus};
use sluice::routing::Router;
use sluice::routing::smi::{SmiRouter, weight_milli};
use sluice::sandbox::apiserver::Identity;
use sluice::sandbox::embedded::Embedded;
use sluice::sandbox::{MetricsBackend, Sandbox, SandboxOptions};

const NS: &str = "shop";
const APP: &str = "podinfo";

/// The namespace (opted in), the apex Service and the Deployment, analysed every 3 s.
async fn setup(sandbox: &Sandbox) -> Api<Deployment> {
    let client = sandbox.client(Identity::Admin).await.unwrap();
    let ns: Namespace = serde_json::from_value(
        json!({"metadata": {"name": NS, "labels": {"sluice.dev/canary": "enabled"}}}),
    )
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": APP}, "spec": {"selector": {"app": APP}, "ports": [{"name": "http", "port": 9898}]}})).unwrap();
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": APP, "labels": {"app": APP}, "annotations": {
            "sluice.dev/interval": "3s", "sluice.dev/step-weight": "20", "sluice.dev/max-weight": "60",
            "sluice.dev/threshold": "2", "sluice.dev/min-requests": "5"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": APP}},
            "template": {"metadata": {"labels": {"app": APP}}, "spec": {"containers": [{"name": "podinfod", "image": "podinfo:6.0.0"}]}}}
    })).unwrap();
    let api = Api::<Deployment>::namespaced(client, NS);
    api.create(&PostParams::default(), &d).await.unwrap();
    api
}

fn status(d: &Deployment) -> Option<RolloutStatus> {
    RolloutStatus::from_annotations(d.metadata.annotations.as_ref()).unwrap()
}

/// A sandbox with Sluice inside (admin endpoint on a free port) and the app onboarded at rest
/// with live traffic.
async fn start() -> (Sandbox, Embedded, Api<Deployment>) {
    sluice::tls::install_crypto_provider();
    sluice::telemetry::init();
    let sandbox = Sandbox::start(SandboxOptions {
        ready_delay: Duration::from_millis(500),
        metrics: MetricsBackend::Auto,
    })
    .await
    .unwrap();
    let sluice = Embedded::start_with_admin(&sandbox, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let api = setup(&sandbox).await;
    sandbox.mesh.set_load(NS, APP, 50.0);
    until_status(
        &api,
        "the Deployment is onboarded",
        Duration::from_secs(30),
        |s| s.phase == Phase::Initialized,
    )
    .await;
    (sandbox, sluice, api)
}

/// Polls the rollout status until `check` holds; panics after `within`.
async fn until_status(
    api: &Api<Deployment>,
    what: &str,
    within: Duration,
    check: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    let deadline = Instant::now() + within;
    loop {
        let s = status(&api.get(APP).await.unwrap());
        if let Some(s) = s.filter(|s| check(s)) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn image_patch(image: &str) -> serde_json::Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": image}]}}}})
}

/// `GET /metrics`: the content type and the body.
async fn scrape(sluice: &Embedded) -> (String, String) {
    let addr = sluice.sluice().admin_addr().expect("an admin endpoint");
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let content_type = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    (content_type, resp.text().await.unwrap())
}

/// The value of the sample `series` (name and labels exactly as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.parse().unwrap())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_tell_the_story_of_a_promoted_canary() {
    let (sandbox, sluice, api) = start().await;
    let (_, before) = scrape(&sluice).await;
    let rollout = format!(r#"namespace="{NS}",deployment="{APP}""#);
    assert_eq!(
        sample(
            &before,
            &format!(r#"sluice_rollout_phase{{{rollout},phase="Initialized"}}"#)
        ),
        Some(1.0),
        "{before}"
    );
    api.patch(
        APP,
        &PatchParams::default(),
        &Patch::Strategic(&image_patch("podinfo:6.0.1")),
    )
    .await
    .unwrap();

    // Mid-rollout, the weight gauge follows the steps.
    let mid = until_status(&api, "the first step", Duration::from_secs(30), |s| {
        s.phase == Phase::Progressing && s.weight > 0
    })
    .await;
    let (_, text) = scrape(&sluice).await;
    let weight = sample(&text, &format!("sluice_canary_weight{{{rollout}}}")).unwrap();
    assert!(weight >= f64::from(mid.weight), "{weight} {mid:?}");
    assert_eq!(
        sample(
            &text,
            &format!(r#"sluice_rollout_phase{{{rollout},phase="Progressing"}}"#)
        ),
        Some(1.0),
        "{text}"
    );

    until_status(&api, "promotion", Duration::from_secs(90), |s| {
        s.phase == Phase::Succeeded
    })
    .await;
    let (content_type, text) = scrape(&sluice).await;
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    // Phase: 1 for Succeeded, 0 for every other phase.
    let phases: Vec<(&str, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("sluice_rollout_phase{{{rollout},")))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series, value.parse().unwrap())
        })
        .collect();
    assert_eq!(phases.len(), 10, "{text}");
    assert_eq!(
        phases
            .iter()
            .filter(|(_, v)| *v == 1.0)
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        [format!(
            r#"sluice_rollout_phase{{{rollout},phase="Succeeded"}}"#
        )],
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("sluice_canary_weight{{{rollout}}}")),
        Some(100.0)
    );
    // Steps 20 → 40 → 60 → promote: three passed intervals, each judging both checks.
    for check in ["success-rate", "latency-p99"] {
        assert_eq!(
            sample(
                &text,
                &format!(r#"sluice_analysis_checks_total{{check="{check}",result="pass"}}"#)
            ),
            Some(3.0),
            "{check}: {text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(r#"sluice_analysis_checks_total{{check="{check}",result="fail"}}"#)
            ),
            None,
            "{check}: {text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            r#"sluice_rollout_duration_seconds_count{outcome="succeeded"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"sluice_rollout_duration_seconds_count{outcome="failed"}"#
        ),
        None
    );
    // The image update was intercepted (patched); the create and Sluice's own writes were
    // validated and allowed.
    let admissions = |op: &str, verdict: &str| {
        sample(
            &text,
            &format!(
                r#"sluice_webhook_admission_duration_seconds_count{{operation="{op}",verdict="{verdict}"}}"#
            ),
        )
        .unwrap_or(0.0)
    };
    assert!(admissions("mutate", "patched") >= 1.0, "{text}");
    assert!(admissions("validate", "allowed") >= 2.0, "{text}");
    assert_eq!(admissions("validate", "denied"), 0.0, "{text}");
    assert_eq!(sample(&text, "sluice_leader"), Some(1.0));
    // Three passing intervals, each at least one query to Prometheus, timed.
    let queries = sample(&text, "sluice_prometheus_query_duration_seconds_count");
    assert!(queries.is_some_and(|n| n >= 3.0), "{text}");

    // A Deployment that stops being managed leaves no series behind.
    api.patch(
        APP,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sluice.dev/canary": "disabled"}}})),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = scrape(&sluice).await;
        if !text.contains(&rollout) {
            break;
        }
        assert!(Instant::now() < deadline, "series stay: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

/// The canary weight the stored TrafficSplit gives, in percent; `None` when there is none.
async fn route_canary_weight(routes: &Api<DynamicObject>) -> Option<u32> {
    let route = routes.get_opt(APP).await.unwrap()?;
    let backends = route.data["spec"]["backends"].as_array().cloned()?;
    let milli = |service: String| {
        backends
            .iter()
            .find(|b| b["service"] == service.as_str())
            .map(|b| weight_milli(&b["weight"]).unwrap())
            .unwrap_or(0)
    };
    let (primary, canary) = (
        milli(format!("{APP}-primary")),
        milli(format!("{APP}-canary")),
    );
    (primary + canary > 0).then(|| (canary * 100 / (primary + canary)) as u32)
}

/// Waits until the route gives the canary `weight`; how long that took.
async fn until_route(routes: &Api<DynamicObject>, weight: u32, what: &str) -> Duration {
    let start = Instant::now();
    while route_canary_weight(routes).await != Some(weight) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: the route is {:?}, not {weight}%",
            route_canary_weight(routes).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_or_deleted_route_is_restored_long_before_the_interval() {
    let (sandbox, sluice, api) = start().await;
    // People's hand edits of the route are refused at admission (tests/enforce.rs); drift that
    // gets past the webhook is played here by a writer it lets through.
    let client = sandbox.client(Identity::Sluice).await.unwrap();
    let resource = SmiRouter::new(client.clone())
        .await
        .unwrap()
        .route_resource()
        .expect("the sandbox serves TrafficSplit");
    let routes = Api::<DynamicObject>::namespaced_with(client, NS, &resource);
    // A 30 s interval: once at the first step, the next requeue is ~30 s away.
    let patch = json!({
        "metadata": {"annotations": {"sluice.dev/interval": "30s"}},
        "spec": image_patch("podinfo:6.0.1")["spec"],
    });
    api.patch(APP, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let step = until_status(&api, "the first step", Duration::from_secs(30), |s| {
        s.phase == Phase::Progressing && s.weight > 0
    })
    .await;
    until_route(&routes, step.weight, "the first step is routed").await;
    // Let the short requeues after the step pass, so only the ~30 s one is pending.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Something sends everything to the new version behind Sluice's back.
    let edit = json!({"spec": {"backends": [
        {"service": format!("{APP}-primary"), "weight": 0},
        {"service": format!("{APP}-canary"), "weight": 100},
    ]}});
    routes
        .patch(APP, &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    let restored = until_route(&routes, step.weight, "the edit is undone").await;
    assert!(
        restored < Duration::from_secs(3),
        "the edited route took {restored:?} to be restored"
    );

    // And then deletes it.
    routes.delete(APP, &DeleteParams::default()).await.unwrap();
    let recreated = until_route(&routes, step.weight, "the route is recreated").await;
    assert!(
        recreated < Duration::from_secs(3),
        "the deleted route took {recreated:?} to come back"
    );
    let now = status(&api.get(APP).await.unwrap()).unwrap();
    assert_eq!(
        (now.phase, now.weight, now.last_analysis),
        (Phase::Progressing, step.weight, step.last_analysis),
        "restored by the watch, not by a new analysis interval"
    );
    eprintln!("route restored after an edit in {restored:?}, after a deletion in {recreated:?}");

    // Deleting the Deployment drops its metrics series.
    let rollout = format!(r#"namespace="{NS}",deployment="{APP}""#);
    assert!(scrape(&sluice).await.1.contains(&rollout));
    api.delete(APP, &DeleteParams::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = scrape(&sluice).await;
        if !text.contains(&rollout) {
            break;
        }
        assert!(Instant::now() < deadline, "series stay: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

/// Every metric and grouping label the Grafana dashboard in `deploy/grafana/` queries is one
/// Sluice exports: a renamed metric fails here, not on someone's wall screen.
#[test]
fn the_grafana_dashboard_queries_only_metrics_and_labels_sluice_exports() {
    use sluice::controller::status::{CheckResult, CheckVerdict};
    use sluice::metrics::{Metrics, Operation, Outcome, Verdict};
    let m = Metrics::new();
    let mut status = RolloutStatus::new(Phase::Progressing, std::time::SystemTime::now());
    status.weight = 20;
    m.record_rollout("shop", "podinfo", &status);
    m.rollout_ended(Outcome::Succeeded, Duration::from_secs(60));
    m.checks(&[CheckVerdict {
        name: "success-rate".into(),
        result: CheckResult::Pass,
        value: Some(100.0),
        detail: String::new(),
        baseline: None,
    }]);
    m.admission(
        Operation::Mutate,
        Verdict::Patched,
        Duration::from_micros(80),
    );
    m.reconcile_error("kube");
    m.set_leader(true);
    let exported = m.encode();
    let families: std::collections::BTreeSet<&str> = exported
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let labelled = |label: &str| exported.contains(&format!("{label}=\""));

    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/grafana/sluice-dashboard.json"),
    )
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 8, "{exprs:?}");
    let metric = regex::Regex::new(r"sluice_[a-z_]+").unwrap();
    let by = regex::Regex::new(r"by \(([a-z_, ]+)\)").unwrap();
    for expr in &exprs {
        for name in metric.find_iter(expr).map(|m| m.as_str()) {
            let family = ["_bucket", "_count", "_sum", "_total"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| families.contains(f)))
                .unwrap_or(name);
            assert!(
                families.contains(family),
                "{expr}: {name} is not exported ({families:?})"
            );
        }
        for labels in by.captures_iter(expr) {
            for label in labels[1].split(',').map(str::trim) {
                assert!(
                    label == "le" || labelled(label),
                    "{expr}: no series has the label {label}"
                );
            }
        }
    }
}
