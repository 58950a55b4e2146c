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
//!
//! Readiness needs the Deployment's current generation observed, and every annotation write
//! (Sluice's status) bumps a Deployment's generation, as kube-apiserver does. A template is
//! therefore judged ready at a sample when its pods are all there and it was seen ready at that
//! version or an earlier one, by the samples or by a watch that sees every version: a brief
//! fully-observed moment between two status writes is enough, as it is for Sluice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Filled in when the rollout ends, from everything the watch saw ([`Readiness`]).
    pub app_ready: bool,
    pub primary_ready: bool,
    app: Deployment,
    primary: Option<Deployment>,
    /// How `app`'s readiness was judged: its generations, replica counts and `spec.paused`.
    pub app_detail: String,
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
/// runs on all replicas, they are available, and the Deployment controller has observed the
/// current generation. Since annotation writes bump the generation too, a template seen ready
/// at some version stays ready at later versions with the same template and all pods there.
#[derive(Default)]
struct Readiness {
    /// (Deployment, template) to the first resourceVersion at which it was seen ready.
    first_ready: HashMap<(String, String), u64>,
}

fn resource_version(d: &Deployment) -> Option<u64> {
    d.metadata.resource_version.as_deref()?.parse().ok()
}

fn template_key(d: &Deployment) -> (String, String) {
    let template = d.spec.as_ref().map(|s| &s.template);
    (
        d.metadata.name.clone().unwrap_or_default(),
        serde_json::to_string(&template).unwrap_or_default(),
    )
}

/// All replicas run the current template and are available; whether the current generation
/// has been observed.
fn pods_there(d: &Deployment) -> (bool, bool) {
    let (Some(spec), Some(st)) = (d.spec.as_ref(), d.status.as_ref()) else {
        return (false, false);
    };
    let want = spec.replicas.unwrap_or(1);
    let counts = st.updated_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want;
    let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    (counts, observed)
}

impl Readiness {
    /// Notes a version of a Deployment, from a sample or the watch.
    fn record(&mut self, d: &Deployment) {
        if let (Some(rv), (true, true)) = (resource_version(d), pods_there(d)) {
            let first = self.first_ready.entry(template_key(d)).or_insert(rv);
            *first = (*first).min(rv);
        }
    }

    fn judge(&self, d: &Deployment) -> bool {
        match pods_there(d) {
            (true, true) => true,
            (true, false) => {
                let first = self.first_ready.get(&template_key(d));
                matches!((first, resource_version(d)), (Some(f), Some(rv)) if *f <= rv)
            }
            (false, _) => false,
        }
    }
}

/// Every version of the scenario's Deployments, into `readiness`, until aborted; the highest
/// resourceVersion seen so far in `latest`.
fn watch_readiness(
    h: &Harness,
    readiness: Arc<Mutex<Readiness>>,
    latest: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let api = h.api.clone();
    tokio::spawn(async move {
        let events = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects();
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            if let Ok(d) = event {
                readiness.lock().unwrap().record(&d);
                if let Some(rv) = resource_version(&d) {
                    latest.fetch_max(rv, Ordering::SeqCst);
                }
            }
        }
    })
}

async fn sample(h: &Harness) -> Sample {
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
        app_ready: false,
        app_detail: detail(app),
        primary_ready: false,
        app: app.clone(),
        primary: find(&format!("{APP}-primary")).cloned(),
    }
}

/// `gen 3/3 replicas 2 updated 2 available 2 paused false`: what readiness is judged from.
fn detail(d: &Deployment) -> String {
    let st = d.status.clone().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    format!(
        "gen {}/{} replicas {}/{} updated {} available {} paused {}",
        st.observed_generation.unwrap_or(0),
        d.metadata.generation.unwrap_or(0),
        st.replicas.unwrap_or(0),
        spec.replicas.unwrap_or(1),
        st.updated_replicas.unwrap_or(0),
        st.available_replicas.unwrap_or(0),
        spec.paused.unwrap_or(false)
    )
}

/// Samples until the rollout that is under way ends at rest, then checks invariants 1 and 2.
pub async fn follow(h: &Harness) -> Story {
    let deadline = Instant::now() + h.intervals(25) + h.downtime;
    let mut samples: Vec<Sample> = Vec::new();
    let mut points = Vec::new();
    let readiness = Arc::new(Mutex::new(Readiness::default()));
    let latest = Arc::new(AtomicU64::new(0));
    let watch = watch_readiness(h, readiness.clone(), latest.clone());
    loop {
        let s = sample(h).await;
        let point = (s.status.phase, s.status.weight, s.status.failed_checks);
        if points.last() != Some(&point) {
            points.push(point);
        }
        let done = points.len() > 1 && s.status.phase.is_at_rest();
        samples.push(s);
        if done {
            break;
        }
        if Instant::now() >= deadline {
            let s = samples.last().expect("a sample");
            panic!(
                "{}/{APP}: the rollout did not end: {points:?}; last status message {:?}, app {}",
                h.ns, s.status.message, s.app_detail
            );
        }
        tokio::time::sleep(h.sample_every).await;
    }
    // Let the watch catch up with the last version sampled, then judge every sample.
    let newest = samples
        .iter()
        .flat_map(|s| std::iter::once(&s.app).chain(s.primary.as_ref()))
        .filter_map(resource_version)
        .max()
        .unwrap_or(0);
    let caught_up = Instant::now() + std::time::Duration::from_secs(5);
    while latest.load(Ordering::SeqCst) < newest && Instant::now() < caught_up {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    watch.abort();
    {
        let mut r = readiness.lock().unwrap();
        for s in &samples {
            r.record(&s.app);
            if let Some(p) = &s.primary {
                r.record(p);
            }
        }
        for s in &mut samples {
            s.app_ready = r.judge(&s.app);
            s.primary_ready = s.primary.as_ref().is_some_and(|p| r.judge(p));
        }
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
                "invariant 2: {what} (before: {:?} route {:?} apex-on-primary {:?} app {}; after: {:?} route {:?} apex-on-primary {:?} app ready {} ({}) primary ready {}); rollout {points:?}",
                a.status.phase,
                a.route,
                a.apex_on_primary,
                a.app_detail,
                b.status.phase,
                b.route,
                b.apex_on_primary,
                b.app_ready,
                b.app_detail,
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

/// The share of traffic the user's Deployment may answer at `sample`: all of it at rest,
/// while the primary is prepared (its pods are still the stable version) and while promoting;
/// the step's weight while a rollout runs. While an A/B test routes by its rules, the share is
/// the matching requests', which the status does not know: the scenario checks by request class
/// that only those reached the new version (`ab.rs`).
fn allowed_share(sample: &Sample) -> u32 {
    let s = &sample.status;
    let ab = sample
        .app
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("sluice.dev/strategy"))
        .is_some_and(|v| v == "ab-testing");
    let matched = ab
        && s.iteration_goal.is_some()
        && matches!(
            s.phase,
            Phase::Progressing | Phase::Paused | Phase::WaitingPromotion
        );
    if matched || s.phase.is_at_rest() || matches!(s.phase, Phase::Preparing | Phase::Promoting) {
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
            .map(allowed_share)
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
            .map(allowed_share)
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
