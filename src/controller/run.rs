//! Running the controller: caches, the kube-runtime `Controller`, and what triggers a reconcile.
//!
//! ```text
//! Deployments (all) ───────────────────┐
//! app-primary Deployments (owned) ──────├─► Controller ──► reconcile(app) ──► requeue on the interval
//! routes `app` (owned) ─────────────────┤        │
//! Services (all): apex by name or       │        └─ app gone ──► its metrics series dropped
//!   `sluice.dev/service`,               │
//!   -primary/-canary by owner ──────────┘
//!   (these three also fill the caches of `Seen`)
//! Namespaces, sluice-policy ──► reflector stores (opt-in and policy layers)
//! HPAs (all) ──► reflector store (which HPA scales app, read by the passes of a rollout)
//! ```
//!
//! - The watches of Services, generated Deployments and routes also fill the caches of
//!   [`Seen`], from which a reconcile at rest reads instead of asking the API server (see
//!   [`seen`](super::seen) for when it still asks).
//! - Every cache keeps a slim copy ([`Slim`]): no `managedFields`, no kubectl
//!   `last-applied-configuration`, and of a Service only its metadata, type, selector and ports.
//!   With 5,000 managed Deployments (15,000 Services) that took the controller at rest from
//!   220 MB to 147 MB (BENCHMARKS.md); the Deployment watch is the controller's own store, fed
//!   by the same slim watch.
//! - Routes are watched like the other generated objects: label-selected on
//!   `app.kubernetes.io/managed-by: sluice` and mapped to `app` by their owner reference, so a
//!   person editing or deleting the TrafficSplit mid-rollout wakes the reconcile that writes it
//!   back, instead of waiting for the interval. Every route kind served at start is watched (its
//!   served version); a route API served only later is not watched, and the interval and the
//!   other watches still converge its routes (a restart adds the watch).
//! - A reconcile scheduled for a Deployment that is gone from the cache ends as kube-runtime's
//!   `ObjectNotFound`: that is where a deleted Deployment's metrics series are removed.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceSpec};
use kube::api::DynamicObject;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::objects::{MANAGED_BY, MANAGED_BY_LABEL};
use super::reconcile::{Context, Leading, error_policy, reconcile};
use super::seen::{CustomApexes, Seen};
use crate::metrics::Metrics;

/// A background task that is stopped when its handle is dropped.
pub struct Task(tokio::task::JoinHandle<()>);

impl Task {
    /// Spawns `future` as a task that stops when the returned handle is dropped.
    pub fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Task {
        Task(tokio::spawn(future))
    }

    /// Waits until the task has finished on its own.
    pub async fn join(mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts a reflector for `api` and returns its store, once it has synced, with the task that
/// feeds it (slimmed, as every cache here).
pub async fn cache<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, Task)
where
    K: Slim + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, stream) = cached_watch(api, config, Default::default());
    let stream = stream.for_each(|_| async {});
    let task = Task::spawn(stream);
    let _ = reader.wait_until_ready().await;
    (reader, task)
}

/// The caches the webhook and the controller share; dropping them stops their watches.
pub struct Caches {
    pub namespaces: Store<Namespace>,
    pub policy: Store<ConfigMap>,
    _tasks: [Task; 2],
}

impl Caches {
    /// Starts the caches and waits until they have synced.
    pub async fn start(client: &Client, sluice_namespace: &str) -> Caches {
        let namespaces = cache(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        );
        let policy = cache(
            Api::<ConfigMap>::namespaced(client.clone(), sluice_namespace),
            watcher::Config::default().fields("metadata.name=sluice-policy"),
        );
        let ((namespaces, ns_task), (policy, policy_task)) = tokio::join!(namespaces, policy);
        Caches {
            namespaces,
            policy,
            _tasks: [ns_task, policy_task],
        }
    }
}

/// What a cache keeps of an object: everything but the fields nothing in Sluice reads and that
/// are most of an object's size.
pub trait Slim: kube::Resource + Sized {
    /// Drops what the caches never read: `managedFields` (a tree per field manager, the
    /// largest part of most objects).
    fn slim(&mut self) {
        self.managed_fields_mut().clear();
    }
}

impl Slim for Namespace {}
impl Slim for ConfigMap {}

impl Slim for DynamicObject {
    /// The routes: also without `status` (an HTTPRoute's conditions per parent), which no
    /// comparison of Sluice's reads.
    fn slim(&mut self) {
        self.managed_fields_mut().clear();
        if let Some(data) = self.data.as_object_mut() {
            data.remove("status");
        }
    }
}
impl Slim for HorizontalPodAutoscaler {}

impl Slim for Service {
    /// Keeps what Sluice reads of a Service (the apex's and the generated ones'): metadata, and
    /// of the spec the type, selector and ports. Every Service of the cluster is cached, so the
    /// rest (cluster IPs, IP families, status) would be most of the cache.
    fn slim(&mut self) {
        self.managed_fields_mut().clear();
        self.annotations_mut().remove(LAST_APPLIED);
        self.status = None;
        if let Some(spec) = self.spec.take() {
            self.spec = Some(ServiceSpec {
                type_: spec.type_,
                selector: spec.selector,
                ports: spec.ports,
                ..ServiceSpec::default()
            });
        }
    }
}

impl Slim for Deployment {
    /// Also drops kubectl's `last-applied-configuration` (a second copy of the manifest, which
    /// belongs to the user's `kubectl apply` and is never copied to generated objects).
    fn slim(&mut self) {
        self.managed_fields_mut().clear();
        self.annotations_mut().remove(LAST_APPLIED);
    }
}

/// kubectl's client-side apply record.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A watch of `api` that feeds a new store, with its objects slimmed ([`Slim`]), for a
/// controller trigger.
fn cached_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    dyntype: K::DynamicType,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Slim + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype);
    let reader = writer.as_reader();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(Slim::slim)
        .reflect(writer)
        .touched_objects();
    (reader, stream)
}

/// The Deployments a Service's change wakes: the Deployment of the same name (whose default
/// apex it is), those that name it as their apex (`sluice.dev/service`) and, for a Service
/// Sluice generated, the Deployment that owns it.
fn woken_by(svc: &Service, apexes: &CustomApexes) -> Vec<ObjectRef<Deployment>> {
    let ns = svc.namespace().unwrap_or_default();
    let mut woken = vec![ObjectRef::new(&svc.name_any()).within(&ns)];
    woken.extend(
        apexes
            .deployments_of(&ns, &svc.name_any())
            .iter()
            .map(|d| ObjectRef::new(d).within(&ns)),
    );
    if svc.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY) {
        woken.extend(
            svc.owner_references()
                .iter()
                .filter(|o| o.kind == "Deployment" && o.api_version == "apps/v1")
                .map(|o| ObjectRef::new(&o.name).within(&ns)),
        );
    }
    woken
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let metrics = ctx.metrics.clone();
    let apexes = CustomApexes::default();
    let generated = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let (primaries, primary_events) = cached_watch(
        Api::<Deployment>::all(client.clone()),
        generated.clone(),
        (),
    );
    // One watch of every Service: the apex Services are the user's (a change to one, created
    // or deleted, wakes the Deployment of the same name, the default apex), the generated
    // ones wake their owner.
    let (services, service_events) = cached_watch(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        (),
    );
    // The Deployments: every one, since a label on one or on its namespace opts it in.
    let (deployments, deployment_events) = cached_watch(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
        (),
    );
    let mut controller = Controller::for_stream(deployment_events, deployments)
        .owns_stream(primary_events)
        .watches_stream(service_events, {
            let apexes = apexes.clone();
            move |svc| woken_by(&svc, &apexes)
        });
    let resources = ctx.router.route_resources();
    if resources.is_empty() {
        tracing::warn!(
            "the cluster serves no route API yet, so routes are not watched; restart Sluice once it does"
        );
    }
    let mut routes = Vec::new();
    for route in resources {
        let (store, events) = cached_watch(
            Api::<DynamicObject>::all_with(client.clone(), &route),
            generated.clone(),
            route.clone(),
        );
        controller = controller.owns_stream_with(events, route.clone());
        routes.push((route, store));
    }
    // The HPAs only fill a cache: a pass reads them as it listed them before, and an HPA
    // change takes effect at the next pass, as it did then.
    let (hpas, hpa_events) = cached_watch(
        Api::<HorizontalPodAutoscaler>::all(client.clone()),
        watcher::Config::default(),
        (),
    );
    let _hpa_cache = Task::spawn(hpa_events.for_each(|_| async {}));
    let leading = Arc::new(Leading {
        ctx,
        seen: Seen {
            services,
            primaries,
            routes,
            hpas,
            known: Default::default(),
            apexes: apexes.clone(),
        },
    });
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, leading)
        .for_each(move |result| {
            if let Err(controller::Error::ObjectNotFound(gone)) = &result {
                forget(&metrics, &apexes, gone);
            }
            async {}
        })
        .await;
}

/// Drops the metrics series and the custom apex of a Deployment that is gone.
fn forget(metrics: &Metrics, apexes: &CustomApexes, gone: &ObjectRef<DynamicObject>) {
    let ns = gone.namespace.as_deref().unwrap_or_default();
    metrics.forget_rollout(ns, &gone.name);
    apexes.forget(ns, &gone.name);
}
