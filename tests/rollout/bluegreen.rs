//! Blue/green end to end (`sluice.dev/strategy: blue-green`, issue 6): the primary serves all
//! live traffic while the canary is analysed for `iterations` intervals, then traffic switches
//! at once. A load tester driven by `rollout` hooks is stood in for by the mesh simulator's
//! load on the `app-canary` Service: it reaches the canary's pods without passing through the
//! route, so the built-in checks judge it, and it is not live traffic (the observer counts
//! only requests to the apex Service). A cluster has no such load generator here: on one these
//! scenarios say so and stop.
//!
//! Also here (issue 6, HPA): a canary rollout of an app scaled by a HorizontalPodAutoscaler.
//! The sandbox serves HPAs (autoscaling/v2) but runs no HPA controller: nothing scales either
//! Deployment, so the scenario checks the copy `app-primary` (spec, target), the primary's
//! starting replicas (the HPA's minimum, above the app's), and that nothing is left behind.

use std::time::SystemTime;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, PostParams};
use serde_json::json;
use sluice::controller::status::Phase;

use super::{eventually, eventually_status};
use crate::harness::{APP, Harness, RouterKind, THRESHOLD, Version};
use crate::observer::follow;

/// Passing analyses before the switch.
const ITERATIONS: u32 = 3;

/// Starts the scenario with blue/green set on the app and load on `app-canary`, or `None` on
/// a real cluster.
async fn start() -> Option<Harness> {
    let h = Harness::start(RouterKind::Smi).await;
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
    let Some(h) = start().await else {
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
    let Some(h) = start().await else {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_on_the_app_is_copied_to_the_primary_for_the_rollout_and_removed_after() {
    let h = Harness::start(RouterKind::Smi).await;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(h.client.clone(), &h.ns);
    let user: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": APP},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
            "minReplicas": 3, "maxReplicas": 5,
            "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}]}},
            "metrics": [{"type": "Resource",
                "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "200Mi"}}}]
        }
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &user).await.unwrap();
    let primary_name = format!("{APP}-primary");
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
        let primary = Api::<Deployment>::namespaced(h.client.clone(), &h.ns)
            .get(&primary_name)
            .await
            .unwrap();
        assert_eq!(
            primary.spec.unwrap().replicas,
            Some(3),
            "the primary starts at the HPA's minimum, above the app's 2 replicas"
        );
    };
    let (story, ()) = tokio::join!(follow(&h), during);
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
    eventually(&h, "the HPA copy is deleted", || async {
        hpas.get_opt(&primary_name).await.unwrap().is_none()
    })
    .await;
    let kept = hpas.get(APP).await.expect("the user's HPA is kept");
    assert_eq!(kept.spec.unwrap().scale_target_ref.name, APP);
    super::assert_back_at_rest(&h).await;
    h.finish().await;
}
