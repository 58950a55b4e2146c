//! Running the controller: caches, the kube-runtime `Controller`, and what triggers a reconcile.
//!
//! ```text
//! Deployments (all) ─────────────┐
//! app-primary Deployments (owned) ├─► Controller ──► reconcile(app) ──► requeue on the interval
//! -primary/-canary Services (owned)│        │
//! routes `app` (owned)             │        └─ app gone ──► its metrics series dropped
//! apex Services (same name)  ─────┘
//! Namespaces, sluice-policy ──► reflector stores (opt-in and policy layers)
//! ```
//!
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
use super::reconcile::{Context, error_policy, reconcile};
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
/// feeds it.
pub async fn cache<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, Task)
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .touched_objects()
        .for_each(|_| async {});
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

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let metrics = ctx.metrics.clone();
    let generated = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let mut controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Deployment>::all(client.clone()), generated.clone())
    .owns(Api::<Service>::all(client.clone()), generated.clone());
    let routes = ctx.router.route_resources();
    if routes.is_empty() {
        tracing::warn!(
            "the cluster serves no route API yet, so routes are not watched; restart Sluice once it does"
        );
    }
    for route in routes {
        controller = controller.owns_with(
            Api::<DynamicObject>::all_with(client.clone(), &route),
            route,
            generated.clone(),
        );
    }
    controller
        // The apex Service is the user's: a change to it (created, deleted) wakes the
        // Deployment of the same name, which is the default apex.
        .watches(
            Api::<Service>::all(client),
            watcher::Config::default(),
            |svc| {
                Some(
                    ObjectRef::<Deployment>::new(&svc.name_any())
                        .within(&svc.namespace().unwrap_or_default()),
                )
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
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
