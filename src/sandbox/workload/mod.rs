//! Workload simulator: rolls Deployments the way kube-controller-manager's deployment
//! controller does, and keeps the simulated pods in a shared [`PodTable`] that the mesh
//! simulator reads.
//!
//! ```text
//! watch Deployments ──► cache ──┐
//! readiness / deadline timers ──┴► rollout::step (pure) ──► PodTable (shared with the mesh)
//!                                                        └► PATCH deployments/NAME/status
//! ```
//!
//! It talks to the cluster only through a `kube::Client`, as a real controller does: a
//! watcher on Deployments in every namespace, and merge patches to the `status` subresource,
//! written only when the status changed. Deployments are stepped one at a time, but up to 32
//! status writes run at once, one per Deployment ([`rollout::writes`]), so a fleet of
//! thousands is not rolled behind one write at a time. Rolling updates follow
//! `maxSurge`/`maxUnavailable` in batches, `Recreate` replaces every pod at once (see
//! [`rollout`] for the details).
//!
//! Where it knowingly differs from a real cluster:
//! - Pods and ReplicaSets are not API objects: pods live only in the [`PodTable`], and the
//!   API server serves neither kind. Deleting a Deployment drops its pods at once.
//! - A pod is ready `ready_delay` after it is created unless one of its images was marked
//!   broken; there are no probes, restarts or node failures.
//! - Status patches are merge patches (the real controller PUTs the whole status).
//!
//! [`hpa`] is the HorizontalPodAutoscaler controller beside it: it scales Deployments through
//! their `scale` subresource, and this simulator rolls them to the new replicas.

pub mod hpa;
pub mod rollout;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use rollout::writes::Writes;
use rollout::{DeploymentSim, Env};

/// Settings of the workload simulator.
#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    /// How long a new pod takes to become ready (default 2s).
    pub ready_delay: Duration,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            ready_delay: Duration::from_secs(2),
        }
    }
}

/// One simulated pod, as the mesh simulator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimPod {
    /// The Deployment's namespace.
    pub namespace: String,
    /// `DEPLOYMENT-HASH-xxxxx`, as the ReplicaSet controller names pods.
    pub name: String,
    /// The owning Deployment (linkerd-viz's `deployment` label).
    pub deployment: String,
    /// The template's labels plus `pod-template-hash`.
    pub labels: BTreeMap<String, String>,
    /// The `pod-template-hash` of the template it runs.
    pub template_hash: String,
    /// The first container's image: the version the mesh profiles.
    pub image: String,
    /// Whether it is ready (and so an endpoint of the Services that select it).
    pub ready: bool,
}

/// Pods by namespace, then by owning Deployment.
type PodsByNamespace = BTreeMap<String, BTreeMap<String, Vec<SimPod>>>;

/// The simulated pods of every Deployment, shared between the workload and mesh simulators.
#[derive(Clone, Debug, Default)]
pub struct PodTable {
    inner: Arc<RwLock<PodsByNamespace>>,
}

impl PodTable {
    /// An empty table.
    pub fn new() -> PodTable {
        PodTable::default()
    }

    /// Every pod in `namespace`, ordered by name.
    pub fn pods(&self, namespace: &str) -> Vec<SimPod> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut pods: Vec<SimPod> = inner
            .get(namespace)
            .map(|by_deploy| by_deploy.values().flatten().cloned().collect())
            .unwrap_or_default();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        pods
    }

    /// Replaces the pods of `deployment` in `namespace` (an empty list removes them).
    pub fn set_deployment_pods(&self, namespace: &str, deployment: &str, pods: Vec<SimPod>) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if pods.is_empty() {
            if let Some(by_deploy) = inner.get_mut(namespace) {
                by_deploy.remove(deployment);
                if by_deploy.is_empty() {
                    inner.remove(namespace);
                }
            }
        } else {
            inner
                .entry(namespace.to_string())
                .or_default()
                .insert(deployment.to_string(), pods);
        }
    }
}

/// A running workload simulator (cheap to clone; every clone drives the same task).
#[derive(Clone)]
pub struct WorkloadSimulator {
    shared: Arc<Shared>,
}

struct Shared {
    pods: PodTable,
    broken: Mutex<BTreeSet<String>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl WorkloadSimulator {
    /// Starts watching Deployments through `client` and rolling them (spawns a task on the
    /// current tokio runtime).
    pub fn start(client: kube::Client, opts: WorkloadOptions) -> WorkloadSimulator {
        let shared = Arc::new(Shared {
            pods: PodTable::new(),
            broken: Mutex::new(BTreeSet::new()),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(client, opts, Arc::clone(&shared)));
        *shared.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        WorkloadSimulator { shared }
    }

    /// The shared table of simulated pods.
    pub fn pods(&self) -> PodTable {
        self.shared.pods.clone()
    }

    /// Pods running `image` (in any container) never become ready from now on.
    pub fn mark_broken(&self, image: &str) {
        self.shared
            .broken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(image.to_string());
    }

    /// Stops the simulator; the pod table keeps its last contents.
    pub fn shutdown(&self) {
        if let Some(task) = self
            .shared
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

type Key = (String, String);

/// The controller's memory: the watched Deployments and their simulated pods.
#[derive(Default)]
struct Controller {
    deployments: BTreeMap<Key, Deployment>,
    sims: BTreeMap<Key, DeploymentSim>,
    wakes: BTreeMap<Key, SystemTime>,
    /// Keys seen since a relist began, to drop Deployments deleted while not watching.
    relist: Option<BTreeSet<Key>>,
}

fn key_of(d: &Deployment) -> Key {
    (d.namespace().unwrap_or_default(), d.name_any())
}

fn resource_version(d: &Deployment) -> Option<u64> {
    d.metadata.resource_version.as_deref()?.parse().ok()
}

impl Controller {
    /// Takes in a watch event; returns the Deployments to sync.
    fn on_event(&mut self, event: watcher::Event<Deployment>) -> Vec<Key> {
        match event {
            watcher::Event::Init => {
                self.relist = Some(BTreeSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(d) => {
                let key = key_of(&d);
                if let Some(seen) = self.relist.as_mut() {
                    seen.insert(key.clone());
                }
                self.store(d);
                vec![key]
            }
            watcher::Event::InitDone => {
                let seen = self.relist.take().unwrap_or_default();
                let gone: Vec<Key> = self
                    .deployments
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for key in &gone {
                    self.deployments.remove(key);
                }
                gone
            }
            watcher::Event::Apply(d) => {
                let key = key_of(&d);
                self.store(d);
                vec![key]
            }
            watcher::Event::Delete(d) => {
                let key = key_of(&d);
                self.deployments.remove(&key);
                vec![key]
            }
        }
    }

    /// Keeps `d` unless the cache already holds a newer version (our own status write can
    /// overtake the watch event of an earlier change).
    fn store(&mut self, d: Deployment) {
        let key = key_of(&d);
        let newer = match (
            self.deployments.get(&key).and_then(resource_version),
            resource_version(&d),
        ) {
            (Some(cached), Some(incoming)) => incoming >= cached,
            _ => true,
        };
        if newer {
            self.deployments.insert(key, d);
        }
    }

    fn due(&self, now: SystemTime) -> Vec<Key> {
        self.wakes
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn next_wake(&self) -> Option<SystemTime> {
        self.wakes.values().min().copied()
    }

    /// Steps `key` (pods, timers) and returns the status patch to write, if it changed.
    fn sync(&mut self, shared: &Shared, opts: &WorkloadOptions, key: &Key) -> Option<Value> {
        let (ns, name) = (&key.0, &key.1);
        self.wakes.remove(key);
        let Some(deploy) = self.deployments.get(key) else {
            // Forget the pods but not the name counter: a Deployment created again under
            // this name must not reuse a pod name (the mesh keys its series by pod).
            if let Some(sim) = self.sims.get_mut(key) {
                *sim = DeploymentSim {
                    next_pod: sim.next_pod,
                    ..DeploymentSim::default()
                };
            }
            shared.pods.set_deployment_pods(ns, name, Vec::new());
            return None;
        };
        let broken = shared
            .broken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let env = Env {
            broken_images: &broken,
            ready_delay: opts.ready_delay,
            now: SystemTime::now(),
        };
        let prev = self.sims.get(key).cloned().unwrap_or_default();
        let step = rollout::step(deploy, &prev, env);
        let pods = step
            .sim
            .pods
            .iter()
            .map(|p| p.to_sim_pod(ns, name))
            .collect();
        shared.pods.set_deployment_pods(ns, name, pods);
        self.sims.insert(key.clone(), step.sim);
        if let Some(at) = step.wake {
            self.wakes.insert(key.clone(), at);
        }
        let patch = status_patch(&step.status);
        changes(deploy.status.as_ref(), &patch).then_some(patch)
    }

    /// Takes in the answer to the status write of `key`: the stored Deployment, or a retry in
    /// a second.
    fn written(&mut self, key: Key, result: Result<Deployment, kube::Error>) {
        match result {
            Ok(updated) => self.store(updated),
            Err(err) => {
                tracing::warn!(namespace = %key.0, deployment = %key.1, error = %err,
                    "workload simulator could not write the Deployment status; retrying in 1s");
                let retry = SystemTime::now() + Duration::from_secs(1);
                let at = self.wakes.get(&key).map_or(retry, |at| (*at).min(retry));
                self.wakes.insert(key, at);
            }
        }
    }
}

/// Status writes the simulator keeps in flight at once (one per Deployment at most).
const WRITES_IN_FLIGHT: usize = 32;

/// A status write in flight, answering with its Deployment's key.
type Write = futures::future::BoxFuture<'static, (Key, Result<Deployment, kube::Error>)>;

fn write_status(client: &kube::Client, key: Key, patch: Value) -> Write {
    let api: Api<Deployment> = Api::namespaced(client.clone(), &key.0);
    Box::pin(async move {
        let result = api
            .patch_status(&key.1, &PatchParams::default(), &Patch::Merge(patch))
            .await;
        (key, result)
    })
}

/// A merge patch that sets `status` exactly: counts that dropped to zero are removed.
fn status_patch(status: &DeploymentStatus) -> Value {
    let mut body = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Some(obj) = body.as_object_mut() {
        for field in [
            "observedGeneration",
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "conditions",
        ] {
            obj.entry(field).or_insert(Value::Null);
        }
    }
    json!({ "status": body })
}

/// Whether `patch` would change any field of `stored` it sets. Fields the simulator does not
/// own (such as `terminatingReplicas`) are not compared, so a server that fills them in
/// cannot make the simulator write forever.
fn changes(stored: Option<&DeploymentStatus>, patch: &Value) -> bool {
    let stored = stored
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| json!({}));
    patch["status"].as_object().is_some_and(|fields| {
        fields
            .iter()
            .any(|(k, v)| stored.get(k).unwrap_or(&Value::Null) != v)
    })
}

async fn run(client: kube::Client, opts: WorkloadOptions, shared: Arc<Shared>) {
    let api: Api<Deployment> = Api::all(client.clone());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut ctl = Controller::default();
    let mut writes = Writes::new(WRITES_IN_FLIGHT);
    let mut in_flight = futures::stream::FuturesUnordered::<Write>::new();
    loop {
        let sleep = ctl.next_wake().map(|at| {
            let wait = at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            // Timers may fire a hair early against the wall clock; never wake before `at`.
            tokio::time::sleep(wait + Duration::from_millis(5))
        });
        let dirty: BTreeSet<Key> = tokio::select! {
            event = events.try_next() => match event {
                Ok(Some(event)) => ctl.on_event(event).into_iter().collect(),
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "workload simulator's Deployment watch failed; retrying");
                    BTreeSet::new()
                }
            },
            () = async { match sleep { Some(s) => s.await, None => std::future::pending().await } } => {
                ctl.due(SystemTime::now()).into_iter().collect()
            }
            Some((key, result)) = in_flight.next(), if !in_flight.is_empty() => {
                writes.finished(&key);
                ctl.written(key, result);
                BTreeSet::new()
            }
        };
        // Deployments are stepped one at a time (cheap), their status writes run concurrently:
        // one Deployment's slow write no longer holds every other Deployment's pods back.
        for key in dirty {
            if writes.ready(&key) {
                if let Some(patch) = ctl.sync(&shared, &opts, &key) {
                    writes.started(key.clone());
                    in_flight.push(write_status(&client, key, patch));
                }
            } else {
                // Synced once its own write (or a free slot) allows, from the status it returns.
                ctl.wakes.remove(&key);
                writes.wait(key);
            }
        }
        while let Some(key) = writes.next_ready() {
            if let Some(patch) = ctl.sync(&shared, &opts, &key) {
                writes.started(key.clone());
                in_flight.push(write_status(&client, key, patch));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, deployment: &str) -> SimPod {
        SimPod {
            namespace: ns.into(),
            name: name.into(),
            deployment: deployment.into(),
            labels: BTreeMap::new(),
            template_hash: "h".into(),
            image: "img".into(),
            ready: true,
        }
    }

    #[test]
    fn pod_table_lists_a_namespace_by_pod_name_across_deployments() {
        let table = PodTable::new();
        table.set_deployment_pods("ns", "b", vec![pod("ns", "b-1", "b")]);
        table.set_deployment_pods(
            "ns",
            "a",
            vec![pod("ns", "a-2", "a"), pod("ns", "a-1", "a")],
        );
        table.set_deployment_pods("other", "a", vec![pod("other", "a-9", "a")]);
        let names: Vec<String> = table.pods("ns").into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["a-1", "a-2", "b-1"]);
    }

    #[test]
    fn pod_table_forgets_a_deployment_given_no_pods() {
        let table = PodTable::new();
        table.set_deployment_pods("ns", "a", vec![pod("ns", "a-1", "a")]);
        table.set_deployment_pods("ns", "a", Vec::new());
        assert!(table.pods("ns").is_empty());
    }

    #[test]
    fn status_patch_removes_counts_that_fell_to_zero() {
        let status = DeploymentStatus {
            replicas: Some(2),
            ..Default::default()
        };
        let patch = status_patch(&status);
        assert_eq!(patch["status"]["replicas"], 2);
        assert!(patch["status"]["readyReplicas"].is_null());
        assert!(
            patch["status"]
                .as_object()
                .is_some_and(|o| o.contains_key("readyReplicas"))
        );
    }

    #[test]
    fn only_owned_status_fields_decide_whether_to_write() {
        let ours = DeploymentStatus {
            replicas: Some(2),
            observed_generation: Some(1),
            ..Default::default()
        };
        let patch = status_patch(&ours);
        let mut stored = ours.clone();
        stored.terminating_replicas = Some(0);
        assert!(!changes(Some(&stored), &patch));
        stored.ready_replicas = Some(1);
        assert!(changes(Some(&stored), &patch));
        assert!(changes(None, &patch));
    }

    fn deploy(name: &str, rv: &str) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some(name.into());
        d.metadata.namespace = Some("ns".into());
        d.metadata.resource_version = Some(rv.into());
        d
    }

    #[test]
    fn a_late_watch_event_does_not_overwrite_a_newer_status_write() {
        let mut ctl = Controller::default();
        ctl.store(deploy("app", "10"));
        ctl.on_event(watcher::Event::Apply(deploy("app", "9")));
        let key = ("ns".to_string(), "app".to_string());
        assert_eq!(
            ctl.deployments[&key].metadata.resource_version.as_deref(),
            Some("10")
        );
    }

    #[test]
    fn a_relist_forgets_deployments_deleted_while_not_watching() {
        let mut ctl = Controller::default();
        ctl.store(deploy("gone", "1"));
        ctl.store(deploy("kept", "1"));
        ctl.on_event(watcher::Event::Init);
        ctl.on_event(watcher::Event::InitApply(deploy("kept", "2")));
        let dirty = ctl.on_event(watcher::Event::InitDone);
        assert_eq!(dirty, vec![("ns".to_string(), "gone".to_string())]);
        assert_eq!(ctl.deployments.len(), 1);
    }
}
