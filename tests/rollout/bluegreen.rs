//! Blue/green end to end (`sluice.dev/strategy: blue-green`, issue 6): the primary serves all
//! live traffic while the canary is analysed for `iterations` intervals, then traffic switches
//! at once. A load tester driven by `rollout` hooks is stood in for by the mesh simulator's
//! load on the `app-canary` Service: it reaches the canary's pods without passing through the
//! route, so the built-in checks judge it, and it is not live traffic (the observer counts
//! only requests to the apex Service). A cluster has no such load generator here: on one these
//! scenarios say so and stop.
//!
//! Also here (issue 6, HPA): a canary rollout of an app scaled by a HorizontalPodAutoscaler.
//! The sandbox's HPA controller (`sandbox::workload::hpa`) scales by `minReplicas` and
//! `maxReplicas`, so the scenario moves replicas by raising the user's minimum mid-rollout: the
//! copy `app-primary` follows it and scales the primary, the user's HPA scales the canary, and
//! Sluice's later passes leave the primary where its HPA put it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use sluice::controller::status::Phase;

use super::{eventually, eventually_status};
use crate::harness::{APP, Harness, RouterKind, THRESHOLD, Version, status};
use crate::observer::follow;

/// Passing analyses before the switch.
const ITERATIONS: u32 = 3;

/// Starts the scenario with blue/green set on the app, routed by `router`, and load on
/// `app-canary`, or `None` on a real cluster.
async fn start(router: RouterKind) -> Option<Harness> {
    let h = Harness::start(router).await;
    let Some(sandbox) = h.sandbox() else {
        eprintln!("skipped: on a cluster no load generator drives app-canary");
        h.finish().await;
        return None;
    };
    sandbox.mesh.set_load(&h.ns, &format!("{APP}-canary"), 30.0);
    h.patch(json!({"metadata": {"annotations": {
        "sluice.dev/strategy": "blue-green",
        "sluice.dev/iterations": ITERATIONS.to_string(),
    }}}))
    .await;
    Some(h)
}

/// Requests to the apex Service (live traffic) answered by pods running `version`, in the
/// seconds that ended by `until`, since `from`.
async fn live_requests(h: &Harness, version: Version, from: SystemTime, until: SystemTime) -> u64 {
    let image = h.template_patch(version)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("an image")
        .to_string();
    h.traffic(from)
        .await
        .iter()
        .filter(|w| w.to <= until)
        .filter_map(|w| w.by_image.as_ref()?.get(&image).copied())
        .sum()
}

/// Requests the analysis load sent to `app-canary`, answered with an error or not.
fn canary_service_requests(h: &Harness) -> u64 {
    let sandbox = h.sandbox().expect("the sandbox");
    sandbox
        .mesh
        .traffic(&h.ns, &format!("{APP}-canary"))
        .iter()
        .flat_map(|s| s.by_deployment.values())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_blue_green_is_promoted_after_its_iterations_with_no_live_traffic_before() {
    a_healthy_blue_green_is_promoted_with(RouterKind::Smi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_blue_green_is_promoted_through_an_httproute() {
    a_healthy_blue_green_is_promoted_with(RouterKind::GatewayApi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_blue_green_is_promoted_through_a_canary_ingress() {
    a_healthy_blue_green_is_promoted_with(RouterKind::Nginx).await;
}

async fn a_healthy_blue_green_is_promoted_with(router: RouterKind) {
    let Some(h) = start(router).await else {
        return;
    };
    let from = SystemTime::now();
    h.roll_to(Version::Good(1)).await;
    let story = follow(&h).await;
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
    assert_eq!(
        story.weights(),
        vec![0, 100],
        "all at once, no steps: {:?}",
        story.points
    );
    assert_eq!(
        (story.last.iterations, story.last.iteration_goal),
        (ITERATIONS, Some(ITERATIONS))
    );
    // The status is written before the route moves: nothing reached the new version earlier.
    let switched = story.last.phase_since.0;
    assert_eq!(
        live_requests(&h, Version::Good(1), from, switched).await,
        0,
        "the new version answered live traffic before the switch"
    );
    assert!(
        live_requests(&h, Version::Stable, from, switched).await > 0,
        "the primary served the live traffic meanwhile"
    );
    assert!(
        canary_service_requests(&h) > 0,
        "the analysis judged load on {APP}-canary"
    );
    assert!(h.runs(&h.api.get(APP).await.unwrap(), Version::Good(1)));
    super::assert_back_at_rest(&h).await;
    super::assert_events_tell(
        &h,
        &[
            "Preparing",
            "Progressing",
            "Analysing",
            "IterationPassed",
            "IterationPassed",
            "Promoting",
            "Succeeded",
        ],
    )
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_blue_green_is_rolled_back_with_no_live_traffic_ever_served_by_the_canary() {
    a_failing_blue_green_is_rolled_back_with(RouterKind::Smi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_blue_green_is_rolled_back_through_an_httproute() {
    a_failing_blue_green_is_rolled_back_with(RouterKind::GatewayApi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_blue_green_is_rolled_back_through_a_canary_ingress() {
    a_failing_blue_green_is_rolled_back_with(RouterKind::Nginx).await;
}

async fn a_failing_blue_green_is_rolled_back_with(router: RouterKind) {
    let Some(h) = start(router).await else {
        return;
    };
    let from = SystemTime::now();
    h.roll_to(Version::Bad).await;
    let story = follow(&h).await;
    assert_eq!(story.last.phase, Phase::Failed, "{:?}", story.points);
    assert_eq!(story.last.failed_checks, THRESHOLD, "{:?}", story.points);
    assert_eq!(story.last.iterations, 0);
    assert!(
        story.points.iter().all(|(_, weight, _)| *weight == 0),
        "the weight never left 0%: {:?}",
        story.points
    );
    assert_eq!(
        live_requests(&h, Version::Bad, from, SystemTime::now()).await,
        0,
        "the failing version answered live traffic"
    );
    assert!(
        canary_service_requests(&h) > 0,
        "the analysis judged load on {APP}-canary"
    );
    assert!(h.runs(&h.api.get(APP).await.unwrap(), Version::Stable));
    super::assert_back_at_rest(&h).await;
    h.finish().await;
}

/// The user's HPA on the app: minimum 3 (above the app's 2 replicas), maximum 6.
fn user_hpa() -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "metadata": {"name": APP},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
            "minReplicas": 3, "maxReplicas": 6,
            "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}]}},
            "metrics": [{"type": "Resource",
                "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "200Mi"}}}]
        }
    }))
    .unwrap()
}

/// Every `spec.replicas` Deployment `name` takes from now until it is deleted, as a watch
/// sees them (repeats dropped). The returned task stops at the deletion, or when aborted.
fn record_replicas(h: &Harness, name: &str) -> (Arc<Mutex<Vec<i32>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api = Api::<Deployment>::namespaced(h.client.clone(), &h.ns);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let log = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let mut events = watcher(api, config).boxed();
        while let Some(event) = events.next().await {
            let d = match event {
                Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) => d,
                Ok(watcher::Event::Delete(_)) => return,
                _ => continue,
            };
            let Some(replicas) = d.spec.and_then(|s| s.replicas) else {
                continue;
            };
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            if log.last() != Some(&replicas) {
                log.push(replicas);
            }
        }
    });
    (seen, task)
}

/// `spec.replicas` of Deployment `name`, if it exists.
async fn replicas(h: &Harness, name: &str) -> Option<i32> {
    let d = h.api.get_opt(name).await.unwrap()?;
    d.spec?.replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primarys_replicas_follow_its_hpa_copy_for_the_rollout_and_nothing_is_left_after() {
    let h = Harness::start(RouterKind::Smi).await;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(h.client.clone(), &h.ns);
    let user = user_hpa();
    hpas.create(&PostParams::default(), &user).await.unwrap();
    let primary_name = format!("{APP}-primary");
    // One step more than the others, for passes enough to change both HPAs and see Sluice
    // leave the primary be. Not 100%: there the primary gets no traffic, the baseline checks
    // give no verdict, and `threshold` silent intervals fail the rollout (DESIGN §4).
    h.patch(json!({"metadata": {"annotations": {"sluice.dev/max-weight": "80"}}}))
        .await;
    eventually(
        &h,
        "the user's HPA scales the app to its minimum, 3",
        || async { replicas(&h, APP).await == Some(3) },
    )
    .await;
    let (history, recorder) = record_replicas(&h, &primary_name);
    h.roll_to(Version::Good(1)).await;
    let during = async {
        eventually_status(&h, "the rollout runs", |s| s.phase == Phase::Progressing).await;
        let copy = hpas.get(&primary_name).await.expect("the HPA copy exists");
        let mut want = user.spec.clone().unwrap();
        want.scale_target_ref.name = primary_name.clone();
        assert_eq!(
            copy.spec.unwrap(),
            want,
            "the user's HPA, aimed at the primary"
        );
        let labels = copy.metadata.labels.unwrap_or_default();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "sluice");
        assert_eq!(copy.metadata.owner_references.unwrap()[0].name, APP);
        assert_eq!(
            replicas(&h, &primary_name).await,
            Some(3),
            "the primary starts at the replicas the user's HPA keeps the app at"
        );

        // Someone scales the canary past the maximum: the user's HPA brings it back to 6. A
        // Sluice that gave app-primary the app's replicas would now move it.
        let manual = json!({"spec": {"replicas": 7}});
        h.api
            .patch_scale(APP, &PatchParams::default(), &Patch::Merge(&manual))
            .await
            .unwrap();
        eventually(&h, "the user's HPA scales the canary down to 6", || async {
            replicas(&h, APP).await == Some(6)
        })
        .await;
        // The user raises the minimum to 4: Sluice's next pass copies it and the copy scales
        // the primary; the canary, at 6, is within range and stays.
        let raise = json!({"spec": {"minReplicas": 4}});
        hpas.patch(APP, &PatchParams::default(), &Patch::Merge(&raise))
            .await
            .unwrap();
        eventually(&h, "the HPA copy scales app-primary to 4", || async {
            replicas(&h, &primary_name).await == Some(4)
        })
        .await;
        let copy = hpas.get(&primary_name).await.unwrap();
        assert_eq!(copy.spec.unwrap().min_replicas, Some(4));

        // Sluice applies app-primary on every pass: two more analyses, and it is still at 4.
        let mut analyses = vec![
            h.api
                .get(APP)
                .await
                .ok()
                .and_then(|d| status(&d)?.last_analysis),
        ];
        let deadline = Instant::now() + h.intervals(3);
        while analyses.len() < 3 {
            let d = h.api.get(APP).await.unwrap();
            let s = status(&d).expect("a status");
            assert_ne!(
                s.phase,
                Phase::Succeeded,
                "promoted before two passes ran with app-primary at 4"
            );
            if analyses.last() != Some(&s.last_analysis) {
                analyses.push(s.last_analysis);
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for two analyses"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            replicas(&h, &primary_name).await,
            Some(4),
            "app-primary stays where its HPA put it"
        );
    };
    let (story, ()) = tokio::join!(follow(&h), during);
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);

    eventually(&h, "the HPA copy is deleted", || async {
        hpas.get_opt(&primary_name).await.unwrap().is_none()
    })
    .await;
    super::assert_back_at_rest(&h).await;
    tokio::time::timeout(h.intervals(1), recorder)
        .await
        .expect("the watch on app-primary saw its deletion")
        .unwrap();
    assert_eq!(
        *history.lock().unwrap_or_else(PoisonError::into_inner),
        vec![3, 4],
        "app-primary's replicas, from creation to deletion: only its HPA moved them, once"
    );
    let kept = hpas.get(APP).await.expect("the user's HPA is kept");
    assert_eq!(kept.spec.unwrap().scale_target_ref.name, APP);
    assert_eq!(
        replicas(&h, APP).await,
        Some(6),
        "the app keeps its replicas"
    );
    // The Service app-primary stays (DESIGN §3: it lives from onboarding), selecting no pods.
    if let Some(sandbox) = h.sandbox() {
        let pods = sandbox.workload.pods().pods(&h.ns);
        assert!(
            pods.iter().all(|p| p.deployment != primary_name),
            "no pod of {primary_name} is left: {pods:?}"
        );
    }
    h.finish().await;
}
