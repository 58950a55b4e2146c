//! Running the controller: caches, the kube-runtime `Controller`, and what triggers a reconcile.
//!
//! ```text
//! Deployments (all) ───────────────────┐
//! app-primary Deployments (owned) ──────├─► Controller ──► reconcile(app) ──► requeue on the interval
//! routes `app` (owned) ─────────────────┤        │
//! Services (all): apex by name,         │        └─ app gone ──► its metrics series dropped
//!   -primary/-canary by owner ──────────┘
//!   (these three also fill the caches of `Seen`)
//! Namespaces, sluice-policy ──► reflector stores (opt-in and policy layers)
//! ```
//!
//! - The watches of Services, generated Deployments and routes also fill the caches of
//!   [`Seen`], from which a reconcile at rest reads instead of asking the API server (see
//!   [`seen`](super::seen) for when it still asks). `managedFields` are dropped from cached
//!   objects to keep the controller's memory small.
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
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::DynamicObject;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::objects::{MANAGED_BY, MANAGED_BY_LABEL};
use super::reconcile::{Context, Leading, error_policy, reconcile};
use super::seen::Seen;
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
/// feeds it (`managedFields` dropped, as in every cache here).
pub async fn cache<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, Task)
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
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

/// A watch of `api` that feeds a new store, with its objects' `managedFields` dropped (the
/// caches never read them, and they are most of an object's size), for a controller trigger.
fn cached_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    dyntype: K::DynamicType,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype);
    let reader = writer.as_reader();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|obj| obj.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects();
    (reader, stream)
}

/// The Deployments a Service's change wakes: the Deployment of the same name (whose default
/// apex it is) and, for a Service Sluice generated, the Deployment that owns it.
fn woken_by(svc: &Service) -> Vec<ObjectRef<Deployment>> {
    let ns = svc.namespace().unwrap_or_default();
    let mut woken = vec![ObjectRef::new(&svc.name_any()).within(&ns)];
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
    let mut controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns_stream(primary_events)
    .watches_stream(service_events, |svc| woken_by(&svc));
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
    let leading = Arc::new(Leading {
        ctx,
        seen: Seen {
            services,
            primaries,
            routes,
        },
    });
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, leading)
        .for_each(move |result| {
            if let Err(controller::Error::ObjectNotFound(gone)) = &result {
                forget(&metrics, gone);
            }
            async {}
        })
        .await;
}

/// Drops the metrics series of a Deployment that is gone.
fn forget(metrics: &Metrics, gone: &ObjectRef<DynamicObject>) {
    metrics.forget_rollout(gone.namespace.as_deref().unwrap_or_default(), &gone.name);
}
