//! Mesh simulator: sends a configured request rate to apex Services (or into Ingresses), splits
//! it by the stored TrafficSplit or HTTPRoute weights (or ingress-nginx's canary annotations)
//! over the READY simulated pods, and exports what the "proxies" counted in Linkerd's metric
//! format on a plain-HTTP `/metrics`.
//!
//! ```text
//! every tick:  load(ns, apex | ingress) × elapsed ──► requests ──► class (by share)
//!                 routing::RouteTable::resolve (apex) | resolve_ingress (ingress)
//!                   ──► backend Service (smooth weighted RR)
//!                 selector ⊆ labels, ready pods from the PodTable ──► pod (round robin)
//!                 profile of the pod's image ──► success/failure (accumulator), latency (log-normal)
//!                 ──► Ledger: /metrics, per-second traffic, counter history (CounterSource)
//! ```
//!
//! It reads the cluster only through a `kube::Client`: reflectors on Services, TrafficSplits
//! (v1alpha2 if served, else v1alpha1), Linkerd ServiceProfiles (`linkerd.io/v1alpha2`),
//! HTTPRoutes (`gateway.networking.k8s.io/v1`) and Ingresses (`networking.k8s.io/v1`). A
//! routing API that is not served when the simulator starts counts as "no routes of that
//! kind" for the simulator's life. Ticks begin once every reflector has listed, so no request
//! is routed on an empty cache.
//!
//! Where it knowingly differs from a meshed cluster (see also [`routing`] and [`ledger`]):
//! - Requests are abstract: no connections, no retries, no timeouts; a failure is a 500.
//! - Error rates are applied by a deterministic accumulator per pod, so a pod of a version
//!   with `error_rate` 0.01 fails exactly one request in every hundred it answers.
//! - Latency is drawn from a log-normal fitted to the profile's p50 and p99 with a seeded
//!   generator: the same seed and the same request order give the same samples.
//! - Traffic that enters through Ingress `name` is counted (in [`MeshSimulator::traffic`]) under
//!   `name`, as traffic to an apex Service is under the Service's name; the pods' Linkerd
//!   metrics are the same whichever way a request came.

pub mod ingress;
pub mod ledger;
pub mod routing;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinHandle;

use crate::sandbox::prometheus::{CounterSource, Counters};
use crate::sandbox::workload::{PodTable, SimPod};
use ledger::{Ledger, Response};
use routing::{Decision, Headers, RouteTable, ServiceInfo, Swrr};

/// How one version (pod image) answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Fraction of requests answered with a 500, 0.0..=1.0.
    pub error_rate: f64,
    /// Median latency, ms.
    pub latency_p50_ms: f64,
    /// 99th-percentile latency, ms.
    pub latency_p99_ms: f64,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            error_rate: 0.0,
            latency_p50_ms: 20.0,
            latency_p99_ms: 50.0,
        }
    }
}

/// Settings of the mesh simulator.
#[derive(Clone, Debug)]
pub struct MeshOptions {
    /// How often requests are sent (default 100ms).
    pub tick: Duration,
    /// Seed of the latency sampler.
    pub seed: u64,
}

impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            tick: Duration::from_millis(100),
            seed: 1,
        }
    }
}

/// A kind of request to an apex Service, sent in proportion to `share`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestClass {
    /// A label for the scenario's own use; the requests of a named class are also counted
    /// under it ([`TrafficSecond::by_class`]).
    pub name: String,
    /// Relative share of the Service's requests.
    pub share: f64,
    /// Headers every request of the class carries (names are case-insensitive).
    pub headers: BTreeMap<String, String>,
    /// Sent in a `cookie` header, as `name=value` pairs joined by `; `.
    pub cookies: BTreeMap<String, String>,
}

impl RequestClass {
    /// The request's headers with lower-case names and the cookies folded into `cookie`.
    fn headers(&self) -> Headers {
        let mut headers: Headers = self
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let jar = jar.join("; ");
            headers
                .entry("cookie".into())
                .and_modify(|c| *c = format!("{c}; {jar}"))
                .or_insert(jar);
        }
        headers
    }
}

/// Requests one apex Service sent in one wall-clock second, by receiving Deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficSecond {
    /// Seconds since the Unix epoch.
    pub unix_second: u64,
    /// Requests answered by pods of each Deployment (dropped requests are not counted).
    pub by_deployment: BTreeMap<String, u64>,
    /// The same requests by the image the answering pod runs: the version, whichever
    /// Deployment runs it (the user's Deployment runs the stable version until it is un-paused).
    pub by_image: BTreeMap<String, u64>,
    /// The same requests of each named [`RequestClass`], by image: which version the requests
    /// carrying given headers reached (A/B testing).
    pub by_class: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Why the mesh simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mesh simulator could not listen for /metrics on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error(
        "mesh simulator could not ask the API server whether {group_version} is served: {source}; check that the sandbox API server is running"
    )]
    Discovery {
        group_version: String,
        #[source]
        source: kube::Error,
    },
}

/// z of the 99th percentile of the standard normal distribution.
const Z_99: f64 = 2.326_347_874_040_841;

/// A latency in ms from a log-normal with median `p50` and 99th percentile `p99`.
pub fn sample_latency(profile: &Profile, rng: &mut fastrand::Rng) -> f64 {
    let p50 = profile.latency_p50_ms.max(1e-3);
    let p99 = profile.latency_p99_ms.max(p50);
    let mu = p50.ln();
    let sigma = (p99.ln() - mu) / Z_99;
    // Box–Muller; 1 - u keeps the logarithm finite.
    let (u1, u2) = (1.0 - rng.f64(), rng.f64());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (mu + sigma * z).exp()
}

type Key = (String, String);

/// Where a load enters: an apex Service, or an Ingress.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    Service(String),
    Ingress(String),
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Service(n) | Entry::Ingress(n) => n,
        }
    }
}

/// The requests configured for one apex Service or Ingress.
#[derive(Default)]
struct Load {
    rps: f64,
    carry: f64,
    classes: Vec<RequestClass>,
    class_rr: Swrr,
}

/// Pods and endpoints looked up once per tick.
#[derive(Default)]
struct TickCache {
    pods: BTreeMap<String, Vec<SimPod>>,
    endpoints: BTreeMap<Key, Vec<SimPod>>,
}

impl TickCache {
    fn pods(&mut self, table: &PodTable, namespace: &str) -> &[SimPod] {
        self.pods
            .entry(namespace.to_string())
            .or_insert_with(|| table.pods(namespace))
    }

    /// The READY pods Service `key` selects (labels ⊇ selector).
    fn endpoints(&mut self, routes: &RouteTable, table: &PodTable, key: &Key) -> &[SimPod] {
        if !self.endpoints.contains_key(key) {
            let selected = match routes.selector(&key.0, &key.1) {
                Some(selector) => self
                    .pods(table, &key.0)
                    .iter()
                    .filter(|p| p.ready && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            self.endpoints.insert(key.clone(), selected);
        }
        self.endpoints
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// The simulation itself, independent of any I/O.
struct Mesh {
    loads: BTreeMap<(String, Entry), Load>,
    profiles: BTreeMap<String, Profile>,
    route_rr: BTreeMap<String, Swrr>,
    pod_rr: BTreeMap<Key, u64>,
    error_acc: BTreeMap<(String, String, String), f64>,
    rng: fastrand::Rng,
    ledger: Ledger,
}

impl Mesh {
    fn new(seed: u64) -> Mesh {
        Mesh {
            loads: BTreeMap::new(),
            profiles: BTreeMap::new(),
            route_rr: BTreeMap::new(),
            pod_rr: BTreeMap::new(),
            error_acc: BTreeMap::new(),
            rng: fastrand::Rng::with_seed(seed),
            ledger: Ledger::default(),
        }
    }

    fn load_mut(&mut self, namespace: &str, entry: Entry) -> &mut Load {
        self.loads
            .entry((namespace.to_string(), entry))
            .or_default()
    }

    fn set_load(&mut self, namespace: &str, service: &str, rps: f64) {
        self.set_entry_load(namespace, Entry::Service(service.to_string()), rps);
    }

    fn set_ingress_load(&mut self, namespace: &str, ingress: &str, rps: f64) {
        self.set_entry_load(namespace, Entry::Ingress(ingress.to_string()), rps);
    }

    fn set_entry_load(&mut self, namespace: &str, entry: Entry, rps: f64) {
        let load = self.load_mut(namespace, entry);
        if rps > 0.0 && rps.is_finite() {
            load.rps = rps;
        } else {
            load.rps = 0.0;
            load.carry = 0.0;
        }
    }

    fn set_classes(&mut self, namespace: &str, entry: Entry, classes: Vec<RequestClass>) {
        let load = self.load_mut(namespace, entry);
        load.classes = classes;
        load.class_rr = Swrr::default();
    }

    /// Sends `elapsed` worth of every load at time `now`.
    fn tick(&mut self, routes: &RouteTable, pods: &PodTable, elapsed: Duration, now: SystemTime) {
        let mut cache = TickCache::default();
        let keys: Vec<(String, Entry)> = self.loads.keys().cloned().collect();
        for (ns, entry) in keys {
            let Some(load) = self.loads.get_mut(&(ns.clone(), entry.clone())) else {
                continue;
            };
            let due = load.rps * elapsed.as_secs_f64() + load.carry;
            let n = due.floor();
            load.carry = due - n;
            let requests: Vec<(String, Headers)> =
                (0..n as u64).map(|_| Self::next_class(load)).collect();
            for (class, headers) in requests {
                let decision = match &entry {
                    Entry::Service(apex) => routes.resolve(&ns, apex, &headers),
                    Entry::Ingress(ingress) => routes.resolve_ingress(&ns, ingress, &headers),
                };
                let rr = format!("{ns}/{entry:?}");
                if let Some(pod) = self.route(routes, pods, &mut cache, &rr, decision) {
                    let response = self.respond(&pod);
                    self.ledger
                        .record_as(entry.name(), &class, &pod, response, now);
                }
            }
        }
        let live: BTreeSet<Key> = self
            .ledger
            .namespaces()
            .into_iter()
            .flat_map(|ns| {
                cache
                    .pods(pods, &ns)
                    .iter()
                    .map(|p| (p.namespace.clone(), p.name.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        self.ledger.snapshot(now, &live);
    }

    /// The next request's class name and headers, by the classes' shares.
    fn next_class(load: &mut Load) -> (String, Headers) {
        if load.classes.is_empty() {
            return (String::new(), Headers::new());
        }
        let keys: Vec<String> = (0..load.classes.len()).map(|i| i.to_string()).collect();
        let items: Vec<(&str, f64)> = keys
            .iter()
            .zip(&load.classes)
            .map(|(k, c)| (k.as_str(), c.share))
            .collect();
        load.class_rr
            .pick(&items)
            .and_then(|k| k.parse::<usize>().ok())
            .and_then(|i| load.classes.get(i))
            .map(|c| (c.name.clone(), c.headers()))
            .unwrap_or_default()
    }

    /// The pod that answers one request routed by `decision`, if any; `rr` names the load
    /// for the round-robin memory.
    fn route(
        &mut self,
        routes: &RouteTable,
        pods: &PodTable,
        cache: &mut TickCache,
        rr: &str,
        decision: Decision,
    ) -> Option<SimPod> {
        let Decision::Backends { route, backends } = decision else {
            return None;
        };
        let keys: Vec<String> = backends
            .iter()
            .map(|b| format!("{}/{}", b.namespace, b.service))
            .collect();
        let items: Vec<(&str, f64)> = keys
            .iter()
            .zip(&backends)
            .map(|(k, b)| (k.as_str(), b.weight))
            .collect();
        let picked = self
            .route_rr
            .entry(format!("{rr}/{route}"))
            .or_default()
            .pick(&items)?;
        let backend = &backends[keys.iter().position(|k| k == picked)?];
        let key = (backend.namespace.clone(), backend.service.clone());
        let candidates = cache.endpoints(routes, pods, &key);
        if candidates.is_empty() {
            return None;
        }
        let turn = self.pod_rr.entry(key).or_default();
        let pod = candidates[(*turn % candidates.len() as u64) as usize].clone();
        *turn += 1;
        Some(pod)
    }

    fn respond(&mut self, pod: &SimPod) -> Response {
        let profile = self
            .profiles
            .get(&pod.image)
            .cloned()
            .or_else(|| super::scenario::profile_for(&pod.image))
            .unwrap_or_default();
        let acc = self
            .error_acc
            .entry((pod.namespace.clone(), pod.name.clone(), pod.image.clone()))
            .or_default();
        *acc += profile.error_rate.clamp(0.0, 1.0);
        let failure = *acc >= 1.0 - 1e-9;
        if failure {
            *acc -= 1.0;
        }
        Response {
            failure,
            latency_ms: sample_latency(&profile, &mut self.rng),
        }
    }
}

/// A running mesh simulator (cheap to clone; every clone drives the same tasks).
#[derive(Clone)]
pub struct MeshSimulator {
    shared: Arc<Shared>,
}

struct Shared {
    mesh: Mutex<Mesh>,
    addr: SocketAddr,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn mesh(&self) -> std::sync::MutexGuard<'_, Mesh> {
        self.mesh.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The routing object stores, filled by reflectors.
#[derive(Clone)]
struct Stores {
    services: Store<Service>,
    splits: Option<Store<DynamicObject>>,
    profiles: Option<Store<DynamicObject>>,
    routes: Option<Store<DynamicObject>>,
    ingresses: Option<Store<DynamicObject>>,
}

impl Stores {
    async fn wait_until_ready(&self) {
        let _ = self.services.wait_until_ready().await;
        for store in [&self.splits, &self.profiles, &self.routes, &self.ingresses]
            .into_iter()
            .flatten()
        {
            let _ = store.wait_until_ready().await;
        }
    }

    /// The route table as the caches stand now; objects that do not parse are skipped.
    fn table(&self) -> RouteTable {
        let mut table = RouteTable::default();
        for svc in self.services.state() {
            let selector = svc.spec.as_ref().and_then(|s| s.selector.clone());
            table.services.insert(
                (svc.namespace().unwrap_or_default(), svc.name_any()),
                ServiceInfo { selector },
            );
        }
        for obj in self.splits.iter().flat_map(Store::state) {
            let ns = obj.namespace().unwrap_or_default();
            match routing::parse_split(&ns, &obj.name_any(), &obj.data["spec"]) {
                Ok(split) => table.splits.push(split),
                Err(err) => tracing::debug!(error = %err, "skipping TrafficSplit"),
            }
        }
        for obj in self.profiles.iter().flat_map(Store::state) {
            let ns = obj.namespace().unwrap_or_default();
            let profile = routing::parse_profile(&ns, &obj.name_any(), &obj.data["spec"]);
            table.profiles.push(profile);
        }
        for obj in self.routes.iter().flat_map(Store::state) {
            let created = obj
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            let ns = obj.namespace().unwrap_or_default();
            let route =
                routing::parse_http_route(&ns, &obj.name_any(), &created, &obj.data["spec"]);
            table.http_routes.push(route);
        }
        for obj in self.ingresses.iter().flat_map(Store::state) {
            let ns = obj.namespace().unwrap_or_default();
            let metadata = serde_json::to_value(&obj.metadata).unwrap_or_default();
            let ing = ingress::parse_ingress(&ns, &obj.name_any(), &metadata, &obj.data["spec"]);
            table.ingresses.push(ing);
        }
        table
    }
}

/// The first of `versions` of `group` that serves `plural`, if any.
async fn served(
    client: &kube::Client,
    group: &str,
    versions: &[&str],
    kind: &str,
    plural: &str,
) -> Result<Option<ApiResource>, Error> {
    for version in versions {
        let gv = format!("{group}/{version}");
        match client.list_api_group_resources(&gv).await {
            Ok(list) if list.resources.iter().any(|r| r.name == plural) => {
                let gvk = GroupVersionKind::gvk(group, version, kind);
                return Ok(Some(ApiResource::from_gvk_with_plural(&gvk, plural)));
            }
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(source) => {
                return Err(Error::Discovery {
                    group_version: gv,
                    source,
                });
            }
        }
    }
    Ok(None)
}

fn spawn_reflector<K>(writer: reflector::store::Writer<K>, api: Api<K>) -> JoinHandle<()>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    tokio::spawn(reflector::reflector(writer, stream).for_each(|event| {
        if let Err(err) = event {
            tracing::warn!(error = %err, "mesh simulator watch failed; retrying");
        }
        futures::future::ready(())
    }))
}

impl MeshSimulator {
    /// Starts the reflectors, the traffic loop and the `/metrics` server.
    pub async fn start(
        client: kube::Client,
        pods: PodTable,
        opts: MeshOptions,
    ) -> Result<MeshSimulator, Error> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let split_ar = served(
            &client,
            "split.smi-spec.io",
            &["v1alpha2", "v1alpha1"],
            "TrafficSplit",
            "trafficsplits",
        )
        .await?;
        let route_ar = served(
            &client,
            "gateway.networking.k8s.io",
            &["v1"],
            "HTTPRoute",
            "httproutes",
        )
        .await?;
        let ingress_ar = served(
            &client,
            "networking.k8s.io",
            &["v1"],
            "Ingress",
            "ingresses",
        )
        .await?;
        let profile_ar = served(
            &client,
            "linkerd.io",
            &["v1alpha2"],
            "ServiceProfile",
            "serviceprofiles",
        )
        .await?;

        let mut tasks = Vec::new();
        let (services, writer) = reflector::store::<Service>();
        tasks.push(spawn_reflector(writer, Api::all(client.clone())));
        let mut dynamic = |ar: Option<ApiResource>| {
            ar.map(|ar| {
                let writer = reflector::store::Writer::new(ar.clone());
                let store = writer.as_reader();
                tasks.push(spawn_reflector(
                    writer,
                    Api::<DynamicObject>::all_with(client.clone(), &ar),
                ));
                store
            })
        };
        let stores = Stores {
            services,
            splits: dynamic(split_ar),
            profiles: dynamic(profile_ar),
            routes: dynamic(route_ar),
            ingresses: dynamic(ingress_ar),
        };

        let shared = Arc::new(Shared {
            mesh: Mutex::new(Mesh::new(opts.seed)),
            addr,
            tasks: Mutex::new(Vec::new()),
        });
        tasks.push(tokio::spawn(traffic_loop(
            Arc::clone(&shared),
            stores,
            pods,
            opts.tick,
        )));
        let metrics = Arc::clone(&shared);
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let text = metrics.mesh().ledger.exposition();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        text,
                    )
                }
            }),
        );
        tasks.push(tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::warn!(error = %err, "mesh simulator's /metrics server stopped");
            }
        }));
        *shared.tasks.lock().unwrap_or_else(PoisonError::into_inner) = tasks;
        Ok(MeshSimulator { shared })
    }

    /// Where `/metrics` is served (plain HTTP).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Sends `rps` requests per second to apex Service `service` (0 stops it).
    pub fn set_load(&self, namespace: &str, service: &str, rps: f64) {
        self.shared.mesh().set_load(namespace, service, rps);
    }

    /// Sends `rps` requests per second into Ingress `ingress` (0 stops it): they go where
    /// ingress-nginx would send them, canary annotations included ([`ingress`]).
    pub fn set_ingress_load(&self, namespace: &str, ingress: &str, rps: f64) {
        self.shared.mesh().set_ingress_load(namespace, ingress, rps);
    }

    /// Splits the Service's requests into classes by share (none: one plain class).
    pub fn set_request_classes(&self, namespace: &str, service: &str, classes: Vec<RequestClass>) {
        let entry = Entry::Service(service.to_string());
        self.shared.mesh().set_classes(namespace, entry, classes);
    }

    /// Splits the requests entering through Ingress `ingress` into classes by share.
    pub fn set_ingress_request_classes(
        &self,
        namespace: &str,
        ingress: &str,
        classes: Vec<RequestClass>,
    ) {
        let entry = Entry::Ingress(ingress.to_string());
        self.shared.mesh().set_classes(namespace, entry, classes);
    }

    /// How pods running `image` answer from now on.
    pub fn set_profile(&self, image: &str, profile: Profile) {
        self.shared
            .mesh()
            .profiles
            .insert(image.to_string(), profile);
    }

    /// The last 15 minutes of requests to `service` (or into the Ingress of that name), per
    /// second, by receiving Deployment.
    pub fn traffic(&self, namespace: &str, service: &str) -> Vec<TrafficSecond> {
        self.shared.mesh().ledger.traffic(namespace, service)
    }

    /// Stops the traffic, the reflectors and the `/metrics` server.
    pub fn shutdown(&self) {
        for task in self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

impl CounterSource for MeshSimulator {
    fn counters_at(&self, namespace: &str, deployment: &str, at: SystemTime) -> Option<Counters> {
        self.shared
            .mesh()
            .ledger
            .counters_at(namespace, deployment, at)
    }
}

async fn traffic_loop(shared: Arc<Shared>, stores: Stores, pods: PodTable, tick: Duration) {
    stores.wait_until_ready().await;
    let mut interval = tokio::time::interval(tick.max(Duration::from_millis(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        interval.tick().await;
        let now = Instant::now();
        // Without load nothing is routed: building the table (every Service and route, each
        // tick) would only burn the sandbox's CPU, most of it at rest with a large fleet.
        let busy = shared.mesh().loads.values().any(|l| l.rps > 0.0);
        let table = if busy {
            stores.table()
        } else {
            RouteTable::default()
        };
        shared
            .mesh()
            .tick(&table, &pods, now - last, SystemTime::now());
        last = now;
    }
}

#[cfg(test)]
mod tests;
