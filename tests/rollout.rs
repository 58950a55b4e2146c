//! End-to-end rollouts: the real webhook and controller inside the sandbox.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use sluice::controller::status::{Phase, RolloutStatus};
use sluice::sandbox::apiserver::Identity;
use sluice::sandbox::embedded::Embedded;
use sluice::sandbox::mesh::Profile;
use sluice::sandbox::{MetricsBackend, Sandbox, SandboxOptions};

const NS: &str = "shop";
const APP: &str = "podinfo";

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

/// A sandbox with Sluice inside and the app onboarded at rest with live traffic.
async fn start() -> (Sandbox, Embedded, Api<Deployment>) {
    sluice::tls::install_crypto_provider();
    sluice::telemetry::init();
    let sandbox = Sandbox::start(SandboxOptions {
        ready_delay: Duration::from_millis(500),
        metrics: MetricsBackend::Auto,
    })
    .await
    .unwrap();
    let sluice = Embedded::start(&sandbox).await.unwrap();
    let api = setup(&sandbox).await;
    sandbox.mesh.set_load(NS, APP, 50.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = api.get(APP).await.unwrap();
        if status(&d).is_some_and(|s| s.phase == Phase::Initialized)
            && d.status.as_ref().and_then(|s| s.available_replicas) == Some(2)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not initialized: {:?}",
            d.metadata.annotations
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (sandbox, sluice, api)
}

/// Changes the container image, as `kubectl set image` does, and returns what was stored.
async fn set_image(api: &Api<Deployment>, image: &str) -> Deployment {
    api.patch(
        APP,
        &PatchParams::default(),
        &Patch::Strategic(&image_patch(image)),
    )
    .await
    .unwrap()
}

fn image_patch(image: &str) -> serde_json::Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": image}]}}}})
}

/// Follows the status until the rollout ends; the (phase, weight, failed checks) points seen.
async fn follow(api: &Api<Deployment>) -> (Vec<(Phase, u32, u32)>, RolloutStatus) {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let d = api.get(APP).await.unwrap();
        let s = status(&d).unwrap();
        let point = (s.phase, s.weight, s.failed_checks);
        if seen.last() != Some(&point) {
            seen.push(point);
        }
        if seen.len() > 1 && s.phase.is_at_rest() {
            return (seen, s);
        }
        assert!(Instant::now() < deadline, "stuck: {seen:?} {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The share of traffic the user's Deployment may answer while the status says `s`: all of it
/// at rest and while the primary is being prepared (its pods are still the stable version,
/// paused), the step's weight while a rollout runs.
fn allowed_share(s: &RolloutStatus) -> u32 {
    if s.phase.is_at_rest() || matches!(s.phase, Phase::Preparing | Phase::Promoting) {
        100
    } else {
        s.weight
    }
}

/// [`follow`], under an observer of DESIGN §7 invariant 1: in every second the mesh served, the
/// new version never answered more than the weight Sluice had set. One second of slack covers
/// the route reaching the mesh (status is written before the route moves), and one request
/// covers rounding.
async fn follow_observed(
    sandbox: &Sandbox,
    api: &Api<Deployment>,
) -> (Vec<(Phase, u32, u32)>, RolloutStatus) {
    let mut timeline: Vec<(SystemTime, u32)> = Vec::new();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let last = loop {
        let d = api.get(APP).await.unwrap();
        let s = status(&d).unwrap();
        let share = allowed_share(&s);
        if timeline.last().map(|(_, a)| *a) != Some(share) {
            timeline.push((SystemTime::now(), share));
        }
        let point = (s.phase, s.weight, s.failed_checks);
        if seen.last() != Some(&point) {
            seen.push(point);
        }
        if seen.len() > 1 && s.phase.is_at_rest() {
            break s;
        }
        assert!(Instant::now() < deadline, "stuck: {seen:?} {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (start, end) = (timeline[0].0, SystemTime::now());
    let at = |t: SystemTime| {
        timeline
            .iter()
            .rev()
            .find(|(when, _)| *when <= t)
            .map(|(_, a)| *a)
            .unwrap_or(100)
    };
    let mut checked = 0;
    for second in sandbox.mesh.traffic(NS, APP) {
        let t = UNIX_EPOCH + Duration::from_secs(second.unix_second);
        if t < start + Duration::from_secs(1) || t + Duration::from_secs(1) > end {
            continue;
        }
        let window = (t - Duration::from_secs(1), t + Duration::from_secs(2));
        let allowed = timeline
            .iter()
            .filter(|(when, _)| *when > window.0 && *when < window.1)
            .map(|(_, a)| *a)
            .chain([at(window.0)])
            .max()
            .unwrap_or(100);
        let total: u64 = second.by_deployment.values().sum();
        let canary = second.by_deployment.get(APP).copied().unwrap_or(0);
        assert!(
            canary * 100 <= u64::from(allowed) * total + 100,
            "invariant 1: in second {} the new version answered {canary}/{total} requests, above the {allowed}% set then ({seen:?})",
            second.unix_second
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "the observer saw only {checked} seconds of traffic"
    );
    (seen, last)
}

/// Waits up to 10 s until the Deployment's rollout status satisfies `check`.
async fn eventually_status(
    api: &Api<Deployment>,
    what: &str,
    check: impl Fn(&RolloutStatus) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = api.get(APP).await.unwrap();
        if status(&d).is_some_and(|s| check(&s)) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to 10 s for `check` to hold.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted() {
    let (sandbox, sluice, api) = start().await;
    let after = api
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Strategic(&image_patch("podinfo:6.0.1")),
        )
        .await
        .unwrap();
    assert_eq!(
        after.spec.as_ref().unwrap().paused,
        Some(true),
        "the webhook holds the update"
    );
    let (seen, last) = follow_observed(&sandbox, &api).await;
    let weights: Vec<u32> = seen.iter().map(|p| p.1).fold(Vec::new(), |mut v, w| {
        if v.last() != Some(&w) {
            v.push(w);
        }
        v
    });
    assert_eq!(weights, vec![0, 20, 40, 60, 100], "{seen:?}");
    assert_eq!(last.phase, Phase::Succeeded);
    // The status is written before the effects run: the clean-up follows within moments.
    let client = api.clone().into_client();
    eventually(
        "app-primary is deleted and the apex selector restored",
        || async {
            let primary = Api::<Deployment>::namespaced(client.clone(), NS)
                .get_opt("podinfo-primary")
                .await
                .unwrap();
            let apex = Api::<Service>::namespaced(client.clone(), NS)
                .get(APP)
                .await
                .unwrap();
            let selector = apex.spec.unwrap().selector.unwrap_or_default();
            primary.is_none() && selector.get("app").map(String::as_str) == Some(APP)
        },
    )
    .await;
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_and_refused_until_retry() {
    let (sandbox, sluice, api) = start().await;
    sandbox.mesh.set_profile(
        "podinfo:6.0.2-bad",
        Profile {
            error_rate: 0.1,
            ..Profile::default()
        },
    );
    set_image(&api, "podinfo:6.0.2-bad").await;
    let (seen, last) = follow_observed(&sandbox, &api).await;
    assert_eq!(last.phase, Phase::Failed, "{seen:?}");
    assert_eq!(
        last.failed_checks, 2,
        "exactly threshold failed checks: {seen:?}"
    );
    assert!(
        seen.iter().all(|p| p.1 <= 20),
        "never past the first step: {seen:?}"
    );
    let d = api.get(APP).await.unwrap();
    assert_eq!(
        image(&d),
        "podinfo:6.0.0",
        "the template is the stable one again"
    );

    let refused = api
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Strategic(&image_patch("podinfo:6.0.2-bad")),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("{refused}")
    };
    assert!(
        status
            .message
            .starts_with("admission webhook \"validate.sluice.dev\" denied the request:")
            && status.message.contains("sluice.dev/retry"),
        "{}",
        status.message
    );
    let retry = json!({"metadata": {"annotations": {"sluice.dev/retry": "true"}}, "spec": image_patch("podinfo:6.0.2-bad")["spec"]});
    let d = api
        .patch(APP, &PatchParams::default(), &Patch::Strategic(&retry))
        .await
        .unwrap();
    assert_eq!(
        image(&d),
        "podinfo:6.0.2-bad",
        "with retry the revision is accepted"
    );
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_never_becomes_ready_is_rolled_back_at_the_progress_deadline() {
    let (sandbox, sluice, api) = start().await;
    let patch = json!({
        "metadata": {"annotations": {"sluice.dev/progress-deadline": "6s"}},
        "spec": image_patch("podinfo:6.0.3-broken")["spec"],
    });
    api.patch(APP, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let (seen, last) = follow(&api).await;
    assert_eq!(last.phase, Phase::Failed, "{seen:?}");
    assert!(
        seen.iter().all(|p| p.1 == 0),
        "no traffic ever moved to it: {seen:?}"
    );
    assert!(
        last.message.contains("progress-deadline"),
        "{}",
        last.message
    );
    assert_eq!(image(&api.get(APP).await.unwrap()), "podinfo:6.0.0");
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_changes_and_identical_reapplies_start_no_rollout() {
    let (sandbox, sluice, api) = start().await;
    let scaled = api
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_ne!(scaled.spec.as_ref().unwrap().paused, Some(true));
    let same = api
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Strategic(&image_patch("podinfo:6.0.0")),
        )
        .await
        .unwrap();
    assert_ne!(same.spec.as_ref().unwrap().paused, Some(true));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = api.get(APP).await.unwrap();
    assert_eq!(status(&d).unwrap().phase, Phase::Initialized);
    let primary = Api::<Deployment>::namespaced(api.clone().into_client(), NS);
    assert!(primary.get_opt("podinfo-primary").await.unwrap().is_none());
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_revision_mid_rollout_restarts_at_zero_and_keeps_the_stable_snapshot() {
    let (sandbox, sluice, api) = start().await;
    set_image(&api, "podinfo:6.0.1").await;
    let stable = |d: &Deployment| {
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("sluice.dev/stable-template").cloned())
    };
    let snapshot =
        stable(&api.get(APP).await.unwrap()).expect("the webhook recorded the stable template");
    eventually_status(&api, "the first step", |s| s.weight >= 20).await;
    let held = api
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Strategic(&image_patch("podinfo:6.0.4")),
        )
        .await
        .unwrap();
    assert_eq!(held.spec.as_ref().unwrap().paused, Some(true));
    assert_eq!(
        stable(&held),
        Some(snapshot),
        "the stable snapshot is unchanged"
    );
    eventually_status(&api, "the analysis restarts at 0%", |s| {
        s.weight == 0 && s.phase == Phase::Progressing
    })
    .await;
    let (seen, last) = follow_observed(&sandbox, &api).await;
    assert_eq!(last.phase, Phase::Succeeded, "{seen:?}");
    assert_eq!(image(&api.get(APP).await.unwrap()), "podinfo:6.0.4");
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_without_skipping_or_repeating_a_step() {
    let (sandbox, sluice, api) = start().await;
    set_image(&api, "podinfo:6.0.1").await;
    eventually_status(&api, "the first step", |s| s.weight >= 20).await;
    sluice.shutdown().await;
    let before = status(&api.get(APP).await.unwrap()).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = status(&api.get(APP).await.unwrap()).unwrap();
    assert_eq!(during, before, "nothing moves while no controller runs");
    let sluice = Embedded::start(&sandbox).await.unwrap();
    let (seen, last) = follow_observed(&sandbox, &api).await;
    assert_eq!(last.phase, Phase::Succeeded, "{seen:?}");
    let mut weights = vec![before.weight];
    for (_, w, _) in &seen {
        if weights.last() != Some(w) {
            weights.push(*w);
        }
    }
    let expected: Vec<u32> = [0, 20, 40, 60, 100]
        .into_iter()
        .filter(|w| *w >= before.weight)
        .collect();
    assert_eq!(weights, expected, "{seen:?}");
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traffic_there_is_no_step_and_no_failed_check_until_traffic_arrives() {
    let (sandbox, sluice, api) = start().await;
    sandbox.mesh.set_load(NS, APP, 0.0);
    let patch = json!({
        "metadata": {"annotations": {"sluice.dev/threshold": "4"}},
        "spec": image_patch("podinfo:6.0.1")["spec"],
    });
    api.patch(APP, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    eventually_status(&api, "two silent intervals", |s| s.silent_intervals >= 2).await;
    let s = status(&api.get(APP).await.unwrap()).unwrap();
    assert_eq!(
        (s.weight, s.failed_checks, s.phase),
        (20, 0, Phase::Progressing),
        "{s:?}"
    );
    sandbox.mesh.set_load(NS, APP, 50.0);
    let (seen, last) = follow(&api).await;
    assert_eq!(last.phase, Phase::Succeeded, "{seen:?}");
    sluice.shutdown().await;
    sandbox.shutdown().await;
}
