//! The observer every scenario runs under: it follows a rollout to its end and checks
//! DESIGN §7 invariants 1 and 2 on what it saw.
//!
//! ```text
//! every 50 ms (`Harness::sample_every`): route weights ─► apex selector ─► Deployments (status, readiness)   = a Sample
//! at the end:  invariant 2 over consecutive samples
//!              invariant 1 over the traffic windows against the weights Sluice had set
//! ```
//!
//! Everything is read through the API, so the observer works on a real cluster as on the
//! sandbox. Within a sample the route is read before readiness: a correct controller makes a
//! version ready before it sends it traffic, and readiness stays, so reading it later can only
//! err toward "ready" when the route moved after it. A route that moved toward a version which
//! is still not ready afterwards is a violation the observer always catches.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use serde_json::Value;
use sluice::controller::status::{Phase, RolloutStatus};

use crate::harness::{APP, Harness, status};

/// What the observer saw at one moment.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: SystemTime,
    pub status: RolloutStatus,
    /// Percent of the route's traffic to `app-primary` and to `app-canary`.
    pub route: Option<(u32, u32)>,
    /// Whether the apex Service selects the primary's pods.
    pub apex_on_primary: Option<bool>,
    pub app_ready: bool,
    pub primary_ready: bool,
    /// The stable version's image, from the stable template the webhook recorded.
    pub stable_image: Option<String>,
}

/// A followed rollout.
pub struct Story {
    /// The distinct (phase, weight, failed checks) points, in order.
    pub points: Vec<(Phase, u32, u32)>,
    pub last: RolloutStatus,
}

impl Story {
    /// The distinct weights, in order.
    pub fn weights(&self) -> Vec<u32> {
        let mut v: Vec<u32> = Vec::new();
        for (_, w, _) in &self.points {
            if v.last() != Some(w) {
                v.push(*w);
            }
        }
        v
    }
}

/// Readiness of the Deployments, as `kubectl rollout status` judges it: the current template
/// runs on all replicas and they are available. A metadata change bumps a Deployment's
/// generation before its controller observes it, though no pod changes: a template that was
/// seen ready stays ready through such a bump.
#[derive(Default)]
struct Readiness {
    ready_templates: HashMap<String, Value>,
}

impl Readiness {
    fn judge(&mut self, d: &Deployment) -> bool {
        let (Some(spec), Some(st)) = (d.spec.as_ref(), d.status.as_ref()) else {
            return false;
        };
        let want = spec.replicas.unwrap_or(1);
        let counts = st.updated_replicas.unwrap_or(0) == want
            && st.replicas.unwrap_or(0) == want
            && st.available_replicas.unwrap_or(0) == want;
        let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
        let name = d.metadata.name.clone().unwrap_or_default();
        let template = serde_json::to_value(&spec.template).unwrap_or_default();
        if counts && observed {
            self.ready_templates.insert(name, template);
            return true;
        }
        counts && self.ready_templates.get(&name) == Some(&template)
    }
}

async fn sample(h: &Harness, readiness: &mut Readiness) -> Sample {
    let route = h.route_weights().await;
    let apex_on_primary = Api::<Service>::namespaced(h.client.clone(), &h.ns)
        .get(APP)
        .await
        .ok()
        .and_then(|s| s.spec?.selector)
        .map(|sel| sel.values().any(|v| v.ends_with("-primary")));
    let deployments = h.api.list(&ListParams::default()).await.unwrap().items;
    let find = |name: &str| {
        deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
    };
    let app = find(APP).expect("the app exists");
    Sample {
        at: SystemTime::now(),
        status: status(app).expect("the app has a status"),
        route,
        apex_on_primary,
        stable_image: app
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("sluice.dev/stable-template"))
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|t| {
                t["spec"]["containers"][0]["image"]
                    .as_str()
                    .map(String::from)
            }),
        app_ready: readiness.judge(app),
        primary_ready: find(&format!("{APP}-primary")).is_some_and(|d| readiness.judge(d)),
    }
}

/// Samples until the rollout that is under way ends at rest, then checks invariants 1 and 2.
pub async fn follow(h: &Harness) -> Story {
    let deadline = Instant::now() + h.intervals(25);
    let mut samples: Vec<Sample> = Vec::new();
    let mut points = Vec::new();
    let mut readiness = Readiness::default();
    loop {
        let s = sample(h, &mut readiness).await;
        let point = (s.status.phase, s.status.weight, s.status.failed_checks);
        if points.last() != Some(&point) {
            points.push(point);
        }
        let done = points.len() > 1 && s.status.phase.is_at_rest();
        samples.push(s);
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not end: {points:?}"
        );
        tokio::time::sleep(h.sample_every).await;
    }
    let last = samples.last().unwrap().status.clone();
    check_readiness(&samples, &points);
    check_traffic(h, &samples, &points).await;
    Story { points, last }
}

/// DESIGN §7 invariant 2: weight never moves toward a version that is not ready.
fn check_readiness(samples: &[Sample], points: &[(Phase, u32, u32)]) {
    for pair in samples.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let fail = |what: &str| {
            panic!(
                "invariant 2: {what} (before: {:?} route {:?} apex-on-primary {:?}; after: {:?} route {:?} apex-on-primary {:?} app ready {} primary ready {}); rollout {points:?}",
                a.status.phase,
                a.route,
                a.apex_on_primary,
                b.status.phase,
                b.route,
                b.apex_on_primary,
                b.app_ready,
                b.primary_ready
            )
        };
        if let (Some((ap, ac)), Some((bp, bc))) = (a.route, b.route) {
            if bc > ac && !b.app_ready {
                fail("the route moved weight to the canary while it was not ready");
            }
            if bp > ap && !b.primary_ready {
                fail("the route moved weight to the primary while it was not ready");
            }
        }
        match (a.apex_on_primary, b.apex_on_primary) {
            (Some(false), Some(true)) if !b.primary_ready => {
                fail("the apex Service switched to the primary while it was not ready")
            }
            (Some(true), Some(false)) if !b.app_ready => {
                fail("the apex Service switched back to the app while it was not ready")
            }
            _ => {}
        }
    }
}

/// The share of traffic the user's Deployment may answer under status `s`: all of it at rest,
/// while the primary is prepared (its pods are still the stable version) and while promoting;
/// the step's weight while a rollout runs.
fn allowed_share(s: &RolloutStatus) -> u32 {
    if s.phase.is_at_rest() || matches!(s.phase, Phase::Preparing | Phase::Promoting) {
        100
    } else {
        s.weight
    }
}

/// DESIGN §7 invariant 1: in every traffic window, the new version answered no more than the
/// weight Sluice had set. The harness's slack covers the route reaching the mesh (status is
/// written before the route moves) and the coarseness of the figures; a lower weight may take
/// the harness's `route_lag` to reach the mesh (a higher one never comes early: the status is
/// written first); one request covers rounding.
async fn check_traffic(h: &Harness, samples: &[Sample], points: &[(Phase, u32, u32)]) {
    let slack = h.traffic_slack();
    let (start, end) = (samples[0].at, samples.last().unwrap().at);
    let share_at = |t: SystemTime| {
        samples
            .iter()
            .rev()
            .find(|s| s.at <= t)
            .map(|s| allowed_share(&s.status))
            .unwrap_or(100)
    };
    let stable_image = samples.iter().find_map(|s| s.stable_image.as_deref());
    let mut checked = 0;
    for w in h.traffic(start).await {
        if w.from < start + slack || w.to + slack > end {
            continue;
        }
        let (lo, hi) = (w.from - h.route_lag.max(slack), w.to + slack);
        let allowed = samples
            .iter()
            .filter(|s| s.at > lo && s.at < hi)
            .map(|s| allowed_share(&s.status))
            .chain([share_at(lo)])
            .max()
            .unwrap_or(100);
        let total: u64 = w.by_deployment.values().sum();
        // The new version: where the backend knows each pod's image, every image but the
        // stable one (the user's Deployment runs the stable version until Sluice un-pauses it,
        // and again once a rollback restored it); otherwise the user's Deployment's pods.
        let canary = match (&w.by_image, stable_image) {
            (Some(by_image), Some(stable)) => total - by_image.get(stable).copied().unwrap_or(0),
            (Some(_), None) => panic!("the webhook recorded no stable template: {points:?}"),
            (None, _) => w.by_deployment.get(APP).copied().unwrap_or(0),
        };
        assert!(
            canary * 100 <= u64::from(allowed) * total + 100,
            "invariant 1: from {:?} to {:?} the new version answered {canary}/{total} requests, above the {allowed}% set then ({points:?})",
            w.from,
            w.to
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "the observer saw only {checked} windows of traffic"
    );
}
