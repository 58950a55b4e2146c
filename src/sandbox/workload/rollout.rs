//! The deployment controller's decisions as one pure function, [`step`]: given a Deployment,
//! the simulated pods it has and the time, which pods it should have now, what its status
//! says, and when something will next change.
//!
//! ```text
//! Deployment + DeploymentSim + now ──► step ──► pods (created / deleted / ready)
//!                                             ├► DeploymentStatus (counts + conditions)
//!                                             └► next wake-up (readiness, progress deadline)
//! ```
//!
//! It follows kube-controller-manager's `pkg/controller/deployment` (`rolling.go`,
//! `recreate.go`, `sync.go`, `progress.go`): pods of the current template are the "new
//! ReplicaSet", every other template hash an "old" one. Where it knowingly differs:
//! - Pods are created and deleted at once (no graceful termination), so an RS's actual
//!   replica count always equals its desired count and a rollout converges in one step
//!   per readiness change instead of one sync per ReplicaSet event.
//! - Scaling during a rollout is not proportional (`scale()` with several active
//!   ReplicaSets): the rolling algorithm alone moves the new pods toward `spec.replicas`.
//! - A paused Deployment with several active templates keeps its pods as they are.
//! - Replica set memory is only what the simulator has seen: after a restart every template
//!   starts afresh, and `deployment.kubernetes.io/revision` is not written.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::SimPod;

pub mod writes;

/// The label every pod of a Deployment carries, naming its template's hash.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// `kube-controller-manager`'s default `progressDeadlineSeconds`.
const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

/// The alphabet of `k8s.io/apimachinery/pkg/util/rand` (no vowels, no confusable digits).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

// Condition types, reasons and messages as pkg/controller/deployment/util words them.
const AVAILABLE: &str = "Available";
const PROGRESSING: &str = "Progressing";
const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
const RS_UPDATED: &str = "ReplicaSetUpdated";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";

/// One simulated pod and its life so far.
#[derive(Clone, Debug, PartialEq)]
pub struct PodState {
    /// `DEPLOYMENT-HASH-xxxxx`.
    pub name: String,
    /// The `pod-template-hash` of the template it runs.
    pub template_hash: String,
    /// The first container's image (the version the mesh profiles).
    pub image: String,
    /// Every container image; any broken one keeps the pod unready.
    pub images: Vec<String>,
    /// The template's labels plus `pod-template-hash`.
    pub labels: BTreeMap<String, String>,
    /// When the simulated ReplicaSet created it.
    pub created: SystemTime,
    /// When it became ready; `None` while it is not (yet) ready.
    pub ready_at: Option<SystemTime>,
}

impl PodState {
    fn is_ready(&self) -> bool {
        self.ready_at.is_some()
    }

    /// Ready for at least `min_ready` (the deployment controller's "available").
    fn is_available(&self, min_ready: Duration, now: SystemTime) -> bool {
        self.ready_at.is_some_and(|at| at + min_ready <= now)
    }

    /// The view the pod table and the mesh get.
    pub fn to_sim_pod(&self, namespace: &str, deployment: &str) -> SimPod {
        SimPod {
            namespace: namespace.to_string(),
            name: self.name.clone(),
            deployment: deployment.to_string(),
            labels: self.labels.clone(),
            template_hash: self.template_hash.clone(),
            image: self.image.clone(),
            ready: self.is_ready(),
        }
    }
}

/// What the simulator remembers about one Deployment between steps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploymentSim {
    /// Its pods, of every template.
    pub pods: Vec<PodState>,
    /// Template hashes whose ReplicaSet has been created.
    pub replica_sets: BTreeSet<String>,
    /// Sequence for pod-name suffixes, so names never repeat within a Deployment.
    pub next_pod: u64,
    /// The Deployment these pods belong to: a Deployment deleted and created again under
    /// the same name while the watch was away starts with no pods.
    pub uid: Option<String>,
}

/// What is outside the Deployment: the scenario's settings and the clock.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// Images whose pods never become ready.
    pub broken_images: &'a BTreeSet<String>,
    /// How long a pod takes to become ready.
    pub ready_delay: Duration,
    /// The wall clock (condition times and the progress deadline are wall-clock).
    pub now: SystemTime,
}

impl Env<'_> {
    /// Whether pods of `image` never become ready: marked broken, or tagged so
    /// ([`crate::sandbox::scenario`]).
    pub fn is_broken(&self, image: &str) -> bool {
        self.broken_images.contains(image) || crate::sandbox::scenario::is_broken(image)
    }
}

/// The outcome of one [`step`].
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The status to write (compare with the stored one before writing).
    pub status: DeploymentStatus,
    /// The pods and memory to keep for the next step.
    pub sim: DeploymentSim,
    /// When the step must run again even if the Deployment does not change.
    pub wake: Option<SystemTime>,
}

/// The `pod-template-hash` of a template, computed the way the deployment controller does it
/// (32-bit FNV-1a of the template, its decimal digits mapped through the safe alphabet), over
/// the template's JSON instead of Go's object dump: stable, but not the value a real cluster
/// gives the same template.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    safe_encode(&fnv1a32(&bytes).to_string())
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// `rand.SafeEncodeString`: each byte picks a letter of the safe alphabet.
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// A five-letter pod-name suffix; distinct for every `n` below 27^5.
fn pod_suffix(n: u64) -> String {
    const SPACE: u64 = 27 * 27 * 27 * 27 * 27;
    // Multiplying by a number prime to 27 permutes 0..27^5, so suffixes look random yet never
    // repeat.
    let mut v = ((n + 1) % SPACE) * 2_654_435_761 % SPACE;
    let mut out = [0u8; 5];
    for slot in out.iter_mut().rev() {
        *slot = SAFE_ALPHABET[(v % 27) as usize];
        v /= 27;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

/// Rolling-update fenceposts resolved against the desired replicas (`ResolveFenceposts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fenceposts {
    surge: usize,
    unavailable: usize,
}

fn scaled(
    value: Option<&IntOrString>,
    default_percent: i32,
    total: usize,
    round_up: bool,
) -> usize {
    let percent = |p: i32| {
        let exact = f64::from(p) * total as f64 / 100.0;
        let v = if round_up {
            exact.ceil()
        } else {
            exact.floor()
        };
        v.max(0.0) as usize
    };
    match value {
        Some(IntOrString::Int(i)) => usize::try_from(*i).unwrap_or(0),
        Some(IntOrString::String(s)) => match s.strip_suffix('%').map(str::parse::<i32>) {
            Some(Ok(p)) => percent(p),
            // Validation refuses anything else; fall back to the default rather than fail.
            _ => percent(default_percent),
        },
        None => percent(default_percent),
    }
}

fn is_recreate(spec: &DeploymentSpec) -> bool {
    spec.strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "Recreate")
}

fn fenceposts(spec: &DeploymentSpec, desired: usize) -> Fenceposts {
    if is_recreate(spec) {
        return Fenceposts {
            surge: 0,
            unavailable: 0,
        };
    }
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled(
        rolling.and_then(|r| r.max_surge.as_ref()),
        25,
        desired,
        true,
    );
    let mut unavailable = scaled(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        25,
        desired,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Fenceposts {
        surge,
        unavailable: unavailable.min(desired),
    }
}

/// The progress deadline, or `None` when the Deployment has none (`MaxInt32`).
fn progress_deadline(spec: &DeploymentSpec) -> Option<Duration> {
    match spec
        .progress_deadline_seconds
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    {
        i32::MAX => None,
        s => Some(Duration::from_secs(u64::try_from(s).unwrap_or(0))),
    }
}

fn to_time(t: SystemTime) -> Time {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Time(Timestamp::from_second(i64::try_from(secs).unwrap_or(0)).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn from_time(t: &Time) -> SystemTime {
    SystemTime::from(t.0)
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: SystemTime,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(to_time(now)),
        last_transition_time: Some(to_time(now)),
    }
}

fn get_condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
        if cs.is_empty() {
            status.conditions = None;
        }
    }
}

/// `SetDeploymentCondition`: same status and reason → unchanged; same status → keep the
/// transition time; the condition moves to the end of the list.
fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(current) = get_condition(status, &cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

fn reason_of(c: Option<&DeploymentCondition>) -> Option<&str> {
    c.and_then(|c| c.reason.as_deref())
}

/// Omit zero counts, as kube-apiserver's `omitempty` does.
fn count(n: usize) -> Option<i32> {
    (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX))
}

fn num(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Everything one step needs about the Deployment, resolved once.
struct Rollout<'a> {
    name: &'a str,
    hash: String,
    template: &'a PodTemplateSpec,
    desired: usize,
    fence: Fenceposts,
    min_ready: Duration,
    env: Env<'a>,
}

impl Rollout<'_> {
    fn rs_name(&self) -> String {
        format!("{}-{}", self.name, self.hash)
    }

    fn is_new(&self, pod: &PodState) -> bool {
        pod.template_hash == self.hash
    }

    fn new_count(&self, pods: &[PodState]) -> usize {
        pods.iter().filter(|p| self.is_new(p)).count()
    }

    fn available(&self, pods: &[PodState]) -> usize {
        pods.iter()
            .filter(|p| p.is_available(self.min_ready, self.env.now))
            .count()
    }

    fn create_new(&self, sim: &mut DeploymentSim, n: usize) {
        let mut labels = self
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(POD_TEMPLATE_HASH_LABEL.to_string(), self.hash.clone());
        let images: Vec<String> = self
            .template
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .filter_map(|c| c.image.clone())
                    .collect()
            })
            .unwrap_or_default();
        let seed = PodState {
            name: String::new(),
            template_hash: self.hash.clone(),
            image: images.first().cloned().unwrap_or_default(),
            images,
            labels,
            created: self.env.now,
            ready_at: None,
        };
        self.create_like(sim, &seed, n);
    }

    /// Creates `n` pods of `seed`'s template (its hash, labels and images).
    fn create_like(&self, sim: &mut DeploymentSim, seed: &PodState, n: usize) {
        for _ in 0..n {
            let name = format!(
                "{}-{}-{}",
                self.name,
                seed.template_hash,
                pod_suffix(sim.next_pod)
            );
            sim.next_pod += 1;
            sim.pods.push(PodState {
                name,
                created: self.env.now,
                ready_at: None,
                ..seed.clone()
            });
        }
    }

    /// Deletes up to `n` pods of template `hash` that `pick` accepts, in the ReplicaSet
    /// controller's order: unready before ready, then the most recently ready or created.
    fn delete(
        &self,
        sim: &mut DeploymentSim,
        hash: &str,
        n: usize,
        pick: impl Fn(&PodState) -> bool,
    ) -> usize {
        let mut victims: Vec<(bool, SystemTime, String)> = sim
            .pods
            .iter()
            .filter(|p| p.template_hash == hash && pick(p))
            .map(|p| {
                (
                    p.is_ready(),
                    p.ready_at.unwrap_or(p.created),
                    p.name.clone(),
                )
            })
            .collect();
        victims.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
        let doomed: BTreeSet<String> = victims.into_iter().take(n).map(|v| v.2).collect();
        sim.pods.retain(|p| !doomed.contains(&p.name));
        doomed.len()
    }

    /// Old template hashes with pods, oldest ReplicaSet (earliest pod) first.
    fn old_groups(&self, pods: &[PodState]) -> Vec<String> {
        let mut first: BTreeMap<&str, SystemTime> = BTreeMap::new();
        for p in pods.iter().filter(|p| !self.is_new(p)) {
            let e = first.entry(&p.template_hash).or_insert(p.created);
            *e = (*e).min(p.created);
        }
        let mut groups: Vec<(SystemTime, String)> =
            first.into_iter().map(|(h, t)| (t, h.to_string())).collect();
        groups.sort();
        groups.into_iter().map(|(_, h)| h).collect()
    }

    /// `rolloutRolling`: surge new pods, then retire old ones as availability allows, until
    /// neither can move.
    fn roll(&self, sim: &mut DeploymentSim) {
        loop {
            let mut changed = false;
            // reconcileNewReplicaSet
            let new = self.new_count(&sim.pods);
            if new > self.desired {
                changed |= self.delete(sim, &self.hash, new - self.desired, |_| true) > 0;
            } else if new < self.desired {
                let max_total = self.desired + self.fence.surge;
                let total = sim.pods.len();
                if total < max_total {
                    self.create_new(sim, (max_total - total).min(self.desired - new));
                    changed = true;
                }
            }
            // reconcileOldReplicaSets
            changed |= self.retire_old(sim);
            if !changed {
                return;
            }
        }
    }

    fn retire_old(&self, sim: &mut DeploymentSim) -> bool {
        let groups = self.old_groups(&sim.pods);
        if groups.is_empty() {
            return false;
        }
        let (min_ready, now) = (self.min_ready, self.env.now);
        let all = sim.pods.len() as i64;
        let min_available = self.desired as i64 - self.fence.unavailable as i64;
        let new_pods: Vec<&PodState> = sim.pods.iter().filter(|p| self.is_new(p)).collect();
        let new_unavailable = new_pods
            .iter()
            .filter(|p| !p.is_available(min_ready, now))
            .count() as i64;
        let max_scaled_down = all - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let mut deleted = 0;
        // cleanupUnhealthyReplicas: unavailable old pods go first, within the budget.
        let mut budget = max_scaled_down as usize;
        for hash in &groups {
            if budget == 0 {
                break;
            }
            let n = self.delete(sim, hash, budget, |p| !p.is_available(min_ready, now));
            budget -= n;
            deleted += n;
        }
        // scaleDownOldReplicaSetsForRollingUpdate: keep minAvailable available pods.
        let available = self.available(&sim.pods) as i64;
        let mut excess = (available - min_available).max(0) as usize;
        for hash in &groups {
            if excess == 0 {
                break;
            }
            let n = self.delete(sim, hash, excess, |_| true);
            excess -= n;
            deleted += n;
        }
        deleted > 0
    }

    /// `rolloutRecreate`: every old pod goes at once, then the new template scales.
    fn recreate(&self, sim: &mut DeploymentSim) {
        sim.pods.retain(|p| p.template_hash == self.hash);
        let new = sim.pods.len();
        if new < self.desired {
            self.create_new(sim, self.desired - new);
        } else if new > self.desired {
            self.delete(sim, &self.hash.clone(), new - self.desired, |_| true);
        }
    }

    /// `scale` for a paused Deployment: only a single active template is resized; with a
    /// saturated new template the old ones go.
    fn scale_paused(&self, sim: &mut DeploymentSim) {
        let hashes: BTreeSet<String> = sim.pods.iter().map(|p| p.template_hash.clone()).collect();
        if hashes.len() == 1 {
            let hash = hashes.into_iter().next().unwrap_or_default();
            let have = sim.pods.len();
            if have < self.desired {
                if let Some(seed) = sim.pods.first().cloned() {
                    self.create_like(sim, &seed, self.desired - have);
                }
            } else if have > self.desired {
                self.delete(sim, &hash, have - self.desired, |_| true);
            }
        } else if hashes.len() > 1 {
            let new_available = sim
                .pods
                .iter()
                .filter(|p| self.is_new(p) && p.is_available(self.min_ready, self.env.now))
                .count();
            if self.new_count(&sim.pods) == self.desired && new_available == self.desired {
                sim.pods.retain(|p| p.template_hash == self.hash);
            }
        }
    }

    /// `calculateStatus`: counts from the pods, conditions carried over from `base`, and the
    /// Available condition.
    fn calculate_status(
        &self,
        base: &DeploymentStatus,
        sim: &DeploymentSim,
        generation: Option<i64>,
    ) -> DeploymentStatus {
        let total = sim.pods.len();
        let available = self.available(&sim.pods);
        let mut status = DeploymentStatus {
            observed_generation: generation,
            replicas: count(total),
            updated_replicas: count(self.new_count(&sim.pods)),
            ready_replicas: count(sim.pods.iter().filter(|p| p.is_ready()).count()),
            available_replicas: count(available),
            unavailable_replicas: count(total.saturating_sub(available)),
            collision_count: base.collision_count,
            conditions: base.conditions.clone(),
            terminating_replicas: None,
        };
        let now = self.env.now;
        if available + self.fence.unavailable >= self.desired {
            let msg = "Deployment has minimum availability.".to_string();
            set_condition(
                &mut status,
                condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE, msg, now),
            );
        } else {
            let msg = "Deployment does not have minimum availability.".to_string();
            set_condition(
                &mut status,
                condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE, msg, now),
            );
        }
        status
    }

    /// `DeploymentComplete`.
    fn complete(&self, status: &DeploymentStatus, generation: Option<i64>) -> bool {
        let desired = i32::try_from(self.desired).unwrap_or(i32::MAX);
        num(status.updated_replicas) == desired
            && num(status.replicas) == desired
            && num(status.available_replicas) == desired
            && status.observed_generation.unwrap_or(0) >= generation.unwrap_or(0)
    }

    /// `syncRolloutStatus`: estimate progress against `old` (the stored status).
    fn sync_rollout_status(
        &self,
        old: &DeploymentStatus,
        mut new: DeploymentStatus,
        deadline: Option<Duration>,
        generation: Option<i64>,
    ) -> DeploymentStatus {
        let Some(deadline) = deadline else {
            remove_condition(&mut new, PROGRESSING);
            return new;
        };
        let now = self.env.now;
        let current = get_condition(old, PROGRESSING).cloned();
        let is_complete_deployment = num(new.replicas) == num(new.updated_replicas)
            && reason_of(current.as_ref()) == Some(NEW_RS_AVAILABLE);
        if is_complete_deployment {
            return new;
        }
        let rs = self.rs_name();
        if self.complete(&new, generation) {
            let msg = format!("ReplicaSet \"{rs}\" has successfully progressed.");
            set_condition(
                &mut new,
                condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now),
            );
        } else if progressing(old, &new) {
            let msg = format!("ReplicaSet \"{rs}\" is progressing.");
            let mut cond = condition(PROGRESSING, "True", RS_UPDATED, msg, now);
            if let Some(current) = &current {
                if current.status == "True" {
                    cond.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut new, PROGRESSING);
            }
            set_condition(&mut new, cond);
        } else if timed_out(&new, deadline, now) {
            let msg = format!("ReplicaSet \"{rs}\" has timed out progressing.");
            set_condition(
                &mut new,
                condition(PROGRESSING, "False", TIMED_OUT, msg, now),
            );
        }
        new
    }
}

/// `DeploymentProgressing`: more updated, fewer old, more ready or more available replicas.
fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let old_old = num(old.replicas) - num(old.updated_replicas);
    let new_old = num(new.replicas) - num(new.updated_replicas);
    num(new.updated_replicas) > num(old.updated_replicas)
        || new_old < old_old
        || num(new.ready_replicas) > num(old.ready_replicas)
        || num(new.available_replicas) > num(old.available_replicas)
}

/// `DeploymentTimedOut`: no progress since the Progressing condition's last update.
fn timed_out(status: &DeploymentStatus, deadline: Duration, now: SystemTime) -> bool {
    let Some(cond) = get_condition(status, PROGRESSING) else {
        return false;
    };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => cond
            .last_update_time
            .as_ref()
            .is_some_and(|t| from_time(t) + deadline < now),
    }
}

/// `checkPausedConditions`: record a pause or a resume in the Progressing condition.
fn check_paused_conditions(status: &mut DeploymentStatus, paused: bool, now: SystemTime) {
    let reason = reason_of(get_condition(status, PROGRESSING)).map(str::to_string);
    if reason.as_deref() == Some(TIMED_OUT) {
        return;
    }
    let paused_cond_exists = reason.as_deref() == Some(PAUSED);
    if paused && !paused_cond_exists {
        let cond = condition(
            PROGRESSING,
            "Unknown",
            PAUSED,
            "Deployment is paused".into(),
            now,
        );
        set_condition(status, cond);
    } else if !paused && paused_cond_exists {
        let cond = condition(
            PROGRESSING,
            "Unknown",
            RESUMED,
            "Deployment is resumed".into(),
            now,
        );
        set_condition(status, cond);
    }
}

/// One sync of the deployment controller over the simulated pods.
pub fn step(deploy: &Deployment, prev: &DeploymentSim, env: Env<'_>) -> Step {
    let spec = deploy.spec.clone().unwrap_or_default();
    let name = deploy.metadata.name.as_deref().unwrap_or_default();
    let desired = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let generation = deploy.metadata.generation;
    let deadline = progress_deadline(&spec);
    let rollout = Rollout {
        name,
        hash: pod_template_hash(&spec.template),
        template: &spec.template,
        desired,
        fence: fenceposts(&spec, desired),
        min_ready: Duration::from_secs(
            u64::try_from(spec.min_ready_seconds.unwrap_or(0)).unwrap_or(0),
        ),
        env,
    };
    let now = env.now;

    let mut sim = if prev.uid == deploy.metadata.uid {
        prev.clone()
    } else {
        // Keep counting pod names, so no pod of the new Deployment takes an old one's name.
        DeploymentSim {
            uid: deploy.metadata.uid.clone(),
            next_pod: prev.next_pod,
            ..DeploymentSim::default()
        }
    };
    for pod in &mut sim.pods {
        let due = pod.created + env.ready_delay;
        let broken = pod.images.iter().any(|i| env.is_broken(i));
        if pod.ready_at.is_none() && !broken && due <= now {
            pod.ready_at = Some(due);
        }
    }

    // The status as the controller's earlier writes of this sync leave it.
    let mut base = deploy.status.clone().unwrap_or_default();
    let paused = spec.paused.unwrap_or(false);
    if deadline.is_some() {
        check_paused_conditions(&mut base, paused, now);
    }

    let status = if deploy.metadata.deletion_timestamp.is_some() {
        rollout.calculate_status(&base, &sim, generation)
    } else if paused {
        rollout.scale_paused(&mut sim);
        rollout.calculate_status(&base, &sim, generation)
    } else {
        if sim.replica_sets.insert(rollout.hash.clone()) && deadline.is_some() {
            let msg = format!("Created new replica set \"{}\"", rollout.rs_name());
            set_condition(
                &mut base,
                condition(PROGRESSING, "True", NEW_RS_CREATED, msg, now),
            );
            // The controller writes that condition before the new ReplicaSet reports any pod,
            // so its next sync measures progress from zero updated replicas.
            base.updated_replicas = None;
        }
        if is_recreate(&spec) {
            rollout.recreate(&mut sim);
        } else {
            rollout.roll(&mut sim);
        }
        let fresh = rollout.calculate_status(&base, &sim, generation);
        rollout.sync_rollout_status(&base, fresh, deadline, generation)
    };

    let wake = next_wake(&rollout, &sim, &status, deadline, paused);
    Step { status, sim, wake }
}

/// The earliest moment a pod turns ready or available, or the progress deadline passes.
fn next_wake(
    rollout: &Rollout<'_>,
    sim: &DeploymentSim,
    status: &DeploymentStatus,
    deadline: Option<Duration>,
    paused: bool,
) -> Option<SystemTime> {
    let env = rollout.env;
    let pods = sim.pods.iter().filter_map(|p| match p.ready_at {
        None if p.images.iter().any(|i| env.is_broken(i)) => None,
        None => Some(p.created + env.ready_delay),
        Some(at) if at + rollout.min_ready > env.now => Some(at + rollout.min_ready),
        Some(_) => None,
    });
    let stuck = deadline.filter(|_| !paused).and_then(|deadline| {
        let cond = get_condition(status, PROGRESSING)?;
        match cond.reason.as_deref() {
            Some(NEW_RS_AVAILABLE | TIMED_OUT | PAUSED) => None,
            // The controller compares whole seconds strictly, so look one second later.
            _ => {
                Some(from_time(cond.last_update_time.as_ref()?) + deadline + Duration::from_secs(1))
            }
        }
    });
    pods.chain(stuck).min()
}

#[cfg(test)]
mod tests;
