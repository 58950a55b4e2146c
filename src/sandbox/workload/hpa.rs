//! The sandbox's HorizontalPodAutoscaler controller: scales the Deployments that
//! `autoscaling/v2` HPAs target, as kube-controller-manager's HPA controller does, so the
//! end-to-end tests can see the replicas of `app` and `app-primary` follow their HPAs.
//!
//! ```text
//! watch HPAs (cache) ── the changed one ─┐
//! every SYNC_PERIOD ───── all of them ────┴► GET deployments/NAME/scale ─► decide (pure)
//!                                 PUT deployments/NAME/scale (resourceVersion) ◄─┤
//!                                 PATCH horizontalpodautoscalers/NAME/status ◄───┘
//! ```
//!
//! It talks to the cluster only through a `kube::Client` built for
//! [`Identity::HpaController`](crate::sandbox::apiserver::Identity::HpaController)
//! (`system:serviceaccount:kube-system:horizontal-pod-autoscaler`), the identity the real
//! controller scales as, so admission webhooks judge its writes as they would on a cluster.
//! Sluice's own webhooks let it scale `app-primary`: their rules name `deployments`, which
//! does not match the `deployments/scale` subresource, and the enforcement lets every
//! `system:serviceaccount:kube-system:*` user edit generated objects anyway
//! (`webhook::admit::enforce`; the HPA scenario of `tests/rollout/bluegreen.rs` runs it).
//! Scaling goes through the `scale` subresource with the resourceVersion it read, as the
//! real controller's `UpdateScale` does: a write that lost a race is not retried blindly, the
//! next sync reads again. Like the real controller it does not watch Deployments: a target
//! scaled out of range by someone else is brought back within [`SYNC_PERIOD`], and a fleet
//! with no HPAs costs the API server one idle watch.
//!
//! What it decides is the real controller's first branch, the one that needs no metrics:
//! - a target at 0 replicas while `minReplicas` is not 0 has autoscaling disabled: untouched;
//! - above `maxReplicas` it is scaled to `maxReplicas`, below `minReplicas` (default 1) to
//!   `minReplicas`, with no `behavior` applied (the real controller applies none here either);
//! - within range it stays where it is. The sandbox's pods use no CPU or memory, so any
//!   utilisation would be a number the simulator made up; within range, this controller acts
//!   like a real one whose metrics API answers nothing. The min/max clamp is deterministic,
//!   which is what the tests need: raising an HPA's `minReplicas` above its target's replicas
//!   scales the target up at once.
//!
//! It writes `status.currentReplicas` (the target's `spec.replicas` it found),
//! `desiredReplicas`, `observedGeneration`, and `lastScaleTime` when it scaled.
//!
//! Where it knowingly differs from a real cluster:
//! - It syncs an HPA when it changes and every second, not every 15 s.
//! - Only `apps/v1` Deployments are scaled (the sandbox serves no other scalable kind); an
//!   HPA aimed at anything else, or at a Deployment that does not exist, is left alone with
//!   its status untouched (the real controller sets condition `AbleToScale` false).
//! - No `conditions`, no `currentMetrics`, no Events.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// How often every HPA is synced besides when it changes (kube-controller-manager's
/// `--horizontal-pod-autoscaler-sync-period` is 15 s; the tests' rollouts last seconds).
pub const SYNC_PERIOD: Duration = Duration::from_secs(1);

/// The field manager of its writes, as kube-controller-manager's.
const FIELD_MANAGER: &str = "kube-controller-manager";

/// What one sync of an HPA decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The replicas to scale the target to, if they change.
    pub scale_to: Option<i32>,
    /// The HPA's `status` fields to write (a merge patch body under `status`).
    pub status: Value,
}

/// The name of the Deployment `hpa` scales, if it targets one (`apps/v1`, the only kind the
/// sandbox scales).
pub fn targets_deployment(hpa: &HorizontalPodAutoscaler) -> Option<&str> {
    let target = &hpa.spec.as_ref()?.scale_target_ref;
    let apps = target.api_version.as_deref().is_none_or(|v| v == "apps/v1");
    (target.kind == "Deployment" && apps).then_some(target.name.as_str())
}

/// The replicas the HPA controller wants for a target at `current` replicas (its scale's
/// `spec.replicas`), from `minReplicas`/`maxReplicas` alone; `None` when autoscaling is
/// disabled (0 replicas while the minimum is not 0).
pub fn desired_replicas(min: Option<i32>, max: i32, current: i32) -> Option<i32> {
    let min = min.unwrap_or(1);
    if current == 0 && min != 0 {
        return None;
    }
    Some(if current > max {
        max
    } else if current < min {
        min
    } else {
        current
    })
}

/// One sync of `hpa` against its target's `scale`, at `now`.
pub fn decide(hpa: &HorizontalPodAutoscaler, scale: &Scale, now: SystemTime) -> Decision {
    let spec = hpa.spec.as_ref();
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let desired = spec
        .and_then(|s| desired_replicas(s.min_replicas, s.max_replicas, current))
        .unwrap_or(current);
    let scale_to = (desired != current).then_some(desired);
    let mut status = json!({
        "observedGeneration": hpa.metadata.generation,
        "currentReplicas": current,
        "desiredReplicas": desired,
    });
    if scale_to.is_some() {
        status["lastScaleTime"] = json!(humantime::format_rfc3339_seconds(now).to_string());
    }
    Decision { scale_to, status }
}

/// Whether writing `status` would change any field of `hpa`'s stored status.
fn changes(hpa: &HorizontalPodAutoscaler, status: &Value) -> bool {
    let stored = hpa
        .status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| json!({}));
    status.as_object().is_some_and(|fields| {
        fields
            .iter()
            .any(|(k, v)| stored.get(k).unwrap_or(&Value::Null) != v)
    })
}

/// A running HPA controller (cheap to clone; every clone drives the same task).
#[derive(Clone)]
pub struct HpaController {
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl HpaController {
    /// Starts watching HPAs through `client` (which should act as
    /// [`Identity::HpaController`](crate::sandbox::apiserver::Identity::HpaController)) and
    /// scaling the targets (spawns a task on the current tokio runtime).
    pub fn start(client: kube::Client) -> HpaController {
        let task = tokio::spawn(run(client));
        HpaController {
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Stops the controller.
    pub fn shutdown(&self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

async fn run(client: kube::Client) {
    let (hpas, writer) = reflector::store::<HorizontalPodAutoscaler>();
    let mut changed = reflector::reflector(
        writer,
        watcher(Api::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .applied_objects()
    .boxed();
    let mut resync = tokio::time::interval(SYNC_PERIOD);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due: Vec<Arc<HorizontalPodAutoscaler>> = tokio::select! {
            hpa = changed.try_next() => match hpa {
                Ok(Some(hpa)) => vec![Arc::new(hpa)],
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "sandbox HPA controller's watch failed; retrying");
                    Vec::new()
                }
            },
            _ = resync.tick() => hpas.state(),
        };
        for hpa in due {
            sync(&client, &hpa).await;
        }
    }
}

/// Reads the target's scale, scales it if the HPA says so, and writes the HPA's status.
async fn sync(client: &kube::Client, hpa: &HorizontalPodAutoscaler) {
    let Some(target) = targets_deployment(hpa) else {
        return;
    };
    let ns = hpa.namespace().unwrap_or_default();
    let name = hpa.name_any();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let scale = match deployments.get_scale(target).await {
        Ok(scale) => scale,
        Err(kube::Error::Api(e)) if e.code == 404 => return,
        Err(err) => {
            tracing::warn!(namespace = %ns, hpa = %name, deployment = %target, error = %err,
                "sandbox HPA controller could not read the scale; the next sync retries");
            return;
        }
    };
    let decision = decide(hpa, &scale, SystemTime::now());
    if let Some(replicas) = decision.scale_to {
        let mut wanted = scale.clone();
        if let Some(spec) = wanted.spec.as_mut() {
            spec.replicas = Some(replicas);
        }
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        match deployments.replace_scale(target, &pp, &wanted).await {
            Ok(_) => {}
            // The Deployment changed since the read: the next sync reads it again.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::debug!(namespace = %ns, hpa = %name, deployment = %target,
                    "sandbox HPA controller lost a race to scale the Deployment; the next sync reads it again");
                return;
            }
            Err(err) => {
                tracing::warn!(namespace = %ns, hpa = %name, deployment = %target, replicas,
                    error = %err, "sandbox HPA controller could not scale the Deployment; the next sync retries");
                return;
            }
        }
    }
    if !changes(hpa, &decision.status) {
        return;
    }
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let patch = Patch::Merge(json!({ "status": decision.status }));
    if let Err(err) = hpas.patch_status(&name, &pp, &patch).await {
        tracing::warn!(namespace = %ns, hpa = %name, error = %err,
            "sandbox HPA controller could not write the HPA status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v1::ScaleSpec;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerStatus;

    fn hpa(min: Option<i32>, max: i32) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "generation": 3},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": min, "maxReplicas": max,
            }
        }))
        .unwrap()
    }

    fn scale(replicas: i32) -> Scale {
        Scale {
            spec: Some(ScaleSpec {
                replicas: Some(replicas),
            }),
            ..Scale::default()
        }
    }

    #[test]
    fn replicas_below_the_minimum_are_raised_to_it_and_above_the_maximum_lowered() {
        assert_eq!(desired_replicas(Some(3), 5, 2), Some(3));
        assert_eq!(desired_replicas(Some(3), 5, 7), Some(5));
        assert_eq!(desired_replicas(Some(3), 5, 4), Some(4));
    }

    #[test]
    fn the_minimum_defaults_to_one_and_zero_replicas_disable_autoscaling() {
        assert_eq!(desired_replicas(None, 5, 0), None);
        assert_eq!(desired_replicas(Some(0), 5, 0), Some(0));
        assert_eq!(desired_replicas(None, 5, 1), Some(1));
    }

    #[test]
    fn a_target_below_the_minimum_is_scaled_and_the_status_says_from_what_to_what() {
        let now = SystemTime::UNIX_EPOCH;
        let d = decide(&hpa(Some(4), 6), &scale(2), now);
        assert_eq!(d.scale_to, Some(4));
        assert_eq!(
            d.status,
            json!({"observedGeneration": 3, "currentReplicas": 2, "desiredReplicas": 4,
                   "lastScaleTime": "1970-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn a_target_in_range_is_left_where_it_is_with_no_scale_time() {
        let d = decide(&hpa(Some(2), 6), &scale(3), SystemTime::now());
        assert_eq!(d.scale_to, None);
        assert_eq!(
            d.status,
            json!({"observedGeneration": 3, "currentReplicas": 3, "desiredReplicas": 3})
        );
    }

    #[test]
    fn a_disabled_target_is_not_scaled() {
        let d = decide(&hpa(None, 6), &scale(0), SystemTime::now());
        assert_eq!(d.scale_to, None);
        assert_eq!(d.status["desiredReplicas"], 0);
    }

    #[test]
    fn only_apps_v1_deployments_are_targets() {
        assert_eq!(targets_deployment(&hpa(None, 2)), Some("web"));
        let mut other = hpa(None, 2);
        other.spec.as_mut().unwrap().scale_target_ref.kind = "StatefulSet".into();
        assert_eq!(targets_deployment(&other), None);
        let mut old = hpa(None, 2);
        old.spec.as_mut().unwrap().scale_target_ref.api_version = Some("extensions/v1beta1".into());
        assert_eq!(targets_deployment(&old), None);
    }

    #[test]
    fn a_status_already_written_is_not_written_again() {
        let mut h = hpa(Some(2), 6);
        let d = decide(&h, &scale(3), SystemTime::now());
        assert!(changes(&h, &d.status));
        h.status = Some(HorizontalPodAutoscalerStatus {
            observed_generation: Some(3),
            current_replicas: Some(3),
            desired_replicas: 3,
            ..HorizontalPodAutoscalerStatus::default()
        });
        assert!(!changes(&h, &d.status));
    }
}
