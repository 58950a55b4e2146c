//! Blue/green end to end (`sluice.dev/strategy: blue-green`, issue 6): the primary serves all
//! live traffic while the canary is analysed for `iterations` intervals, then traffic switches
//! at once. A load tester driven by `rollout` hooks is stood in for by the mesh simulator's
//! load on the `app-canary` Service: it reaches the canary's pods without passing through the
//! route, so the built-in checks judge it, and it is not live traffic (the observer counts
//! only requests to the apex Service). A cluster has no such load generator here: on one these
//! scenarios say so and stop.

use std::time::SystemTime;

use serde_json::json;
use sluice::controller::status::Phase;

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
