//! Where the end-to-end rollouts run: the in-process sandbox (the default), or a real cluster
//! when `SLUICE_E2E_KUBECONFIG` is set (see `tests/README.md`). The scenarios only use what
//! this module offers, so both run the same tests.
//!
//! ```text
//! scenario ─► Harness ─┬─ Sandbox: Sandbox + Sluice, mesh load/traffic, write fences
//!                      │            (Sluice in this process, or `sluice serve` processes)
//!                      └─ Cluster: kubeconfig, installed Sluice, load generator, Prometheus
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use sluice::controller::status::{Phase, RolloutStatus};
pub use sluice::policy::values::RouterKind;
use sluice::routing::nginx;
use sluice::routing::smi::weight_milli;
use sluice::sandbox::apiserver::Identity;
use sluice::sandbox::apiserver::fault::FaultPlan;
use sluice::sandbox::embedded::Embedded;
use sluice::sandbox::{MetricsBackend, Sandbox, SandboxOptions};
use tokio::sync::Mutex;

use crate::cluster::Cluster;
use crate::process::{Process, Setup};

pub const APP: &str = "podinfo";
/// Settings every scenario starts from; `interval` comes from [`Harness::interval`].
pub const THRESHOLD: u32 = 2;
pub const STEP: u32 = 20;
pub const MAX_WEIGHT: u32 = 60;

/// The versions the scenarios roll out. Each backend turns them into a pod template.
#[derive(Clone, Copy, Debug)]
pub enum Version {
    /// The version the Deployment is created with.
    Stable,
    /// A healthy new version; the argument tells healthy versions apart.
    Good(u8),
    /// Answers 10% of requests with errors.
    Bad,
    /// Never becomes ready.
    Broken,
}

/// Requests served in a span of time, by the Deployment whose pods answered.
#[derive(Debug)]
pub struct TrafficWindow {
    pub from: SystemTime,
    pub to: SystemTime,
    pub by_deployment: BTreeMap<String, u64>,
    /// The same requests by the answering pod's image, where the backend knows it (the
    /// sandbox does; Linkerd's metrics on a cluster do not).
    pub by_image: Option<BTreeMap<String, u64>>,
}

/// One scenario's cluster, namespace and Sluice.
pub struct Harness {
    pub ns: String,
    /// An administrator's client.
    pub client: kube::Client,
    pub api: Api<Deployment>,
    /// How often the observer samples: every 50 ms for one app; less often when many share
    /// the machine.
    pub sample_every: Duration,
    /// How long a lower weight may take to reach the mesh after Sluice decided it, when that
    /// is more than the traffic slack: a failed route write is retried after a backoff, so a
    /// scenario that makes the API server fail allows more (invariant 1 in `observer.rs`).
    pub route_lag: Duration,
    /// Extra time a rollout may take to end beyond the observer's usual allowance, for
    /// scenarios that keep Sluice down part of the time (the crash sweep).
    pub downtime: Duration,
    /// The router the app is onboarded with (`sluice.dev/router`).
    pub router: RouterKind,
    backend: Backend,
}

enum Backend {
    /// Shared by the scenario's apps when it runs several ([`Harness::start_many`]).
    Sandbox(Arc<InProcess>),
    Cluster(Box<Cluster>),
}

/// How Sluice runs against the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// In the test's process ([`Embedded`]): kills are exact, at a chosen status write.
    Embedded,
    /// As `sluice serve` processes of the built binary (`process.rs`): kills are SIGKILL.
    Process,
}

/// One running Sluice replica.
enum Replica {
    Embedded(Box<Embedded>),
    Process(Box<Process>),
}

impl Replica {
    async fn start(p: &InProcess) -> Replica {
        match &p.processes {
            None => Replica::Embedded(Box::new(
                Embedded::start(&p.sandbox).await.expect("Sluice starts"),
            )),
            Some(setup) => Replica::Process(Box::new(Process::start(&p.sandbox, setup).await)),
        }
    }

    async fn kill(self) {
        match self {
            Replica::Embedded(e) => e.kill(),
            Replica::Process(p) => p.kill().await,
        }
    }

    async fn shutdown(self) {
        match self {
            Replica::Embedded(e) => e.shutdown().await,
            Replica::Process(p) => p.terminate().await,
        }
    }
}

/// The sandbox and the Sluice running in it.
struct InProcess {
    sandbox: Sandbox,
    /// Set when Sluice runs as processes ([`Run::Process`]).
    processes: Option<Setup>,
    sluice: Mutex<Option<Replica>>,
    /// A second replica, started by [`Harness::start_standby`].
    standby: Mutex<Option<Box<Embedded>>>,
}

impl Harness {
    /// A cluster with Sluice serving, the app onboarded at rest with `router`, and live traffic.
    /// Its route is the one `router` writes, at rest.
    pub async fn start(router: RouterKind) -> Harness {
        let h = Self::start_many(1, router).await.pop().expect("one app");
        // The status is written before the route, so the route may come a moment later.
        let deadline = Instant::now() + h.intervals(2);
        loop {
            let route = h.route_weights().await;
            if route == Some((0, 100)) {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "{}/{APP} has no {router} route at rest: {route:?}",
                h.ns
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `n` apps, each in its own namespace and routed by `router`, with one Sluice serving
    /// them all.
    pub async fn start_many(n: usize, router: RouterKind) -> Vec<Harness> {
        Self::start_many_as(n, router, Run::Embedded).await
    }

    /// [`start_many`](Self::start_many), with Sluice run as `run` says (on a cluster, the
    /// installed Sluice whatever `run` says).
    pub async fn start_many_as(n: usize, router: RouterKind, run: Run) -> Vec<Harness> {
        sluice::tls::install_crypto_provider();
        sluice::telemetry::init();
        let mut apps = Vec::with_capacity(n);
        let shared = if Cluster::enabled() {
            None
        } else {
            let sandbox = Sandbox::start(SandboxOptions {
                ready_delay: Duration::from_millis(500),
                metrics: MetricsBackend::Auto,
            })
            .await
            .expect("the sandbox starts");
            let mut p = InProcess {
                sandbox,
                processes: (run == Run::Process).then(Setup::new),
                sluice: Mutex::new(None),
                standby: Mutex::new(None),
            };
            p.sluice = Mutex::new(Some(Replica::start(&p).await));
            Some(Arc::new(p))
        };
        for i in 0..n {
            let (client, ns, backend) = match &shared {
                Some(p) => (
                    p.sandbox.client(Identity::Admin).await.unwrap(),
                    if n == 1 {
                        "shop".to_string()
                    } else {
                        format!("shop-{i}")
                    },
                    Backend::Sandbox(p.clone()),
                ),
                None => {
                    let cluster = Cluster::from_env().await.expect("a cluster");
                    (
                        cluster.client.clone(),
                        cluster.namespace.clone(),
                        Backend::Cluster(Box::new(cluster)),
                    )
                }
            };
            apps.push(Harness {
                api: Api::namespaced(client.clone(), &ns),
                ns,
                client,
                sample_every: Duration::from_millis(50 * n as u64).min(Duration::from_millis(500)),
                route_lag: Duration::ZERO,
                downtime: Duration::ZERO,
                router,
                backend,
            });
        }
        futures::future::join_all(apps.iter().map(Harness::onboard)).await;
        apps
    }

    /// The sandbox the scenario runs on; `None` on a cluster.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        match &self.backend {
            Backend::Sandbox(p) => Some(&p.sandbox),
            Backend::Cluster(_) => None,
        }
    }

    /// Whether this is a real cluster (slower clocks, coarser traffic figures).
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    /// The analysis interval the scenarios use: 3 s in the sandbox; on a cluster long enough
    /// for Prometheus to have scraped each window a few times.
    pub fn interval(&self) -> Duration {
        match &self.backend {
            Backend::Sandbox(_) => Duration::from_secs(3),
            Backend::Cluster(c) => c.interval,
        }
    }

    /// How long anything the scenarios wait for may take, as a number of intervals.
    pub fn intervals(&self, n: u32) -> Duration {
        self.interval() * n + Duration::from_secs(10)
    }

    /// How late traffic figures may reflect a route change: the mesh's own second in the
    /// sandbox; a scrape interval plus a second on a cluster.
    pub fn traffic_slack(&self) -> Duration {
        match &self.backend {
            Backend::Sandbox(_) => Duration::from_secs(1),
            Backend::Cluster(c) => c.scrape_interval + Duration::from_secs(1),
        }
    }

    async fn onboard(&self) {
        let mut ns =
            json!({"metadata": {"name": self.ns, "labels": {"sluice.dev/canary": "enabled"}}});
        if self.is_cluster() {
            ns["metadata"]["annotations"] = json!({"linkerd.io/inject": "enabled"});
        }
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &serde_json::from_value(ns).unwrap())
            .await
            .unwrap_or_else(|e| panic!("creating namespace {}: {e}", self.ns));
        let svc = json!({"metadata": {"name": APP}, "spec": {"selector": {"app": APP}, "ports": [{"name": "http", "port": 9898}]}});
        Api::<Service>::namespaced(self.client.clone(), &self.ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(svc).unwrap(),
            )
            .await
            .unwrap();
        if self.router == RouterKind::Nginx {
            // The app's own Ingress (`sluice.dev/ingress` defaults to the Deployment's name).
            let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": APP},
                "spec": {"ingressClassName": "nginx", "rules": [{"host": format!("{APP}.example.com"),
                    "http": {"paths": [{"path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": APP, "port": {"number": 9898}}}}]}}]}});
            Api::<DynamicObject>::namespaced_with(
                self.client.clone(),
                &self.ns,
                &nginx::api_resource(),
            )
            .create(
                &PostParams::default(),
                &serde_json::from_value(ingress).unwrap(),
            )
            .await
            .unwrap();
        }
        let interval = humantime::format_duration(self.interval()).to_string();
        let mut d = json!({
            "metadata": {"name": APP, "labels": {"app": APP}, "annotations": {
                "sluice.dev/interval": interval,
                "sluice.dev/step-weight": STEP.to_string(),
                "sluice.dev/max-weight": MAX_WEIGHT.to_string(),
                "sluice.dev/threshold": THRESHOLD.to_string(),
                "sluice.dev/router": self.router.as_str(),
                "sluice.dev/min-requests": "5"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": APP}},
                "template": {"metadata": {"labels": {"app": APP}}, "spec": {"containers": [{"name": "podinfod"}]}}}
        });
        json_merge(
            &mut d["spec"],
            &self.template_patch(Version::Stable)["spec"],
        );
        self.api
            .create(&PostParams::default(), &serde_json::from_value(d).unwrap())
            .await
            .unwrap();
        self.set_load(50.0).await;
        let deadline = Instant::now() + self.intervals(10);
        loop {
            let d = self.api.get(APP).await.unwrap();
            if status(&d).is_some_and(|s| s.phase == Phase::Initialized)
                && d.status.as_ref().and_then(|s| s.available_replicas) == Some(2)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}/{APP} was not onboarded: {:?}",
                self.ns,
                d.metadata.annotations
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The strategic-merge patch that makes `app` run `version` (a `spec.template` change).
    pub fn template_patch(&self, version: Version) -> Value {
        let container = match &self.backend {
            Backend::Sandbox(_) => {
                let tag = match version {
                    Version::Stable => "6.0.0".to_string(),
                    Version::Good(n) => format!("6.0.{n}"),
                    Version::Bad => "6.0.2-bad".to_string(),
                    Version::Broken => "6.0.3-broken".to_string(),
                };
                json!({"name": "podinfod", "image": format!("podinfo:{tag}")})
            }
            Backend::Cluster(c) => c.container(version),
        };
        json!({"spec": {"template": {"spec": {"containers": [container]}}}})
    }

    /// Whether `d`'s first container runs `version` (its image and arguments).
    pub fn runs(&self, d: &Deployment, version: Version) -> bool {
        let want = &self.template_patch(version)["spec"]["template"]["spec"]["containers"][0];
        let have = serde_json::to_value(
            &d.spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0],
        )
        .unwrap();
        ["image", "args"].iter().all(|k| have.get(k) == want.get(k))
    }

    /// Rolls `app` to `version`, as `kubectl set image` does, and returns what was stored.
    pub async fn roll_to(&self, version: Version) -> Deployment {
        self.patch(self.template_patch(version)).await
    }

    /// A strategic-merge patch of `app`, which must be admitted.
    pub async fn patch(&self, patch: Value) -> Deployment {
        self.api
            .patch(APP, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap_or_else(|e| panic!("patching {}/{APP}: {e}", self.ns))
    }

    /// Sends `rps` requests per second to the apex Service (with `nginx`, into the app's
    /// Ingress, as clients outside the mesh do).
    pub async fn set_load(&self, rps: f64) {
        match &self.backend {
            Backend::Sandbox(p) if self.router == RouterKind::Nginx => {
                p.sandbox.mesh.set_ingress_load(&self.ns, APP, rps)
            }
            Backend::Sandbox(p) => p.sandbox.mesh.set_load(&self.ns, APP, rps),
            Backend::Cluster(c) => c.set_load(rps).await,
        }
    }

    /// The traffic the app's pods answered since `from`.
    pub async fn traffic(&self, from: SystemTime) -> Vec<TrafficWindow> {
        match &self.backend {
            Backend::Sandbox(p) => p
                .sandbox
                .mesh
                .traffic(&self.ns, APP)
                .into_iter()
                .map(|s| {
                    let start = UNIX_EPOCH + Duration::from_secs(s.unix_second);
                    TrafficWindow {
                        from: start,
                        to: start + Duration::from_secs(1),
                        by_deployment: s.by_deployment,
                        by_image: Some(s.by_image),
                    }
                })
                .filter(|w| w.from >= from)
                .collect(),
            Backend::Cluster(c) => c.traffic(from).await,
        }
    }

    /// Percent of the route's traffic to `app-primary` and to `app-canary`, read from the
    /// route the app's router writes (independently of Sluice's own parsers): the
    /// TrafficSplit's backends, the HTTPRoute's first rule (weights default to 1), or the
    /// canary Ingress's `canary-weight` (out of 100).
    /// Calls `each` with every status Sluice writes on the app, as a watch sees them (polling
    /// could miss a short-lived one), until it returns `Break` or `within` passes.
    pub async fn each_status(
        &self,
        within: Duration,
        mut each: impl FnMut(&RolloutStatus) -> std::ops::ControlFlow<()>,
    ) {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let deadline = tokio::time::Instant::now() + within;
        let events = watcher(self.api.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects();
        let mut events = std::pin::pin!(events);
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
            let written = event
                .ok()
                .filter(|d| d.metadata.name.as_deref() == Some(APP))
                .as_ref()
                .and_then(status);
            if let Some(s) = written
                && each(&s).is_break()
            {
                return;
            }
        }
    }

    pub async fn route_weights(&self) -> Option<(u32, u32)> {
        if self.router == RouterKind::Nginx {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &self.ns, &nginx::api_resource());
            let canary = api.get_opt(&format!("{APP}-canary")).await.ok()??;
            let annotations = canary.metadata.annotations?;
            if annotations.get(nginx::CANARY).map(String::as_str) != Some("true") {
                return None;
            }
            let c: u32 = annotations.get(nginx::CANARY_WEIGHT)?.parse().ok()?;
            return (c <= 100).then(|| (100 - c, c));
        }
        let (group, versions, kind, plural) = match self.router {
            RouterKind::GatewayApi => (
                "gateway.networking.k8s.io",
                &["v1"][..],
                "HTTPRoute",
                "httproutes",
            ),
            _ => (
                "split.smi-spec.io",
                &["v1alpha2", "v1alpha1"][..],
                "TrafficSplit",
                "trafficsplits",
            ),
        };
        for version in versions {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let api: Api<DynamicObject> = Api::namespaced_with(
                self.client.clone(),
                &self.ns,
                &ApiResource::from_gvk_with_plural(&gvk, plural),
            );
            let Ok(Some(route)) = api.get_opt(APP).await else {
                continue;
            };
            let spec = &route.data["spec"];
            let backends: Vec<(&str, u128)> = match self.router {
                RouterKind::GatewayApi => spec["rules"][0]["backendRefs"]
                    .as_array()?
                    .iter()
                    .map(|b| {
                        let w = b.get("weight").map_or(Some(1), Value::as_u64)?;
                        Some((b["name"].as_str()?, u128::from(w)))
                    })
                    .collect::<Option<_>>()?,
                _ => spec["backends"]
                    .as_array()?
                    .iter()
                    .map(|b| Some((b["service"].as_str()?, weight_milli(&b["weight"]).ok()?)))
                    .collect::<Option<_>>()?,
            };
            let weight_of = |service: String| -> u128 {
                backends
                    .iter()
                    .filter(|(s, _)| *s == service)
                    .map(|(_, w)| w)
                    .sum()
            };
            let primary = weight_of(format!("{APP}-primary"));
            let canary = weight_of(format!("{APP}-canary"));
            let total = primary + canary;
            return (total > 0).then(|| {
                let c = (canary * 100 / total) as u32;
                (100 - c, c)
            });
        }
        None
    }

    /// Stops Sluice (webhook and controller) gracefully.
    pub async fn stop_sluice(&self) {
        match &self.backend {
            Backend::Sandbox(p) => {
                if let Some(s) = p.sluice.lock().await.take() {
                    s.shutdown().await;
                }
            }
            Backend::Cluster(c) => c.stop_sluice().await,
        }
    }

    /// Starts Sluice again after [`stop_sluice`](Self::stop_sluice) or
    /// [`arm_kill`](Self::arm_kill).
    pub async fn start_sluice(&self) {
        match &self.backend {
            Backend::Sandbox(p) => {
                let mut slot = p.sluice.lock().await;
                assert!(slot.is_none(), "Sluice is already running");
                *slot = Some(Replica::start(p).await);
            }
            Backend::Cluster(c) => c.start_sluice().await,
        }
    }

    /// Waits until the running Sluice holds the Lease and runs the controller (after a
    /// restart it first waits out the dead replica's Lease). Returns at once on a cluster.
    pub async fn wait_until_sluice_leads(&self) {
        let Backend::Sandbox(p) = &self.backend else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leads = match &*p.sluice.lock().await {
                Some(Replica::Embedded(e)) => e
                    .sluice()
                    .metrics()
                    .encode()
                    .lines()
                    .any(|l| l == "sluice_leader 1"),
                Some(Replica::Process(process)) => {
                    let setup = p.processes.as_ref().expect("processes have a setup");
                    process.leads(setup).await
                }
                None => false,
            };
            if leads {
                return;
            }
            assert!(Instant::now() < deadline, "Sluice did not lead within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills Sluice at once, wherever it is (SIGKILL for a process); restart it with
    /// [`start_sluice`](Self::start_sluice). On a cluster, kills Sluice's pods.
    pub async fn kill_sluice(&self) {
        match &self.backend {
            Backend::Sandbox(p) => {
                let running = p.sluice.lock().await.take();
                running.expect("Sluice runs").kill().await;
            }
            Backend::Cluster(c) => c.kill_sluice().await,
        }
    }

    /// Arms a kill of Sluice right after it writes a status of `app` that satisfies `when`;
    /// [`Kill::done`] waits for it. Arm before the change that leads there.
    ///
    /// In the sandbox a write fence makes this exact, even for a phase that lasts a single
    /// reconcile (`Promoting`): Sluice's writes are refused from that one on, then the process
    /// is killed. On a cluster a poller sees the status and kills Sluice's pods; a status that
    /// lasts less than the poll may be missed, and the wait then times out.
    pub fn arm_kill(
        &self,
        what: &str,
        when: impl Fn(&RolloutStatus) -> bool + Send + Sync + 'static,
    ) -> Kill<'_> {
        let when: Arc<dyn Fn(&RolloutStatus) -> bool + Send + Sync> = Arc::new(when);
        if let Backend::Sandbox(p) = &self.backend {
            let (ns, when) = (self.ns.clone(), when.clone());
            p.sandbox.api.fence_writes(Identity::Sluice, move |obj| {
                obj["kind"] == "Deployment"
                    && obj["metadata"]["namespace"] == ns.as_str()
                    && obj["metadata"]["name"] == APP
                    && status_of(obj).is_some_and(|s| when(&s))
            });
        }
        Kill {
            h: self,
            what: what.to_string(),
            when,
        }
    }

    /// Starts a second replica of Sluice beside the first, as `deploy/` runs two; `false` on
    /// a cluster, where the installed Deployment decides the replicas.
    pub async fn start_standby(&self) -> bool {
        match &self.backend {
            Backend::Sandbox(p) => {
                let standby = Embedded::start(&p.sandbox).await.expect("a standby starts");
                *p.standby.lock().await = Some(Box::new(standby));
                true
            }
            Backend::Cluster(_) => false,
        }
    }

    /// Whether the standby replica leads (runs the controller), by its own metrics.
    pub async fn standby_leads(&self) -> bool {
        match &self.backend {
            Backend::Sandbox(p) => p.standby.lock().await.as_ref().is_some_and(|s| {
                s.sluice()
                    .metrics()
                    .encode()
                    .lines()
                    .any(|l| l == "sluice_leader 1")
            }),
            Backend::Cluster(_) => false,
        }
    }

    /// Makes the sandbox's API server unreliable for Sluice ([`FaultPlan`]); `false` on a
    /// cluster, whose API server the tests cannot make fail.
    pub fn set_api_faults(&self, plan: Option<FaultPlan>) -> bool {
        match &self.backend {
            Backend::Sandbox(p) => {
                p.sandbox.api.set_fault_plan(plan);
                true
            }
            Backend::Cluster(_) => false,
        }
    }

    /// Deletes (`false`) or creates again (`true`) the CustomResourceDefinition of the route
    /// the app's router writes, as `kubectl delete crd httproutes.gateway.networking.k8s.io`
    /// does; `false` on a cluster (its CRDs are shared by everything on it) and for `nginx`
    /// (Ingresses are built in).
    pub fn set_route_crd(&self, present: bool) -> bool {
        let (group, plural) = match self.router {
            RouterKind::GatewayApi => ("gateway.networking.k8s.io", "httproutes"),
            RouterKind::Smi => ("split.smi-spec.io", "trafficsplits"),
            RouterKind::Nginx => return false,
        };
        match &self.backend {
            Backend::Sandbox(p) if present => p.sandbox.api.create_crd(group, plural),
            Backend::Sandbox(p) => p.sandbox.api.delete_crd(group, plural),
            Backend::Cluster(_) => false,
        }
    }

    /// Requests Sluice made to the API server so far, by `verb resource` (sandbox only: empty
    /// on a cluster).
    pub fn sluice_requests(&self) -> BTreeMap<String, u64> {
        match &self.backend {
            Backend::Sandbox(p) => p.sandbox.api.request_counts_by(Identity::Sluice),
            Backend::Cluster(_) => BTreeMap::new(),
        }
    }

    /// Errors the fault plan injected so far (0 on a cluster).
    pub fn api_faults_injected(&self) -> u64 {
        match &self.backend {
            Backend::Sandbox(p) => p.sandbox.api.faults_injected(),
            Backend::Cluster(_) => 0,
        }
    }

    /// Stops everything and removes what the scenario created.
    pub async fn finish(self) {
        match self.backend {
            Backend::Sandbox(p) => {
                // The last app of the scenario stops the sandbox.
                if let Ok(p) = Arc::try_unwrap(p) {
                    if let Some(s) = p.sluice.into_inner() {
                        s.shutdown().await;
                    }
                    if let Some(s) = p.standby.into_inner() {
                        s.shutdown().await;
                    }
                    p.sandbox.shutdown().await;
                }
            }
            Backend::Cluster(c) => c.finish().await,
        }
    }
}

/// A kill of Sluice armed by [`Harness::arm_kill`].
pub struct Kill<'a> {
    h: &'a Harness,
    what: String,
    when: Arc<dyn Fn(&RolloutStatus) -> bool + Send + Sync>,
}

impl Kill<'_> {
    /// Waits until Sluice has been killed and returns the status it left.
    pub async fn done(self) -> RolloutStatus {
        let (h, what) = (self.h, &self.what);
        let deadline = Instant::now() + h.intervals(12);
        match &h.backend {
            Backend::Sandbox(p) => {
                while !p.sandbox.api.fence_tripped() {
                    assert!(
                        Instant::now() < deadline,
                        "Sluice never wrote a status where {what}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let running = p.sluice.lock().await.take();
                running.expect("Sluice runs").kill().await;
                p.sandbox.api.lift_fence();
            }
            Backend::Cluster(c) => loop {
                let d = h.api.get(APP).await.unwrap();
                if status(&d).is_some_and(|s| (self.when)(&s)) {
                    c.kill_sluice().await;
                    break;
                }
                assert!(Instant::now() < deadline, "never saw a status where {what}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            },
        }
        status(&h.api.get(APP).await.unwrap()).expect("a status")
    }
}

/// The rollout status recorded on `d`.
pub fn status(d: &Deployment) -> Option<RolloutStatus> {
    RolloutStatus::from_annotations(d.metadata.annotations.as_ref()).unwrap()
}

fn status_of(obj: &Value) -> Option<RolloutStatus> {
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(obj["metadata"]["annotations"].clone()).ok()?;
    RolloutStatus::from_annotations(Some(&annotations)).ok()?
}

/// RFC 7386 merge of `patch` into `into`.
fn json_merge(into: &mut Value, patch: &Value) {
    json_patch::merge(into, patch);
}
