//! End-to-end rollouts: the real webhook and controller on the sandbox, or on a real cluster
//! when `SLUICE_E2E_KUBECONFIG` is set (`tests/README.md`). Every rollout is followed by the
//! observer of DESIGN §7 invariants 1 and 2 (`observer.rs`).
//!
//! Every scenario of the spine issue (issue 3) runs with both mesh routers: one
//! `..._with(router)` body, one test with `sluice.dev/router: smi` (a TrafficSplit) and one
//! with `gateway-api` (an HTTPRoute). The healthy and failing canaries also run with `nginx`,
//! through a canary Ingress (`nginx.rs`); the scenarios beyond the spine (faults, HA, custom
//! checks) run with `smi` only, to keep the suite's wall time within budget. Blue/green
//! (`bluegreen.rs`) runs healthy and failing with all three routers, A/B (`ab.rs`) healthy and
//! failing with `gateway-api` and `nginx` (SMI refuses it). `route_api.rs` deletes the
//! HTTPRoute CRD under a running Gateway API rollout.

mod ab;
mod baseline;
mod bluegreen;
mod cluster;
mod crash_sweep;
mod failover;
mod harness;
mod hooks;
mod nginx;
mod observer;
mod process;
mod prom_faults;
mod route_api;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use sluice::controller::status::{Phase, RolloutStatus};
use sluice::sandbox::apiserver::Identity;
use sluice::sandbox::apiserver::fault::FaultPlan;

use harness::{APP, Harness, MAX_WEIGHT, RouterKind, STEP, THRESHOLD, Version, status};
use observer::follow;

/// Taken by the scenarios that load the machine most (many apps at once, real processes), so
/// that no two of them overlap: the test harness runs scenarios in parallel, and two of these
/// together on a 2-core machine stretch every interval past what the scenarios allow.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The weights a promotion goes through with the scenarios' settings.
fn promotion_weights() -> Vec<u32> {
    let mut w: Vec<u32> = (0..=MAX_WEIGHT).step_by(STEP as usize).collect();
    w.push(100);
    w
}

/// Waits until the Deployment's rollout status satisfies `check`.
async fn eventually_status(h: &Harness, what: &str, check: impl Fn(&RolloutStatus) -> bool) {
    let deadline = Instant::now() + h.intervals(4);
    loop {
        let d = h.api.get(APP).await.unwrap();
        if status(&d).is_some_and(|s| check(&s)) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `check` holds.
async fn eventually<F, Fut>(h: &Harness, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + h.intervals(4);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A healthy rollout went through every step once and was promoted; a failing one was
/// rolled back after exactly `THRESHOLD` failed checks, none of them lost on the way.
fn assert_ended_right(app: usize, healthy: bool, story: &observer::Story) {
    let points = &story.points;
    if healthy {
        assert_eq!(story.last.phase, Phase::Succeeded, "app {app}: {points:?}");
        assert_eq!(
            story.weights(),
            promotion_weights(),
            "app {app}: {points:?}"
        );
    } else {
        assert_eq!(story.last.phase, Phase::Failed, "app {app}: {points:?}");
        assert_eq!(story.last.failed_checks, THRESHOLD, "app {app}: {points:?}");
        let failed: Vec<u32> = points.iter().map(|p| p.2).collect();
        assert!(
            failed.windows(2).all(|w| w[0] <= w[1]),
            "app {app} lost a failed check: {points:?}"
        );
    }
}

/// After a rollout ends: `app-primary` is gone and the apex Service selects `app` again.
async fn assert_back_at_rest(h: &Harness) {
    let client = h.client.clone();
    let ns = h.ns.clone();
    eventually(
        h,
        "app-primary is deleted and the apex selector restored",
        || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                let primary = Api::<Deployment>::namespaced(client.clone(), &ns)
                    .get_opt(&format!("{APP}-primary"))
                    .await
                    .unwrap();
                let apex = Api::<Service>::namespaced(client, &ns)
                    .get(APP)
                    .await
                    .unwrap();
                let selector = apex.spec.unwrap().selector.unwrap_or_default();
                primary.is_none() && selector.get("app").map(String::as_str) == Some(APP)
            }
        },
    )
    .await;
}

/// The Events on `app`, oldest first.
async fn app_events(h: &Harness) -> Vec<Event> {
    let mut events = Api::<Event>::namespaced(h.client.clone(), &h.ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    events.retain(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(APP));
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    events
}

/// The reasons of the Events on `app`, oldest first.
async fn event_reasons(h: &Harness) -> Vec<String> {
    app_events(h)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// Waits until the Events on `app` contain `story` in that order (others may come between).
async fn assert_events_tell(h: &Harness, story: &[&str]) {
    let deadline = Instant::now() + h.intervals(2);
    loop {
        let reasons = event_reasons(h).await;
        let mut it = reasons.iter();
        if story.iter().all(|want| it.any(|r| r == want)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the Events on {APP} do not tell {story:?}: {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted() {
    a_healthy_canary_is_promoted_with(RouterKind::Smi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_through_an_httproute() {
    a_healthy_canary_is_promoted_with(RouterKind::GatewayApi).await;
}

async fn a_healthy_canary_is_promoted_with(router: RouterKind) {
    let h = Harness::start(router).await;
    let held = h.roll_to(Version::Good(1)).await;
    assert_eq!(
        held.spec.as_ref().unwrap().paused,
        Some(true),
        "the webhook holds the update"
    );
    let story = follow(&h).await;
    assert_eq!(story.weights(), promotion_weights(), "{:?}", story.points);
    assert_eq!(story.last.phase, Phase::Succeeded);
    assert_back_at_rest(&h).await;
    assert!(h.runs(&h.api.get(APP).await.unwrap(), Version::Good(1)));
    assert_events_tell(
        &h,
        &[
            "Preparing",
            "Progressing",
            "Advanced",
            "Promoting",
            "Succeeded",
        ],
    )
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_and_refused_until_retry() {
    a_failing_canary_is_rolled_back_and_refused_until_retry_with(RouterKind::Smi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_through_an_httproute_and_refused_until_retry() {
    a_failing_canary_is_rolled_back_and_refused_until_retry_with(RouterKind::GatewayApi).await;
}

async fn a_failing_canary_is_rolled_back_and_refused_until_retry_with(router: RouterKind) {
    let h = Harness::start(router).await;
    h.roll_to(Version::Bad).await;
    let story = follow(&h).await;
    assert_eq!(story.last.phase, Phase::Failed, "{:?}", story.points);
    assert_eq!(
        story.last.failed_checks, THRESHOLD,
        "exactly threshold failed checks: {:?}",
        story.points
    );
    assert!(
        story.weights().iter().all(|w| *w <= STEP),
        "never past the first step: {:?}",
        story.points
    );
    let d = h.api.get(APP).await.unwrap();
    assert!(
        h.runs(&d, Version::Stable),
        "the template is the stable one again"
    );
    assert_back_at_rest(&h).await;
    assert_events_tell(
        &h,
        &["Preparing", "CheckFailed", "RollingBack", "RolledBack"],
    )
    .await;

    let refused = h
        .api
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Strategic(&h.template_patch(Version::Bad)),
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
    let mut retry = h.template_patch(Version::Bad);
    retry["metadata"] = json!({"annotations": {"sluice.dev/retry": "true"}});
    let d = h.patch(retry).await;
    assert!(
        h.runs(&d, Version::Bad),
        "with retry the revision is accepted"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_never_becomes_ready_is_rolled_back_at_the_progress_deadline() {
    a_canary_that_never_becomes_ready_is_rolled_back_at_the_progress_deadline_with(RouterKind::Smi)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_behind_an_httproute_that_never_becomes_ready_is_rolled_back_at_the_progress_deadline()
 {
    a_canary_that_never_becomes_ready_is_rolled_back_at_the_progress_deadline_with(
        RouterKind::GatewayApi,
    )
    .await;
}

async fn a_canary_that_never_becomes_ready_is_rolled_back_at_the_progress_deadline_with(
    router: RouterKind,
) {
    let h = Harness::start(router).await;
    let deadline = humantime::format_duration(h.interval() * 2).to_string();
    let mut patch = h.template_patch(Version::Broken);
    patch["metadata"] = json!({"annotations": {"sluice.dev/progress-deadline": deadline}});
    h.patch(patch).await;
    let story = follow(&h).await;
    assert_eq!(story.last.phase, Phase::Failed, "{:?}", story.points);
    assert!(
        story.weights().iter().all(|w| *w == 0),
        "no traffic ever moved to it: {:?}",
        story.points
    );
    assert!(
        story.last.message.contains("progress-deadline"),
        "{}",
        story.last.message
    );
    assert!(h.runs(&h.api.get(APP).await.unwrap(), Version::Stable));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_changes_and_identical_reapplies_start_no_rollout() {
    replica_changes_and_identical_reapplies_start_no_rollout_with(RouterKind::Smi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_changes_and_identical_reapplies_behind_an_httproute_start_no_rollout() {
    replica_changes_and_identical_reapplies_start_no_rollout_with(RouterKind::GatewayApi).await;
}

async fn replica_changes_and_identical_reapplies_start_no_rollout_with(router: RouterKind) {
    let h = Harness::start(router).await;
    let scaled = h
        .api
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_ne!(scaled.spec.as_ref().unwrap().paused, Some(true));
    let same = h.roll_to(Version::Stable).await;
    assert_ne!(same.spec.as_ref().unwrap().paused, Some(true));
    tokio::time::sleep(h.interval()).await;
    let d = h.api.get(APP).await.unwrap();
    assert_eq!(status(&d).unwrap().phase, Phase::Initialized);
    assert!(
        h.api
            .get_opt(&format!("{APP}-primary"))
            .await
            .unwrap()
            .is_none()
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_revision_mid_rollout_restarts_at_zero_and_keeps_the_stable_snapshot() {
    a_new_revision_mid_rollout_restarts_at_zero_and_keeps_the_stable_snapshot_with(RouterKind::Smi)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_revision_mid_rollout_through_an_httproute_restarts_at_zero_and_keeps_the_stable_snapshot()
 {
    a_new_revision_mid_rollout_restarts_at_zero_and_keeps_the_stable_snapshot_with(
        RouterKind::GatewayApi,
    )
    .await;
}

async fn a_new_revision_mid_rollout_restarts_at_zero_and_keeps_the_stable_snapshot_with(
    router: RouterKind,
) {
    let h = Harness::start(router).await;
    h.roll_to(Version::Good(1)).await;
    let stable = |d: &Deployment| {
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("sluice.dev/stable-template").cloned())
    };
    let snapshot =
        stable(&h.api.get(APP).await.unwrap()).expect("the webhook recorded the stable template");
    eventually_status(&h, "the first step", |s| s.weight >= STEP).await;
    let held = h.roll_to(Version::Good(4)).await;
    assert_eq!(held.spec.as_ref().unwrap().paused, Some(true));
    assert_eq!(
        stable(&held),
        Some(snapshot),
        "the stable snapshot is unchanged"
    );
    eventually_status(&h, "the analysis restarts at 0%", |s| {
        s.weight == 0 && s.phase == Phase::Progressing
    })
    .await;
    let story = follow(&h).await;
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
    assert_eq!(story.weights(), promotion_weights(), "{:?}", story.points);
    assert!(h.runs(&h.api.get(APP).await.unwrap(), Version::Good(4)));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_controller_holds_still_and_resumes_without_skipping_or_repeating_a_step() {
    a_stopped_controller_holds_still_and_resumes_without_skipping_or_repeating_a_step_with(
        RouterKind::Smi,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_controller_holds_an_httproute_still_and_resumes_without_skipping_or_repeating_a_step()
 {
    a_stopped_controller_holds_still_and_resumes_without_skipping_or_repeating_a_step_with(
        RouterKind::GatewayApi,
    )
    .await;
}

async fn a_stopped_controller_holds_still_and_resumes_without_skipping_or_repeating_a_step_with(
    router: RouterKind,
) {
    let h = Harness::start(router).await;
    h.roll_to(Version::Good(1)).await;
    eventually_status(&h, "the first step", |s| s.weight >= STEP).await;
    h.stop_sluice().await;
    let before = status(&h.api.get(APP).await.unwrap()).unwrap();
    tokio::time::sleep(h.interval() + Duration::from_secs(1)).await;
    let during = status(&h.api.get(APP).await.unwrap()).unwrap();
    assert_eq!(during, before, "nothing moves while no controller runs");
    h.start_sluice().await;
    let story = follow(&h).await;
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
    let mut weights = vec![before.weight];
    weights.extend(story.weights().into_iter().filter(|w| *w != before.weight));
    let expected: Vec<u32> = promotion_weights()
        .into_iter()
        .filter(|w| *w >= before.weight)
        .collect();
    assert_eq!(weights, expected, "{:?}", story.points);
    h.finish().await;
}

/// How long a killed Sluice takes to lead again in the sandbox (start, cache sync, the dead
/// replica's 2 s Lease), with room for a loaded machine: a lower weight it decided but had not
/// yet written to the route reaches the mesh within this.
const RESTART: Duration = Duration::from_secs(6);

/// Which status to kill Sluice at, and how to say it.
type KillPoint = (&'static str, fn(&RolloutStatus) -> bool);

/// Kills Sluice right after it writes each status in `at`, in turn, restarting it each time,
/// while the observer follows the whole rollout. Returns what the observer saw and the
/// statuses Sluice left when it died.
async fn kill_at_each(
    h: &Harness,
    version: Version,
    at: Vec<KillPoint>,
) -> (observer::Story, Vec<RolloutStatus>) {
    let mut kills = at.into_iter();
    let (what, when) = kills.next().expect("a kill");
    let first = h.arm_kill(what, when);
    h.roll_to(version).await;
    let killer = async {
        let mut left = vec![first.done().await];
        h.start_sluice().await;
        for (what, when) in kills {
            left.push(h.arm_kill(what, when).done().await);
            h.start_sluice().await;
        }
        left
    };
    let (story, left) = tokio::join!(follow(h), killer);
    (story, left)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_in_every_phase_of_a_promotion_resumes_it_step_by_step() {
    a_controller_killed_in_every_phase_of_a_promotion_resumes_it_step_by_step_with(RouterKind::Smi)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_in_every_phase_of_a_promotion_through_an_httproute_resumes_it_step_by_step()
 {
    a_controller_killed_in_every_phase_of_a_promotion_resumes_it_step_by_step_with(
        RouterKind::GatewayApi,
    )
    .await;
}

async fn a_controller_killed_in_every_phase_of_a_promotion_resumes_it_step_by_step_with(
    router: RouterKind,
) {
    let h = Harness::start(router).await;
    let (story, left) = kill_at_each(
        &h,
        Version::Good(1),
        vec![
            ("Preparing", |s| s.phase == Phase::Preparing),
            ("Progressing at 0%", |s| {
                s.phase == Phase::Progressing && s.weight == 0
            }),
            ("Progressing at the second step", |s| {
                s.phase == Phase::Progressing && s.weight == 2 * STEP
            }),
            ("Promoting", |s| s.phase == Phase::Promoting),
        ],
    )
    .await;
    let phases: Vec<(Phase, u32)> = left.iter().map(|s| (s.phase, s.weight)).collect();
    assert_eq!(
        phases,
        vec![
            (Phase::Preparing, 0),
            (Phase::Progressing, 0),
            (Phase::Progressing, 2 * STEP),
            (Phase::Promoting, MAX_WEIGHT),
        ],
        "where Sluice was killed"
    );
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
    assert_eq!(story.weights(), promotion_weights(), "{:?}", story.points);
    assert_back_at_rest(&h).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_while_failing_keeps_its_failed_checks_and_finishes_the_rollback() {
    a_controller_killed_while_failing_keeps_its_failed_checks_and_finishes_the_rollback_with(
        RouterKind::Smi,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_while_failing_behind_an_httproute_keeps_its_failed_checks_and_finishes_the_rollback()
 {
    a_controller_killed_while_failing_keeps_its_failed_checks_and_finishes_the_rollback_with(
        RouterKind::GatewayApi,
    )
    .await;
}

async fn a_controller_killed_while_failing_keeps_its_failed_checks_and_finishes_the_rollback_with(
    router: RouterKind,
) {
    let mut h = Harness::start(router).await;
    // Killed right after writing RollingBack at 0%, before moving the route: the weight reaches
    // the mesh once the restarted controller leads (status is written before the route).
    h.route_lag = RESTART;
    let (story, left) = kill_at_each(
        &h,
        Version::Bad,
        vec![
            ("one check has failed", |s| {
                s.phase == Phase::Progressing && s.failed_checks == 1
            }),
            ("RollingBack", |s| s.phase == Phase::RollingBack),
        ],
    )
    .await;
    assert_eq!(
        left.iter().map(|s| s.phase).collect::<Vec<_>>(),
        vec![Phase::Progressing, Phase::RollingBack]
    );
    assert_eq!(story.last.phase, Phase::Failed, "{:?}", story.points);
    assert_eq!(story.last.failed_checks, THRESHOLD, "{:?}", story.points);
    let failed: Vec<u32> = story.points.iter().map(|p| p.2).collect();
    assert!(
        failed.windows(2).all(|w| w[0] <= w[1]),
        "a failed check was lost: {:?}",
        story.points
    );
    assert!(h.runs(&h.api.get(APP).await.unwrap(), Version::Stable));
    assert_back_at_rest(&h).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traffic_there_is_no_step_and_no_failed_check_until_traffic_arrives() {
    without_traffic_there_is_no_step_and_no_failed_check_until_traffic_arrives_with(
        RouterKind::Smi,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traffic_through_an_httproute_there_is_no_step_and_no_failed_check_until_traffic_arrives()
 {
    without_traffic_there_is_no_step_and_no_failed_check_until_traffic_arrives_with(
        RouterKind::GatewayApi,
    )
    .await;
}

async fn without_traffic_there_is_no_step_and_no_failed_check_until_traffic_arrives_with(
    router: RouterKind,
) {
    let h = Harness::start(router).await;
    h.set_load(0.0).await;
    let mut patch = h.template_patch(Version::Good(1));
    patch["metadata"] = json!({"annotations": {"sluice.dev/threshold": "4"}});
    h.patch(patch).await;
    eventually_status(&h, "two silent intervals", |s| s.silent_intervals >= 2).await;
    let s = status(&h.api.get(APP).await.unwrap()).unwrap();
    assert_eq!(
        (s.weight, s.failed_checks, s.phase),
        (STEP, 0, Phase::Progressing),
        "{s:?}"
    );
    h.set_load(50.0).await;
    let story = follow(&h).await;
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_end_in_the_right_phase_while_the_api_server_fails_a_tenth_of_sluices_requests() {
    const APPS: usize = 20;
    let _heavy = HEAVY.lock().await;
    let mut apps = Harness::start_many(APPS, RouterKind::Smi).await;
    for h in &mut apps {
        // A failed route write is retried after 0.25 s, 0.5 s, 1 s...: three failures in a row
        // (one in a thousand at 10%) delay a lower weight by under 2 s.
        h.route_lag = Duration::from_secs(3);
    }
    let plan = FaultPlan {
        who: Identity::Sluice,
        error_share: 0.1,
        latency: Duration::from_millis(5),
        watch_lifetime: Some(Duration::from_secs(3)),
    };
    if !apps[0].set_api_faults(Some(plan)) {
        eprintln!("a real cluster's API server cannot be made to fail: sandbox only");
        for h in apps {
            h.finish().await;
        }
        return;
    }
    let healthy = |i: usize| i.is_multiple_of(2);
    let stories = futures::future::join_all(apps.iter().enumerate().map(|(i, h)| async move {
        h.roll_to(if healthy(i) {
            Version::Good(1)
        } else {
            Version::Bad
        })
        .await;
        follow(h).await
    }))
    .await;
    let injected = apps[0].api_faults_injected();
    apps[0].set_api_faults(None);
    for (i, story) in stories.iter().enumerate() {
        assert_ended_right(i, healthy(i), story);
    }
    assert!(injected >= 20, "the plan failed only {injected} requests");
    eprintln!("{APPS} rollouts ended right; the API server failed {injected} of Sluice's requests");
    for h in apps {
        h.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_check_gates_each_step_and_its_failure_rolls_the_canary_back() {
    use sluice::sandbox::prometheus::{INSTALL_HINT, PrometheusBinary, locate_binary};
    let h = Harness::start(RouterKind::Smi).await;
    // Under CI=true the sandbox refuses to start without a real prometheus; outside CI it
    // answers the built-in checks only, and custom PromQL needs the real one.
    if !h.is_cluster() && !matches!(locate_binary(), Ok(PrometheusBinary::Installed(_))) {
        eprintln!("skipped: custom PromQL needs a real prometheus ({INSTALL_HINT})");
        h.finish().await;
        return;
    }
    // Responses the canary answered, ever: never below a billion, so the check fails every
    // interval while the built-in checks pass.
    let metrics = "[{name: answered, query: 'sum(response_total{namespace=\"{{namespace}}\",deployment=\"{{canary}}\",direction=\"inbound\"})', min: 1e9}]";
    let mut patch = h.template_patch(Version::Good(1));
    patch["metadata"] = json!({"annotations": {"sluice.dev/metrics": metrics}});
    h.patch(patch).await;
    let story = follow(&h).await;
    assert_eq!(story.last.phase, Phase::Failed, "{:?}", story.points);
    assert_eq!(story.last.failed_checks, THRESHOLD, "{:?}", story.points);
    let answered = story
        .last
        .last_verdicts
        .iter()
        .find(|v| v.name == "answered")
        .unwrap_or_else(|| panic!("no verdict of the custom check: {:?}", story.last));
    assert!(
        answered.value.is_some_and(|v| v > 0.0) && answered.detail.contains("< min"),
        "{answered:?}"
    );
    assert!(
        story.last.message.contains("answered fail"),
        "{}",
        story.last.message
    );
    assert!(
        story
            .last
            .last_verdicts
            .iter()
            .filter(|v| v.name != "answered")
            .all(|v| v.result == sluice::controller::status::CheckResult::Pass),
        "only the custom check failed: {:?}",
        story.last.last_verdicts
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_over_the_rollout_when_the_leader_dies() {
    let h = Harness::start(RouterKind::Smi).await;
    if !h.start_standby().await {
        eprintln!("on a cluster, the installed replicas are what they are: sandbox only");
        h.finish().await;
        return;
    }
    assert!(
        !h.standby_leads().await,
        "the first replica holds the lease"
    );
    let kill = h.arm_kill("the first step", |s| {
        s.phase == Phase::Progressing && s.weight == STEP
    });
    h.roll_to(Version::Good(1)).await;
    let (story, left) = tokio::join!(follow(&h), kill.done());
    assert_eq!((left.phase, left.weight), (Phase::Progressing, STEP));
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
    assert_eq!(story.weights(), promotion_weights(), "{:?}", story.points);
    assert!(h.standby_leads().await, "the standby took the lease over");
    h.finish().await;
}
