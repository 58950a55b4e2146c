//! A route API that goes away mid-rollout (issue 6, "Discovery"): during a Gateway API canary
//! the HTTPRoute CRD is deleted, as `kubectl delete crd httproutes.gateway.networking.k8s.io`
//! does, then created again.
//!
//! ```text
//! Progressing 20% ── CRD deleted (route deleted) ──► Blocked: reason names the API and the fix,
//!                                                    nothing written, one pass per interval
//!                 ── CRD created again ──► Preparing ─► Progressing 0, 20, 40, 60 ─► Succeeded
//! ```
//!
//! What traffic does while Blocked (the controller's choice, documented in
//! `src/controller/machine.rs`): deleting the CRD deletes the route, so the mesh sends the
//! apex Service's traffic by its selector, which Sluice switched to `-primary` when the rollout
//! began. The stable version serves 100% and the new version none; Sluice writes nothing until
//! the API is back, then starts the rollout again at 0% (the canary's analysis lost its
//! traffic, so it is not resumed half way).
//!
//! Sandbox only: on a real cluster a CRD is shared by everything on it, so the scenario prints
//! that it did nothing. A new Deployment choosing the router while its API is unserved from the
//! start is refused at admission in `tests/routing.rs`; here the API goes away under a running
//! Sluice, so the refusal also shows that the webhook's view of discovery follows it.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Instant, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;
use serde_json::json;
use sluice::controller::status::Phase;

use crate::harness::{APP, Harness, RouterKind, STEP, Version, status};
use crate::observer::follow;
use crate::{eventually_status, promotion_weights};

/// The phase and weight of every status Sluice writes on the app, as a watch sees them, until
/// the rollout ends (or 40 intervals pass).
async fn statuses_written(h: &Harness) -> Vec<(Phase, u32)> {
    let mut written: Vec<(Phase, u32)> = Vec::new();
    h.each_status(h.intervals(40), |s| {
        if written.last() != Some(&(s.phase, s.weight)) {
            written.push((s.phase, s.weight));
        }
        match matches!(s.phase, Phase::Succeeded | Phase::Failed) && written.len() > 1 {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    })
    .await;
    written
}

/// What names the unserved API in the reason and the refusal.
const UNSERVED: &str = "gateway.networking.k8s.io/v1 httproutes";

/// Requests in `after` that are not in `before`, by `verb resource`.
fn made_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_httproute_api_that_goes_away_mid_rollout_blocks_it_saying_so_and_it_starts_again_when_back()
 {
    let h = Harness::start(RouterKind::GatewayApi).await;
    if h.is_cluster() {
        eprintln!("a real cluster's CRDs are shared by everything on it: sandbox only");
        h.finish().await;
        return;
    }
    h.roll_to(Version::Good(1)).await;
    let driver = async {
        eventually_status(&h, "the first step", |s| {
            s.phase == Phase::Progressing && s.weight >= STEP
        })
        .await;
        assert!(h.set_route_crd(false), "the sandbox deletes the CRD");
        eventually_status(&h, "the rollout is Blocked", |s| s.phase == Phase::Blocked).await;
        let blocked = status(&h.api.get(APP).await.unwrap()).unwrap();
        for part in [UNSERVED, "sluice.dev/router: gateway-api", "deploy/crds/"] {
            assert!(
                blocked.message.contains(part),
                "{part:?} missing from the reason: {}",
                blocked.message
            );
        }

        // Held still, by a Sluice that keeps running and asks little: one pass per interval.
        let (from, before) = (SystemTime::now(), h.sluice_requests());
        let held_since = Instant::now();
        tokio::time::sleep(h.interval() * 2).await;
        let during = made_between(&before, &h.sluice_requests());
        let held_for = held_since.elapsed().as_secs_f64();
        let still = status(&h.api.get(APP).await.unwrap()).unwrap();
        assert_eq!(
            (still.phase, &still.message),
            (Phase::Blocked, &blocked.message)
        );
        h.wait_until_sluice_leads().await;
        // A pass reads the Deployment, the apex Service and discovery; leader election renews
        // the Lease on its own clock. A retry loop would make hundreds.
        let passes = (held_for / h.interval().as_secs_f64()).ceil() + 1.0;
        let reconciling: u64 = during
            .iter()
            .filter(|(k, _)| !k.ends_with(" leases"))
            .map(|(_, n)| n)
            .sum();
        assert!(
            reconciling as f64 <= 5.0 * passes,
            "Sluice made {reconciling} requests besides its Lease in {held_for:.1} s while Blocked: {during:?}"
        );
        eprintln!("while Blocked for {held_for:.1} s Sluice made these requests: {during:?}");
        // The route went with its CRD: the apex sends everything to the primary.
        let image = h.template_patch(Version::Good(1))["spec"]["template"]["spec"]["containers"][0]
            ["image"]
            .as_str()
            .unwrap()
            .to_string();
        let windows: Vec<_> = h
            .traffic(from)
            .await
            .into_iter()
            .filter(|w| w.to + h.traffic_slack() <= SystemTime::now())
            .collect();
        assert!(windows.len() >= 2, "{windows:?}");
        for w in &windows {
            let total: u64 = w.by_deployment.values().sum();
            let new = w.by_image.as_ref().and_then(|i| i.get(&image)).copied();
            assert!(
                total > 0 && new.unwrap_or(0) == 0,
                "while Blocked the new version answered {new:?} of {total}: {w:?}"
            );
        }

        // Choosing the router now is refused at admission, in the same words.
        let mut other: Deployment = h.api.get(APP).await.unwrap();
        other.metadata = serde_json::from_value(json!({
            "name": format!("{APP}-2"),
            "labels": {"app": format!("{APP}-2")},
            "annotations": {"sluice.dev/router": "gateway-api"},
        }))
        .unwrap();
        let spec = other.spec.as_mut().unwrap();
        spec.paused = None;
        spec.selector.match_labels = Some([("app".to_string(), format!("{APP}-2"))].into());
        spec.template.metadata.as_mut().unwrap().labels =
            Some([("app".to_string(), format!("{APP}-2"))].into());
        let refused = h
            .api
            .create(&PostParams::default(), &other)
            .await
            .expect_err("a new Deployment with an unserved router is refused")
            .to_string();
        for part in ["denied the request", UNSERVED] {
            assert!(refused.contains(part), "{part:?} missing from {refused}");
        }

        assert!(h.set_route_crd(true), "the sandbox creates the CRD again");
    };
    let (story, (), written) = tokio::join!(follow(&h), driver, statuses_written(&h));
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
    // From every status write (a watch sees each one; the observer's 50 ms samples can miss a
    // short Preparing and 0% between two passes).
    let blocked_at = written
        .iter()
        .position(|p| p.0 == Phase::Blocked)
        .unwrap_or_else(|| panic!("never Blocked: {written:?}"));
    let mut after: Vec<u32> = Vec::new();
    for (_, w) in &written[blocked_at + 1..] {
        if after.last() != Some(w) {
            after.push(*w);
        }
    }
    assert_eq!(
        after,
        promotion_weights(),
        "the rollout starts again at 0% and goes through every step: {written:?}"
    );
    assert!(h.runs(&h.api.get(APP).await.unwrap(), Version::Good(1)));
    assert_eq!(h.route_weights().await, Some((0, 100)), "the route is back");
    h.finish().await;
}
