//! Scale benchmarks (issue 8): a fleet of managed Deployments in the sandbox, with Sluice run
//! as a separate `sluice serve` process so that its RSS and CPU are its own. Driven by the
//! `sluice-scale` release binary; BENCHMARKS.md records the figures and the command.
//!
//! ```text
//! sluice-scale ─┬─ Sandbox (this process): API server, workload + mesh simulators, query endpoint
//!               ├─ sluice serve (child process) ── sluice.kubeconfig ──► API server
//!               │       ▲ webhook registered with the child's CA, /readyz polled before the fleet
//!               └─ watcher (admin) on every Deployment: (time, key, phase, weight) log
//!
//! 1. at rest:   N Deployments + apex Services in M namespaces → time until all are Initialized;
//!               then `idle` of quiet: Sluice's API requests (by verb, watches excluded, counted by
//!               the API server per identity), CPU seconds (/proc/PID/stat), RSS (/proc/PID/status)
//! 2. reaction:  one update: admitted → `app-primary` created, → first weight > 0
//! 3. in motion: R concurrent rollouts at `interval`: lateness of each step against
//!               previous step + interval, controller CPU, peak RSS
//! ```
//!
//! Choices:
//! - The metrics backend is the built-in query endpoint, not a real Prometheus: it answers the
//!   same built-in checks, and a Prometheus process would only compete with Sluice for the two
//!   cores of a CI machine without being Sluice's cost.
//! - Lateness is measured where a user sees it: the instant the admin watch receives the status
//!   of step k, minus (the instant it received step k-1, plus `interval`). It includes the status
//!   write and the watch delivery. The first step (0 → step-weight, taken as soon as the canary is
//!   ready, not on the interval) and promotion are not steps on the schedule.
//! - Sluice's own requests are told apart from the simulators' by the API server
//!   ([`ApiServer::request_counts_by`](super::apiserver::ApiServer::request_counts_by)).
//! - Each step's lateness is split by [`step_timings`] with the status's `lastAnalysis` (the
//!   controller's clock when it observed): intervals held by an analysis that did not advance,
//!   the controller observing later than due, and observation → watch. The watch's clock and
//!   Sluice's are the same machine's.
//! - The motion stage's updates go `concurrency` at a time, like the fleet's creates: 200
//!   PATCHes at once only measured how many admissions the sandbox holds open within the
//!   webhook's 5 s timeout. A create or update refused with a server error (a webhook timing out
//!   fails closed) is retried after 1 s, up to 5 times, and counted in the report.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::apiserver::Identity;
use super::apiserver::fault::FaultPlan;
use super::{MetricsBackend, Sandbox, SandboxOptions};
use crate::controller::status::{Phase, RolloutStatus};
use crate::policy::keys::OPT_IN_LABEL;

/// Errors of a scale run; each names the stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{stage}: {reason}")]
    Stage { stage: &'static str, reason: String },
}

fn stage<E: std::fmt::Display>(stage: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Stage {
        stage,
        reason: e.to_string(),
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct ScaleOptions {
    /// Managed Deployments in the fleet (each with its apex Service).
    pub deployments: usize,
    /// Namespaces they are spread over (labelled `sluice.dev/canary: enabled`).
    pub namespaces: usize,
    /// How long to measure idleness.
    pub idle: Duration,
    /// Concurrent rollouts of the motion stage (0: skip it).
    pub rollouts: usize,
    /// `sluice.dev/interval` of every Deployment.
    pub interval: Duration,
    /// How long the workload simulator takes to make a pod ready.
    pub ready_delay: Duration,
    /// Requests per second the mesh sends to each rolling app.
    pub rps: f64,
    /// The `sluice` binary to run as `sluice serve`.
    pub sluice_bin: PathBuf,
    /// Concurrent creates while building the fleet.
    pub concurrency: usize,
    /// Ends every watch stream of Sluice's after this long during the motion stage, so that
    /// its re-watches fall among the rollouts' steps. kube-apiserver ends a watch at the
    /// client's `timeoutSeconds` (290 s for kube-runtime), so a long enough run has them anyway.
    pub watch_lifetime: Option<Duration>,
}

/// What a scale run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub deployments: usize,
    pub namespaces: usize,
    /// From the first create to the last Deployment seen `Initialized`.
    pub onboard_all: Duration,
    /// How long creating the fleet took (every create admitted by Sluice's webhook).
    pub create_all: Duration,
    pub idle: Duration,
    /// Sluice's API requests during the idle window, by verb (watches excluded).
    pub idle_requests: BTreeMap<String, u64>,
    pub idle_cpu_seconds: f64,
    /// The other clients' API requests during the idle window (the simulators, as admin), by
    /// verb: a write there is a watch event that wakes Sluice.
    pub idle_others: BTreeMap<String, u64>,
    pub rest_rss_mb: f64,
    /// Single update at rest: admitted → primary created, → first weight set.
    pub reaction_primary: Option<Duration>,
    pub reaction_first_weight: Option<Duration>,
    pub ready_delay: Duration,
    pub rollouts: usize,
    pub interval: Duration,
    /// Sluice's watches were ended after this long during the motion stage.
    pub watch_lifetime: Option<Duration>,
    pub motion_wall: Duration,
    /// How long applying the motion stage's updates took (`concurrency` at a time).
    pub motion_applied: Duration,
    /// Creates and updates retried after a server error (an admission webhook timing out).
    pub retries: u64,
    pub motion_cpu_seconds: f64,
    /// The sandbox's own CPU (this process: API server, simulators, query endpoint) over the
    /// motion stage, to tell a saturated sandbox from a slow Sluice.
    pub sandbox_motion_cpu_seconds: f64,
    /// Watches the sandbox ended with 410 because their client fell behind, over the motion
    /// stage (each one a relist for its client: Sluice's caches or the measuring watch).
    pub motion_watches_cut: u64,
    /// Lateness of every scheduled step, seconds, ascending.
    pub lateness: Vec<f64>,
    /// Where each scheduled step's lateness went (same steps, in no order).
    pub steps: Vec<StepTiming>,
    /// Sluice's analysis queries during the motion stage: seconds spent, and how many.
    pub motion_queries: Option<(f64, f64)>,
    /// Sluice's API requests during the motion stage, by verb (watches excluded).
    pub motion_requests: BTreeMap<String, u64>,
    /// Per-rollout reaction during the motion stage, seconds, ascending.
    pub motion_primary: Vec<f64>,
    pub motion_first_weight: Vec<f64>,
    /// Rollouts of the motion stage by final phase.
    pub motion_phases: BTreeMap<String, usize>,
    pub peak_rss_mb: f64,
}

// ---------------------------------------------------------------------------------------------
// Pure parts

/// `(namespace, name)` of every Deployment of the fleet: `scale-00/app-0000`, … spread evenly.
pub fn fleet(deployments: usize, namespaces: usize) -> Vec<(String, String)> {
    let namespaces = namespaces.max(1);
    (0..deployments)
        .map(|i| {
            (
                format!("scale-{:02}", i % namespaces),
                format!("app-{i:04}"),
            )
        })
        .collect()
}

/// The rollouts of the motion stage: the first `n` of the fleet, skipping the first one, which
/// the reaction stage rolls.
pub fn motion_set(fleet: &[(String, String)], n: usize) -> Vec<(String, String)> {
    fleet.iter().skip(1).take(n).cloned().collect()
}

/// The apex Service of `name`.
pub fn service_manifest(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9898}]}})
}

/// A managed Deployment (its namespace opts in) analysed every `interval`.
pub fn deployment_manifest(name: &str, interval: Duration) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": {
            "sluice.dev/interval": humantime::format_duration(interval).to_string(),
            "sluice.dev/min-requests": "5"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "podinfo:6.0.0"}]}}}
    })
}

/// The update each benchmarked rollout applies.
pub fn update_patch() -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "podinfo:6.0.1"}]}}}})
}

/// The `p`-th percentile (0–100) of ascending `sorted`, nearest rank; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One status change of a rollout as the watch saw it: seconds since the run began, phase,
/// weight.
pub type Point = (f64, Phase, u32);

/// Lateness (seconds) of each scheduled step of one rollout: a weight increase while
/// `Progressing` from a weight above 0, against the previous weight's arrival plus `interval`.
pub fn step_lateness(points: &[Point], interval: Duration) -> Vec<f64> {
    let mut late = Vec::new();
    let mut prev: Option<(f64, u32)> = None;
    for &(t, phase, weight) in points {
        if phase != Phase::Progressing {
            continue;
        }
        match prev {
            Some((_, w)) if weight == w => continue,
            Some((pt, w)) if w > 0 && weight > w => {
                late.push(t - pt - interval.as_secs_f64());
            }
            _ => {}
        }
        prev = Some((t, weight));
    }
    late
}

/// One status of a rollout as the watch saw it, with the controller's own clock: what splits a
/// step's lateness into its causes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When the admin watch received it, seconds since the run began.
    pub seen: f64,
    pub phase: Phase,
    pub weight: u32,
    /// The status's `lastAnalysis` (the controller's clock when it observed, before its
    /// queries), seconds since the run began.
    pub decided: Option<f64>,
}

/// Where the lateness of one scheduled step went. The parts add up:
/// `late = extra_analyses × interval + start_late + delivery − prev_delivery`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepTiming {
    /// As [`step_lateness`]: seen(k) − seen(k−1) − interval.
    pub late: f64,
    /// Analyses between the two steps that did not advance (no verdict: too little traffic,
    /// or a failed check); each one holds the weight for a whole interval.
    pub extra_analyses: u32,
    /// How much later than due the controller observed, summed over the analyses up to and
    /// including the step: each is `decided − (previous decided + interval)`. The reconcile
    /// queue, the requeue timer and the GETs before the observation are in it.
    pub start_late: f64,
    /// From the controller's observation of step k to the watch receiving it: the queries,
    /// the status write and the watch's delivery.
    pub delivery: f64,
    /// The same for step k−1.
    pub prev_delivery: f64,
}

/// The [`StepTiming`] of every scheduled step of one rollout (the steps [`step_lateness`]
/// counts, when their statuses carry `lastAnalysis`).
pub fn step_timings(samples: &[Sample], interval: Duration) -> Vec<StepTiming> {
    let iv = interval.as_secs_f64();
    let mut out = Vec::new();
    // The last step: (seen, decided, weight); the analyses since it, by their `decided`.
    let mut prev: Option<(f64, f64, u32)> = None;
    let mut between: Vec<f64> = Vec::new();
    for s in samples {
        if s.phase != Phase::Progressing {
            continue;
        }
        let Some(decided) = s.decided else { continue };
        match prev {
            Some((_, pd, w)) if s.weight == w => {
                // The same weight, judged again: an analysis that held it.
                let last = between.last().copied().unwrap_or(pd);
                if decided > last {
                    between.push(decided);
                }
            }
            Some((ps, pd, w)) if w > 0 && s.weight > w => {
                let analyses = between.len() as u32 + 1;
                out.push(StepTiming {
                    late: s.seen - ps - iv,
                    extra_analyses: analyses - 1,
                    start_late: decided - pd - iv * f64::from(analyses),
                    delivery: s.seen - decided,
                    prev_delivery: ps - pd,
                });
                prev = Some((s.seen, decided, s.weight));
                between.clear();
            }
            _ => {
                prev = Some((s.seen, decided, s.weight));
                between.clear();
            }
        }
    }
    out
}

/// `sum` and `count` of a histogram in a Prometheus text exposition (`NAME_sum`, `NAME_count`).
pub fn histogram_totals(exposition: &str, name: &str) -> Option<(f64, f64)> {
    let value = |suffix: &str| {
        let metric = format!("{name}_{suffix}");
        exposition.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == metric)
                .then(|| v.trim().parse::<f64>().ok())
                .flatten()
        })
    };
    Some((value("sum")?, value("count")?))
}

/// `utime + stime` in clock ticks from `/proc/PID/stat`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces: fields are counted after its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line such as `VmRSS` of `/proc/PID/status`, in MB.
pub fn parse_status_mb(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.split(':').next() == Some(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The rows that split the steps' lateness into its causes ([`StepTiming`]).
fn step_breakdown(r: &Report) -> String {
    let sorted = |f: fn(&StepTiming) -> f64| {
        let mut v: Vec<f64> = r.steps.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let p50_p99 = |v: &[f64]| match (percentile(v, 50.0), percentile(v, 99.0)) {
        (Some(a), Some(b)) => format!("{a:.3} s / {b:.3} s"),
        _ => "no samples".into(),
    };
    let held = r.steps.iter().filter(|s| s.extra_analyses > 0).count();
    let extra: u32 = r.steps.iter().map(|s| s.extra_analyses).sum();
    let mut out = format!(
        "| … steps held by an analysis that did not advance (no verdict or a failed check) | {held} of {} ({extra} intervals in all) | |\n",
        r.steps.len()
    );
    out.push_str(&format!(
        "| … the controller observing later than due, per step, p50 / p99 | {} | |\n",
        p50_p99(&sorted(|s| s.start_late))
    ));
    out.push_str(&format!(
        "| … its observation → the watch seeing the step (queries, status write, watch), p50 / p99 | {} | |\n",
        p50_p99(&sorted(|s| s.delivery))
    ));
    let requests: u64 = r.motion_requests.values().sum();
    out.push_str(&format!(
        "| … Sluice's API requests while they ran: in all, per step, per second | {requests}, {:.1}, {:.0}/s | |\n",
        requests as f64 / r.lateness.len().max(1) as f64,
        requests as f64 / r.motion_wall.as_secs_f64().max(0.001)
    ));
    if let Some((sum, count)) = r.motion_queries.filter(|q| q.1 > 0.0) {
        out.push_str(&format!(
            "| … analysis queries: count, mean time | {count:.0}, {:.1} ms | |\n",
            1000.0 * sum / count
        ));
    }
    out
}

/// The report as the markdown table BENCHMARKS.md carries, each figure against its target.
pub fn render(r: &Report) -> String {
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let opt = |d: Option<Duration>| d.map(secs).unwrap_or_else(|| "not seen".into());
    let pct = |v: &[f64], p: f64| {
        percentile(v, p)
            .map(|x| format!("{x:.3} s"))
            .unwrap_or_else(|| "no samples".into())
    };
    let per_min = |n: u64| n as f64 * 60.0 / r.idle.as_secs_f64().max(1.0);
    let idle_total: u64 = r.idle_requests.values().sum();
    // Leader election renews one Lease whatever the fleet: not a per-Deployment cost.
    let not_lease: u64 = r
        .idle_requests
        .iter()
        .filter(|(what, _)| !what.ends_with(" leases"))
        .map(|(_, n)| n)
        .sum();
    let list = |counts: &BTreeMap<String, u64>| {
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts
                .iter()
                .map(|(v, n)| format!("{v} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let verbs = list(&r.idle_requests);
    let mut out = String::new();
    out.push_str(&format!(
        "**At rest** ({} managed Deployments in {} namespaces)\n\n| figure | value | target |\n|---|---|---|\n",
        r.deployments, r.namespaces
    ));
    out.push_str(&format!(
        "| time to onboard all (first create → last `Initialized`) | {} (creating them: {}) | < 60 s |\n",
        secs(r.onboard_all),
        secs(r.create_all)
    ));
    out.push_str(&format!(
        "| creates and updates retried after a server error (webhook timeout) | {} | |\n",
        r.retries
    ));
    out.push_str(&format!(
        "| controller RSS at rest | {:.1} MB | ≤ 150 MB |\n",
        r.rest_rss_mb
    ));
    out.push_str(&format!(
        "| CPU over {} of idleness | {:.2} s | |\n",
        secs(r.idle),
        r.idle_cpu_seconds
    ));
    out.push_str(&format!(
        "| Sluice's API requests at idle (watches excluded) | {:.1}/min ({verbs}) | |\n",
        per_min(idle_total)
    ));
    out.push_str(&format!(
        "| … of which not its leader-election Lease, per Deployment | {:.4}/min | 0 |\n",
        per_min(not_lease) / r.deployments.max(1) as f64
    ));
    out.push_str(&format!(
        "| the sandbox's own clients' requests at idle (simulators, as admin), over {} | {} | |\n\n",
        secs(r.idle),
        list(&r.idle_others)
    ));
    out.push_str(&format!(
        "**Reaction** (one update at rest; pods become ready {} after they are created)\n\n| figure | value |\n|---|---|\n",
        secs(r.ready_delay)
    ));
    out.push_str(&format!(
        "| admitted → `app-primary` created | {} |\n",
        opt(r.reaction_primary)
    ));
    let minus = r
        .reaction_first_weight
        .map(|d| secs(d.saturating_sub(r.ready_delay * 2)))
        .unwrap_or_else(|| "not seen".into());
    out.push_str(&format!(
        "| admitted → first weight set | {} ({minus} minus two readiness delays: primary, then canary) |\n\n",
        opt(r.reaction_first_weight)
    ));
    if r.rollouts > 0 {
        let phases = r
            .motion_phases
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rewatch = r
            .watch_lifetime
            .map(|d| format!("; Sluice's watches ended every {}", secs(d)))
            .unwrap_or_default();
        out.push_str(&format!(
            "**In motion** ({} concurrent rollouts, interval {}{rewatch}; ended: {phases})\n\n| figure | value | target |\n|---|---|---|\n",
            r.rollouts,
            secs(r.interval)
        ));
        out.push_str(&format!(
            "| step lateness p50 / p99 / max ({} steps) | {} / {} / {} | p99 < 1 s |\n",
            r.lateness.len(),
            pct(&r.lateness, 50.0),
            pct(&r.lateness, 99.0),
            pct(&r.lateness, 100.0)
        ));
        out.push_str(&format!(
            "| applying the {} updates | {} | |\n",
            r.rollouts,
            secs(r.motion_applied)
        ));
        out.push_str(&step_breakdown(r));
        out.push_str(&format!(
            "| controller CPU over the {} the rollouts took | {:.2} s ({:.0}% of one core) | |\n",
            secs(r.motion_wall),
            r.motion_cpu_seconds,
            100.0 * r.motion_cpu_seconds / r.motion_wall.as_secs_f64().max(0.001)
        ));
        out.push_str(&format!(
            "| the sandbox's own CPU over that time (API server, simulators, query endpoint) | {:.2} s ({:.0}% of one core, of {} cores) | |\n",
            r.sandbox_motion_cpu_seconds,
            100.0 * r.sandbox_motion_cpu_seconds / r.motion_wall.as_secs_f64().max(0.001),
            std::thread::available_parallelism().map_or(1, usize::from)
        ));
        out.push_str(&format!(
            "| watches the sandbox cut (410) for falling behind | {} | |\n",
            r.motion_watches_cut
        ));
        out.push_str(&format!(
            "| admitted → `app-primary` created, p50 / p99 | {} / {} | |\n",
            pct(&r.motion_primary, 50.0),
            pct(&r.motion_primary, 99.0)
        ));
        out.push_str(&format!(
            "| admitted → first weight set, p50 / p99 | {} / {} | |\n",
            pct(&r.motion_first_weight, 50.0),
            pct(&r.motion_first_weight, 99.0)
        ));
        out.push_str(&format!(
            "| controller peak RSS (VmHWM) | {:.1} MB | (the target is at rest) |\n",
            r.peak_rss_mb
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The Sluice process

/// `sluice serve` running against the sandbox as Sluice's service account.
struct SluiceProcess {
    child: Child,
    pid: u32,
    /// Its admin address (`/metrics`).
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

fn free_addr() -> Result<SocketAddr, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(stage("finding a free port"))
}

impl SluiceProcess {
    async fn start(sandbox: &Sandbox, bin: &Path) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-scale-")
            .tempdir()
            .map_err(stage("creating a temporary directory"))?;
        let ca = crate::tls::Ca::new("sluice-scale webhook CA").map_err(stage("webhook CA"))?;
        let issued = ca
            .issue(
                &["sluice.sluice-system.svc", "localhost"],
                &["127.0.0.1".parse().expect("an address")],
            )
            .map_err(stage("webhook certificate"))?;
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, &issued.cert_pem).map_err(stage("writing tls.crt"))?;
        std::fs::write(&key, &issued.key_pem).map_err(stage("writing tls.key"))?;
        super::embedded::ensure_sluice_namespace(sandbox)
            .await
            .map_err(stage("sluice-system"))?;
        let (webhook, admin) = (free_addr()?, free_addr()?);
        let log = std::fs::File::create(dir.path().join("sluice.log"))
            .map_err(stage("creating sluice.log"))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--kubeconfig")
            .arg(sandbox.api.kubeconfig_path(Identity::Sluice))
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg(format!("--webhook-addr={webhook}"))
            .arg(format!("--admin-addr={admin}"))
            .arg(format!("--prometheus-url={}", sandbox.metrics.url()))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Stage {
                stage: "starting sluice serve",
                reason: format!(
                    "{}: {e}; build it with `cargo build --release`",
                    bin.display()
                ),
            })?;
        let pid = child.id().unwrap_or_default();
        let mut p = SluiceProcess {
            child,
            pid,
            admin,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("http://{admin}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(Error::Stage {
                    stage: "starting sluice serve",
                    reason: format!("it exited ({status}); see {}", p.log().display()),
                });
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(Error::Stage {
                    stage: "starting sluice serve",
                    reason: format!("not ready after 60 s; see {}", p.log().display()),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        super::embedded::register_external(sandbox, webhook, ca.cert_pem())
            .await
            .map_err(stage("registering the webhook"))?;
        Ok(p)
    }

    fn log(&self) -> PathBuf {
        self._dir.path().join("sluice.log")
    }

    /// Seconds spent in analysis queries and their count so far, from its `/metrics`.
    async fn query_totals(&self) -> Option<(f64, f64)> {
        let text = reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        histogram_totals(&text, "sluice_prometheus_query_duration_seconds")
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.pid)
    }

    fn memory_mb(&self, key: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| parse_status_mb(&s, key))
            .unwrap_or(0.0)
    }
}

/// CPU seconds (user + system) process `pid` has used; 0 when it cannot be read.
fn cpu_seconds_of(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_cpu_ticks(&s))
        .unwrap_or(0);
    ticks as f64 / clock_ticks_per_second()
}

/// `getconf CLK_TCK`, 100 when it cannot be read (Linux' USER_HZ everywhere in practice).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------------------------
// The watch log

/// Of one Deployment: its status points, when it was first seen, and every distinct status
/// with its `lastAnalysis`.
type Seen = (Vec<Point>, f64, Vec<Sample>);

/// Every status change of every Deployment, as an admin watch received it, by
/// `namespace/name`.
#[derive(Clone)]
struct Log {
    by_key: Arc<Mutex<HashMap<String, Seen>>>,
    /// The wall clock when the run began, to put `lastAnalysis` on the run's clock.
    began: SystemTime,
}

impl Log {
    fn new(began: SystemTime) -> Log {
        Log {
            by_key: Arc::default(),
            began,
        }
    }

    fn record(&self, t: f64, d: &Deployment) {
        let key = format!(
            "{}/{}",
            d.metadata.namespace.as_deref().unwrap_or_default(),
            d.metadata.name.as_deref().unwrap_or_default()
        );
        let status = RolloutStatus::from_annotations(d.metadata.annotations.as_ref())
            .ok()
            .flatten();
        let mut by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let entry = by_key
            .entry(key)
            .or_insert_with(|| (Vec::new(), t, Vec::new()));
        let Some(status) = status else { return };
        if entry.0.last().map(|l| (l.1, l.2)) != Some((status.phase, status.weight)) {
            entry.0.push((t, status.phase, status.weight));
        }
        let sample = Sample {
            seen: t,
            phase: status.phase,
            weight: status.weight,
            decided: status
                .last_analysis
                .map(|at| match at.0.duration_since(self.began) {
                    Ok(d) => d.as_secs_f64(),
                    Err(e) => -e.duration().as_secs_f64(),
                }),
        };
        let last = entry.2.last().map(|l| (l.phase, l.weight, l.decided));
        if last != Some((sample.phase, sample.weight, sample.decided)) {
            entry.2.push(sample);
        }
    }

    fn samples(&self, key: &str) -> Vec<Sample> {
        let by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        by_key.get(key).map(|e| e.2.clone()).unwrap_or_default()
    }

    fn points(&self, key: &str) -> Vec<Point> {
        let by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        by_key.get(key).map(|e| e.0.clone()).unwrap_or_default()
    }

    fn first_seen(&self, key: &str) -> Option<f64> {
        let by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        by_key.get(key).map(|e| e.1)
    }

    /// How many of `keys` have reached a point satisfying `f`; the latest such arrival.
    fn reached(&self, keys: &[String], f: impl Fn(&Point) -> bool) -> (usize, f64) {
        let by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = 0;
        let mut last: f64 = 0.0;
        for k in keys {
            if let Some(p) = by_key.get(k).and_then(|e| e.0.iter().find(|p| f(p))) {
                n += 1;
                last = last.max(p.0);
            }
        }
        (n, last)
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// The counts that grew from `before` to `after`, by how much.
fn counts_since(
    before: &BTreeMap<String, u64>,
    after: BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .into_iter()
        .map(|(verb, n)| (verb.clone(), n - before.get(&verb).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn key((ns, name): &(String, String)) -> String {
    format!("{ns}/{name}")
}

/// Runs every stage and returns what it measured. Progress goes to stderr.
pub async fn run(opts: ScaleOptions) -> Result<Report, Error> {
    let (began, began_wall) = (Instant::now(), SystemTime::now());
    let now = move || began.elapsed().as_secs_f64();
    let sandbox = Sandbox::start(SandboxOptions {
        ready_delay: opts.ready_delay,
        metrics: MetricsBackend::Builtin,
    })
    .await
    .map_err(stage("starting the sandbox"))?;
    let sluice = SluiceProcess::start(&sandbox, &opts.sluice_bin).await?;
    eprintln!("sluice serve runs as pid {}", sluice.pid);
    let admin = sandbox
        .client(Identity::Admin)
        .await
        .map_err(stage("admin client"))?;
    let log = Log::new(began_wall);
    let watch = {
        let log = log.clone();
        let stream = watcher(
            Api::<Deployment>::all(admin.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .applied_objects()
        .for_each(move |d| {
            if let Ok(d) = d {
                log.record(now(), &d);
            }
            async {}
        });
        crate::controller::run::Task::spawn(stream)
    };

    let fleet = fleet(opts.deployments, opts.namespaces);
    let keys: Vec<String> = fleet.iter().map(key).collect();
    let mut report = Report {
        deployments: opts.deployments,
        namespaces: opts.namespaces,
        idle: opts.idle,
        ready_delay: opts.ready_delay,
        interval: opts.interval,
        watch_lifetime: opts.watch_lifetime,
        ..Report::default()
    };

    // 1. At rest.
    let namespaces: std::collections::BTreeSet<&String> = fleet.iter().map(|(ns, _)| ns).collect();
    for ns in namespaces {
        let doc = json!({"metadata": {"name": ns, "labels": {OPT_IN_LABEL: "enabled"}}});
        Api::<Namespace>::all(admin.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(doc).expect("a Namespace"),
            )
            .await
            .map_err(stage("creating the namespaces"))?;
    }
    eprintln!("creating {} Deployments…", fleet.len());
    let t0 = now();
    let create_retries = AtomicU64::new(0);
    futures::stream::iter(fleet.iter().map(Ok::<_, Error>))
        .try_for_each_concurrent(opts.concurrency, |(ns, name)| {
            let (admin, retries) = (admin.clone(), &create_retries);
            async move {
                let svc: Service =
                    serde_json::from_value(service_manifest(name)).expect("a Service");
                let services = Api::<Service>::namespaced(admin.clone(), ns);
                let post = PostParams::default();
                retrying(retries, || services.create(&post, &svc))
                    .await
                    .map_err(stage("creating a Service"))?;
                let d: Deployment =
                    serde_json::from_value(deployment_manifest(name, opts.interval))
                        .expect("a Deployment");
                let deployments = Api::<Deployment>::namespaced(admin, ns);
                retrying(retries, || deployments.create(&post, &d))
                    .await
                    .map_err(stage("creating a Deployment"))?;
                Ok(())
            }
        })
        .await?;
    report.retries = create_retries.load(Ordering::Relaxed);
    report.create_all = Duration::from_secs_f64(now() - t0);
    eprintln!("created in {:.1} s; waiting for onboarding…", now() - t0);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (n, last) = log.reached(&keys, |p| p.1 == Phase::Initialized);
        if n == keys.len() {
            report.onboard_all = Duration::from_secs_f64(last - t0);
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Stage {
                stage: "onboarding",
                reason: format!("only {n} of {} Initialized after 600 s", keys.len()),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "all onboarded in {:.1} s; settling, then {} of idleness…",
        report.onboard_all.as_secs_f64(),
        humantime::format_duration(opts.idle)
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (req0, others0, cpu0) = (
        sandbox.api.request_counts_by(Identity::Sluice),
        sandbox.api.request_counts_by(Identity::Admin),
        sluice.cpu_seconds(),
    );
    tokio::time::sleep(opts.idle).await;
    let (req1, others1, cpu1) = (
        sandbox.api.request_counts_by(Identity::Sluice),
        sandbox.api.request_counts_by(Identity::Admin),
        sluice.cpu_seconds(),
    );
    report.idle_requests = counts_since(&req0, req1);
    report.idle_others = counts_since(&others0, others1);
    report.idle_cpu_seconds = cpu1 - cpu0;
    report.rest_rss_mb = sluice.memory_mb("VmRSS");

    // 2. Reaction.
    let first = &fleet[0];
    sandbox.mesh.set_load(&first.0, &first.1, opts.rps);
    let retries = AtomicU64::new(0);
    let admitted = roll(&admin, first, began, &retries).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let primary_key = format!("{}-primary", key(first));
    while log
        .reached(std::slice::from_ref(&key(first)), |p| {
            p.0 >= admitted && p.2 > 0
        })
        .0
        == 0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if report_points_on_timeout(&log, &key(first), admitted) {
        eprintln!("the reaction rollout set no weight within 120 s");
    }
    report.reaction_primary = log
        .first_seen(&primary_key)
        .map(|t| Duration::from_secs_f64((t - admitted).max(0.0)));
    report.reaction_first_weight = log
        .points(&key(first))
        .iter()
        .find(|p| p.0 >= admitted && p.2 > 0)
        .map(|p| Duration::from_secs_f64(p.0 - admitted));

    // 3. In motion.
    if opts.rollouts > 0 {
        let set = motion_set(&fleet, opts.rollouts);
        report.rollouts = set.len();
        for (ns, name) in &set {
            sandbox.mesh.set_load(ns, name, opts.rps);
        }
        // Let the mesh's traffic reach the metrics before the first analysis.
        tokio::time::sleep(Duration::from_secs(2)).await;
        eprintln!("rolling {} Deployments at once…", set.len());
        if let Some(lifetime) = opts.watch_lifetime {
            sandbox.api.set_fault_plan(Some(FaultPlan {
                who: Identity::Sluice,
                error_share: 0.0,
                latency: Duration::ZERO,
                watch_lifetime: Some(lifetime),
            }));
        }
        let cpu0 = sluice.cpu_seconds();
        let sandbox_cpu0 = cpu_seconds_of(std::process::id());
        let cut0 = sandbox.api.watches_cut();
        let queries0 = sluice.query_totals().await;
        let requests0 = sandbox.api.request_counts_by(Identity::Sluice);
        let t0 = now();
        // `concurrency` updates in flight, as the fleet was created: 200 PATCHes at once only
        // measure how many admissions the sandbox can hold open within the webhook timeout.
        let admitted: Vec<f64> = futures::stream::iter(set.iter())
            .map(|d| roll(&admin, d, began, &retries))
            .buffered(opts.concurrency)
            .try_collect()
            .await?;
        report.motion_applied = Duration::from_secs_f64(now() - t0);
        let set_keys: Vec<String> = set.iter().map(key).collect();
        let done = |p: &Point| p.0 >= t0 && matches!(p.1, Phase::Succeeded | Phase::Failed);
        let deadline = Instant::now() + opts.interval * 30 + Duration::from_secs(120);
        while log.reached(&set_keys, done).0 < set.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (_, last) = log.reached(&set_keys, done);
        // Until the last one ended, or until now when some never did.
        let end = if log.reached(&set_keys, done).0 == set.len() {
            last
        } else {
            now()
        };
        report.motion_wall = Duration::from_secs_f64((end - t0).max(0.001));
        report.motion_cpu_seconds = sluice.cpu_seconds() - cpu0;
        report.sandbox_motion_cpu_seconds = cpu_seconds_of(std::process::id()) - sandbox_cpu0;
        report.motion_watches_cut = sandbox.api.watches_cut() - cut0;
        report.motion_requests =
            counts_since(&requests0, sandbox.api.request_counts_by(Identity::Sluice));
        eprintln!(
            "Sluice's API requests while rolling: {:?}",
            report.motion_requests
        );
        if let (Some(a), Some(b)) = (queries0, sluice.query_totals().await) {
            report.motion_queries = Some((b.0 - a.0, b.1 - a.1));
        }
        for (k, at) in set_keys.iter().zip(&admitted) {
            let points: Vec<Point> = log.points(k).into_iter().filter(|p| p.0 >= *at).collect();
            report
                .lateness
                .extend(step_lateness(&points, opts.interval));
            let samples: Vec<Sample> = log
                .samples(k)
                .into_iter()
                .filter(|s| s.seen >= *at)
                .collect();
            report.steps.extend(step_timings(&samples, opts.interval));
            if let Some(t) = log.first_seen(&format!("{k}-primary")) {
                report.motion_primary.push((t - at).max(0.0));
            }
            if let Some(p) = points.iter().find(|p| p.2 > 0) {
                report.motion_first_weight.push(p.0 - at);
            }
            let phase = points
                .last()
                .map(|p| p.1.as_str().to_string())
                .unwrap_or_else(|| "no status".into());
            *report.motion_phases.entry(phase).or_default() += 1;
        }
        for v in [
            &mut report.lateness,
            &mut report.motion_primary,
            &mut report.motion_first_weight,
        ] {
            v.sort_by(f64::total_cmp);
        }
    }
    report.retries += retries.load(Ordering::Relaxed);
    report.peak_rss_mb = sluice.memory_mb("VmHWM");
    drop(watch);
    let kept = std::env::temp_dir().join("sluice-scale-sluice.log");
    if std::fs::copy(sluice.log(), &kept).is_ok() {
        eprintln!("sluice serve's log: {}", kept.display());
    }
    drop(sluice);
    sandbox.shutdown().await;
    Ok(report)
}

/// Prints the status points `key` went through since `since` when it set no weight; whether
/// it did not.
fn report_points_on_timeout(log: &Log, key: &str, since: f64) -> bool {
    let points: Vec<Point> = log
        .points(key)
        .into_iter()
        .filter(|p| p.0 >= since)
        .collect();
    let stuck = !points.iter().any(|p| p.2 > 0);
    if stuck {
        eprintln!("{key} since its update: {points:?}");
    }
    stuck
}

/// Applies [`update_patch`] to `d` and returns when (seconds since the run began) it was
/// admitted.
/// A request refused by a server error (such as an admission webhook that timed out, failing
/// closed) is retried after a second, up to [`RETRIES`] times; `retries` counts them.
async fn roll(
    admin: &kube::Client,
    (ns, name): &(String, String),
    began: Instant,
    retries: &AtomicU64,
) -> Result<f64, Error> {
    let api = Api::<Deployment>::namespaced(admin.clone(), ns);
    let (patch, params) = (Patch::Strategic(update_patch()), PatchParams::default());
    retrying(retries, || api.patch(name, &params, &patch))
        .await
        .map_err(stage("rolling a Deployment"))?;
    Ok(began.elapsed().as_secs_f64())
}

/// How many times a create or an update of the fleet is retried after a server error.
const RETRIES: u32 = 5;

/// Whether a failed request is worth retrying: a server error (5xx), not a refusal.
pub fn retryable(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code >= 500)
}

async fn retrying<T, F, Fut>(retries: &AtomicU64, mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut left = RETRIES;
    loop {
        match call().await {
            Err(err) if left > 0 && retryable(&err) => {
                left -= 1;
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_spreads_deployments_evenly_over_the_namespaces() {
        let f = fleet(6, 3);
        assert_eq!(f[0], ("scale-00".into(), "app-0000".into()));
        assert_eq!(f[4], ("scale-01".into(), "app-0004".into()));
        let per_ns = f.iter().filter(|(ns, _)| ns == "scale-02").count();
        assert_eq!(per_ns, 2);
        assert_eq!(motion_set(&f, 2), f[1..3].to_vec());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn lateness_counts_only_scheduled_steps_against_the_previous_step_plus_the_interval() {
        use Phase::*;
        let points = [
            (0.0, Preparing, 0),
            (1.0, Progressing, 0),
            (1.5, Progressing, 10),  // the first step: not on the schedule
            (6.7, Progressing, 20),  // 0.2 s late
            (11.6, Progressing, 30), // 0.1 s early
            (16.6, Promoting, 30),
            (17.0, Succeeded, 100),
        ];
        let late = step_lateness(&points, Duration::from_secs(5));
        assert_eq!(late.len(), 2);
        assert!(
            (late[0] - 0.2).abs() < 1e-9 && (late[1] + 0.1).abs() < 1e-9,
            "{late:?}"
        );
    }

    #[test]
    fn a_restart_at_zero_is_not_a_step() {
        use Phase::*;
        let points = [
            (1.0, Progressing, 10),
            (2.0, Progressing, 0),
            (7.0, Progressing, 10),
        ];
        assert!(step_lateness(&points, Duration::from_secs(5)).is_empty());
    }

    fn sample(seen: f64, weight: u32, decided: f64) -> Sample {
        Sample {
            seen,
            phase: Phase::Progressing,
            weight,
            decided: Some(decided),
        }
    }

    #[test]
    fn a_steps_lateness_splits_into_held_intervals_late_starts_and_delivery() {
        let points = [
            sample(1.5, 10, 1.0),   // first step: the reference
            sample(6.8, 10, 6.3),   // analysed 0.3 s late, no verdict: the weight holds
            sample(12.0, 20, 11.5), // analysed 0.2 s late, advances
            sample(17.1, 30, 16.6), // 0.1 s late
        ];
        let t = step_timings(&points, Duration::from_secs(5));
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t[0].extra_analyses, 1);
        assert!((t[0].late - 5.5).abs() < 1e-9, "{t:?}");
        assert!((t[0].start_late - 0.5).abs() < 1e-9, "{t:?}");
        assert!((t[0].delivery - 0.5).abs() < 1e-9 && (t[0].prev_delivery - 0.5).abs() < 1e-9);
        assert_eq!(t[1].extra_analyses, 0);
        assert!((t[1].start_late - 0.1).abs() < 1e-9, "{t:?}");
        for s in &t {
            let parts =
                f64::from(s.extra_analyses) * 5.0 + s.start_late + s.delivery - s.prev_delivery;
            assert!((s.late - parts).abs() < 1e-9, "{s:?}");
        }
        let lateness = step_lateness(
            &points.map(|s| (s.seen, s.phase, s.weight)),
            Duration::from_secs(5),
        );
        assert_eq!(lateness.len(), t.len());
    }

    #[test]
    fn only_server_errors_are_retried() {
        let err = |code| {
            kube::Error::Api(
                kube::core::Status::failure("failed calling webhook", "InternalError")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(retryable(&err(500)));
        assert!(retryable(&err(503)));
        assert!(!retryable(&err(409)));
        assert!(!retryable(&err(403)));
    }

    #[test]
    fn histogram_totals_are_read_from_the_exposition() {
        let text = "# HELP q x\nq_bucket{le=\"0.1\"} 3\nq_sum 0.25\nq_count 4\nqq_sum 9\n";
        assert_eq!(histogram_totals(text, "q"), Some((0.25, 4.0)));
        assert_eq!(histogram_totals(text, "absent"), None);
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name_even_with_spaces() {
        let stat = "4242 (sluice serve) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn memory_lines_are_read_in_megabytes() {
        let status = "Name:\tsluice\nVmHWM:\t  204800 kB\nVmRSS:\t   51200 kB\n";
        assert_eq!(parse_status_mb(status, "VmRSS"), Some(50.0));
        assert_eq!(parse_status_mb(status, "VmHWM"), Some(200.0));
        assert_eq!(parse_status_mb(status, "VmSwap"), None);
    }

    #[test]
    fn the_report_shows_each_figure_against_its_target() {
        let r = Report {
            deployments: 5000,
            namespaces: 50,
            idle: Duration::from_secs(60),
            idle_requests: BTreeMap::from([
                ("update leases".to_string(), 4),
                ("get deployments".to_string(), 50),
            ]),
            rollouts: 2,
            lateness: vec![0.1, 0.3],
            ..Report::default()
        };
        let md = render(&r);
        assert!(
            md.contains("| 54.0/min (get deployments 50, update leases 4) |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| … of which not its leader-election Lease, per Deployment | 0.0100/min | 0 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("0.100 s / 0.300 s / 0.300 s | p99 < 1 s"),
            "{md}"
        );
    }
}
