//! Prometheus faults (issue 8): Prometheus killed mid-rollout, slower than the query timeout,
//! answering NaN, answering garbage. Each must fail the checks with a reason that names the
//! fault, in the status and in a `CheckFailed` Event, roll the canary back rather than promote
//! it, and leave Sluice serving.
//!
//! - *Stopped*: Sluice queries the sandbox's real Prometheus directly, and the test kills it
//!   with SIGKILL, so Sluice sees the refused connection itself.
//! - *Slow, NaN, garbage*: Sluice queries a
//!   [`PrometheusFaults`](sluice::sandbox::prom_faults::PrometheusFaults) front that fails one
//!   namespace each, while a fourth namespace behind the same front, without a fault, promotes.
//!
//! Sandbox only: on a cluster, Prometheus is not the tests' to break.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use sluice::controller::status::{CheckResult, Phase};
use sluice::sandbox::embedded::Embedded;
use sluice::sandbox::prom_faults::{PromFault, PrometheusFaults};

use crate::harness::{APP, Harness, RouterKind, STEP, THRESHOLD, Version, status};
use crate::observer::{Story, follow};
use crate::{eventually_status, promotion_weights};

/// The notes of the `CheckFailed` Events on `app`.
async fn check_failed_notes(h: &Harness) -> Vec<String> {
    Api::<Event>::namespaced(h.client.clone(), &h.ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(APP)
                && e.reason.as_deref() == Some("CheckFailed")
        })
        .filter_map(|e| e.note)
        .collect()
}

/// The rollout failed on its checks, each failing because of `reason`, which the status and a
/// `CheckFailed` Event both name; no weight went beyond `max_weight`; `app` runs the stable
/// version again.
async fn assert_rolled_back_because(h: &Harness, story: &Story, reason: &str, max_weight: u32) {
    let ns = &h.ns;
    assert_eq!(story.last.phase, Phase::Failed, "{ns}: {:?}", story.points);
    assert_eq!(
        story.last.failed_checks, THRESHOLD,
        "{ns}: {:?}",
        story.points
    );
    assert!(
        !story.last.last_verdicts.is_empty()
            && story
                .last
                .last_verdicts
                .iter()
                .all(|v| v.result == CheckResult::Fail && v.detail.contains(reason)),
        "{ns}: every check fails with {reason:?}: {:?}",
        story.last.last_verdicts
    );
    assert!(
        story.weights().iter().all(|w| *w <= max_weight),
        "{ns}: no step after the fault: {:?}",
        story.points
    );
    let notes = check_failed_notes(h).await;
    assert!(
        notes.len() >= THRESHOLD as usize && notes.iter().all(|n| n.contains(reason)),
        "{ns}: the CheckFailed Events name {reason:?}: {notes:?}"
    );
    assert!(
        h.runs(&h.api.get(APP).await.unwrap(), Version::Stable),
        "{ns}: back on the stable version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_killed_mid_rollout_fails_the_checks_and_the_canary_is_rolled_back() {
    let h = Harness::start(RouterKind::Smi).await;
    let Some(sandbox) = h.sandbox() else {
        eprintln!("on a cluster, Prometheus is not the tests' to kill: sandbox only");
        h.finish().await;
        return;
    };
    h.roll_to(Version::Good(1)).await;
    eventually_status(&h, "the first step", |s| s.weight == STEP).await;
    // Under CI=true the sandbox refuses to start without the real binary, so this is never
    // skipped there.
    if !sandbox.metrics.kill().expect("killing prometheus") {
        eprintln!(
            "skipped: the built-in query endpoint is a simulation; killing Prometheus needs the real one"
        );
        h.finish().await;
        return;
    }
    let story = follow(&h).await;
    assert_rolled_back_because(&h, &story, "Prometheus unreachable", STEP).await;
    // Nothing crashed: the webhook still holds a new revision and the controller prepares it.
    let held = h.roll_to(Version::Good(2)).await;
    assert_eq!(held.spec.as_ref().unwrap().paused, Some(true), "held");
    eventually_status(&h, "the next rollout starts", |s| {
        s.phase == Phase::Progressing
    })
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_nan_or_garbage_answering_prometheus_fails_the_checks_and_the_canary_is_rolled_back()
{
    // One namespace per fault, and one without a fault: it must promote through the same front.
    let faults = [
        // Sluice gives up on a query after 10 s (`sluice serve`).
        (
            Some(PromFault::Slow(Duration::from_secs(12))),
            "Prometheus timed out",
        ),
        (Some(PromFault::NaN), "not a number"),
        (Some(PromFault::Garbage), "not a Prometheus answer"),
        (None, ""),
    ];
    let apps = Harness::start_many(faults.len(), RouterKind::Smi).await;
    let Some(sandbox) = apps[0].sandbox() else {
        eprintln!("on a cluster, Prometheus is not the tests' to break: sandbox only");
        for h in apps {
            h.finish().await;
        }
        return;
    };
    let front = PrometheusFaults::start(sandbox.metrics.url())
        .await
        .expect("the front starts");
    apps[0].stop_sluice().await;
    let sluice = Embedded::start_with_prometheus(sandbox, front.url())
        .await
        .expect("Sluice starts on the front");
    for (h, (fault, _)) in apps.iter().zip(&faults) {
        front.set(&h.ns, *fault);
    }
    let stories = futures::future::join_all(apps.iter().map(|h| async move {
        h.roll_to(Version::Good(1)).await;
        follow(h).await
    }))
    .await;
    for ((h, story), (fault, reason)) in apps.iter().zip(&stories).zip(&faults) {
        if fault.is_some() {
            // The first step needs no verdict (there is no canary traffic to judge at 0%).
            assert_rolled_back_because(h, story, reason, STEP).await;
        } else {
            assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
            assert_eq!(story.weights(), promotion_weights(), "{:?}", story.points);
        }
    }
    // Nothing crashed: with the faults lifted, the webhook and the controller still work.
    front.set(&apps[1].ns, None);
    let held = apps[1].roll_to(Version::Good(2)).await;
    assert_eq!(held.spec.as_ref().unwrap().paused, Some(true), "held");
    eventually_status(&apps[1], "the next rollout advances", |s| {
        s.phase == Phase::Progressing && s.weight >= STEP
    })
    .await;
    let last = status(&apps[1].api.get(APP).await.unwrap()).unwrap();
    assert!(
        last.last_verdicts
            .iter()
            .all(|v| v.result == CheckResult::Pass),
        "{last:?}"
    );
    sluice.shutdown().await;
    front.shutdown().await;
    for h in apps {
        h.finish().await;
    }
}
