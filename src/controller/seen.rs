//! What the controller has seen: the reflector caches of the objects Sluice generates and of the
//! apex Services, and the pure decisions that let a reconcile at rest read and write nothing.
//!
//! ```text
//! watch Services (all) ──────────► Store<Service>    ─┐  apex read, "Services already there"
//! watch app-primary (managed-by) ─► Store<Deployment> ├► reconcile ─► skip DELETE of an absent app-primary
//! watch routes (managed-by) ─────► Store<route>      ─┘             skip a route write already there
//! watch HPAs (all) ───────────────► Store<HPA> ──────────► EnsurePrimary: which HPA scales app
//! ```
//!
//! The caches are fed by the same watch streams that wake the controller ([`run`](super::run)),
//! so every change that could make a cached answer stale is followed by another reconcile of the
//! Deployment it belongs to. That is what keeps DESIGN §7.3 crash-safety: a stale cache may
//! cause one extra idempotent write or read, never a missed one, because the event that makes it
//! current reconciles again. On top of that:
//!
//! In every phase, **the generated Services** (`app-primary`, `app-canary`) and **the
//! `app-primary` Deployment** (when no HPA copy owns its replicas) are not applied when the
//! cached object already holds every field Sluice would apply ([`holds`]): they carry no
//! weight, so a cache behind Sluice's own write costs one extra apply, and a change behind the
//! cache wakes the Deployment again (the primary's own watch is one of the controller's). Inside
//! a rollout they were three of the ~7 requests of every pass. A field Sluice stopped applying
//! (an older Sluice's field) is not removed by that rule; server-side apply would remove it on
//! the next write that does happen.
//!
//! **The apex Service and `app-primary`** are read from the caches in every phase when the
//! cached copy is at the resourceVersion this process last knew from the API server itself
//! ([`Known`]: the answer to its own write, or its last read) — a copy at that version is not
//! behind anything Sluice did or saw, and a later change by anyone else is a watch event
//! that updates the copy (and wakes the Deployment). Otherwise they are read from the API
//! server, and that read becomes the version known. Inside a rollout this is what keeps a pass
//! from deciding on a copy older than Sluice's own last write: a cache still showing the apex
//! before Sluice pointed it at the primary would make the restore at the end a no-op and leave
//! the apex on a primary about to be deleted. So a pass reads the apex after Sluice wrote it,
//! and the primary after the Deployment controller updated its status, once each; a steady
//! pass reads neither. At rest the apex is also taken from the cache at any version (the only
//! apex write at rest is the restore, which a stale copy repeats, never skips).
//!
//! Everything else only between two statuses at rest (`Initialized`, `Succeeded`, `Failed`):
//! while a rollout runs, or in the pass that starts or ends one, it is read from the API server and
//! every write goes through its comparison there, because a cache lagging behind Sluice's own
//! last route write could hide the next write for as long as the watch event takes, and
//! traffic would follow the old weight meanwhile (DESIGN §7 invariant 1). At rest:
//!
//! - **The apex Service** is read from the cache; when the cache has none (or has not synced
//!   yet), it is read from the API server, so a stale cache never turns into a `Blocked` status.
//! - **`app-primary`** is taken as absent when the synced cache has none (no primary exists at
//!   rest).
//! - **DELETE of `app-primary`** is skipped when the primary observed above is absent (a
//!   primary created behind a stale cache wakes this Deployment again, which then deletes it).
//! - **The route** is not written when the cached route of the router's kind is up to date by
//!   that router's own comparison and no route of another kind that Sluice wrote for the
//!   Deployment is cached (the router's one-time sweep of leftovers then has nothing to do).
//!   A route kind first served after start has no cache, so routes of that kind go through the
//!   router as before.
//!
//! **The HPAs** are read from their cache in every phase (listed only until it has synced):
//! which HPA scales `app` decides whether `app-primary` gets a copy. Their watch wakes no
//! reconcile, so an HPA created, changed or deleted mid-rollout is taken up at the next pass,
//! within one interval, as when each pass listed them. The replicas an HPA copy leaves to the
//! HPA are still read from the API server (the primary's resourceVersion guards that apply).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::Value;

use super::status::Phase;
use crate::policy::values::RouterKind;
use crate::routing::{RouteTarget, Weights, gateway, smi};

/// The controller's caches of Services, generated Deployments and routes (one per route kind
/// served at start).
#[derive(Clone)]
pub struct Seen {
    /// Every Service: the apex Services and the generated `app-primary` / `app-canary`.
    pub services: Store<Service>,
    /// Deployments labelled `app.kubernetes.io/managed-by: sluice`: the `app-primary`s.
    pub primaries: Store<Deployment>,
    /// Routes labelled `app.kubernetes.io/managed-by: sluice`, per route resource.
    pub routes: Vec<(ApiResource, Store<DynamicObject>)>,
    /// Every HorizontalPodAutoscaler (autoscaling/v2): which one scales `app`, to copy.
    pub hpas: Store<HorizontalPodAutoscaler>,
    /// The versions of the apex Services and `app-primary`s this process last knew.
    pub known: Known,
    /// The apex Services not named after their Deployment (`sluice.dev/service`), so that a
    /// change to one wakes its Deployment as a same-named apex's does.
    pub apexes: CustomApexes,
}

/// Which Deployments use an apex Service of another name, as each one's last pass resolved it
/// (Deployment, Namespace and cluster policy). In memory only: a new process learns each at
/// its first pass, which every Deployment gets when the controller starts.
#[derive(Clone, Default)]
pub struct CustomApexes(Arc<Mutex<HashMap<(String, String), String>>>);

impl CustomApexes {
    /// Deployment `ns/deployment` uses the apex Service `apex`.
    pub fn note(&self, ns: &str, deployment: &str, apex: &str) {
        let key = (ns.to_string(), deployment.to_string());
        let mut apexes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if apex == deployment {
            apexes.remove(&key);
        } else if apexes.get(&key).map(String::as_str) != Some(apex) {
            apexes.insert(key, apex.to_string());
        }
    }

    /// Deployment `ns/deployment` is gone.
    pub fn forget(&self, ns: &str, deployment: &str) {
        let mut apexes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        apexes.remove(&(ns.to_string(), deployment.to_string()));
    }

    /// The Deployments of `ns` whose apex is the Service `service` under another name.
    pub fn deployments_of(&self, ns: &str, service: &str) -> Vec<String> {
        let apexes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        apexes
            .iter()
            .filter(|((n, _), apex)| n == ns && apex.as_str() == service)
            .map(|((_, d), _)| d.clone())
            .collect()
    }
}

/// Which object a [`Known`] version is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KnownKind {
    Apex,
    Primary,
}

/// The resourceVersion at which this process last knew each apex Service and `app-primary`
/// from the API server itself: the answer to its own write, or its own read. Kept in memory
/// only: a new process knows nothing and reads once. An entry per managed Deployment at most
/// (`app-primary`'s is dropped with it).
#[derive(Clone, Default)]
pub struct Known(Arc<Mutex<HashMap<KnownKey, String>>>);

/// An object a version is known of: kind, namespace, name.
type KnownKey = (KnownKind, String, String);

impl Known {
    /// Records that `ns/name` was at `version` on the API server (`None`: absent).
    pub fn record(&self, kind: KnownKind, ns: &str, name: &str, version: Option<&str>) {
        let key = (kind, ns.to_string(), name.to_string());
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match version {
            Some(v) => known.insert(key, v.to_string()),
            None => known.remove(&key),
        };
    }

    /// Records the version of `obj` as just read or written.
    pub fn saw<K: kube::Resource>(&self, kind: KnownKind, obj: &K) {
        let meta = obj.meta();
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        self.record(kind, ns, name, meta.resource_version.as_deref());
    }

    /// The version of `ns/name` last known, if any.
    pub fn version(&self, kind: KnownKind, ns: &str, name: &str) -> Option<String> {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(&(kind, ns.to_string(), name.to_string()))
            .cloned()
    }
}

/// Whether a cached copy may answer a pass: at the version this process last knew it, or, when
/// `any_version` (the apex at rest), at any version.
pub fn trust_cached(any_version: bool, cached: Option<&str>, known: Option<&str>) -> bool {
    any_version || cached.is_some_and(|c| known == Some(c))
}

/// Whether a store has seen its initial list (a store that has not is no evidence of absence).
pub fn synced<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

impl Seen {
    /// The cached Service `ns/name`; `None` when it is not cached or the cache has not synced.
    pub fn service(&self, ns: &str, name: &str) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(name).within(ns))
    }

    /// Whether the Service cache has synced.
    pub fn services_synced(&self) -> bool {
        synced(&self.services)
    }

    /// The cached `app-primary` Deployment `ns/name`; `None` when it is not cached.
    pub fn primary(&self, ns: &str, name: &str) -> Option<Arc<Deployment>> {
        self.primaries.get(&ObjectRef::new(name).within(ns))
    }

    /// The cached HPAs in namespace `ns`; `None` until the cache has synced.
    pub fn hpas_in(&self, ns: &str) -> Option<Vec<Arc<HorizontalPodAutoscaler>>> {
        synced(&self.hpas).then(|| {
            self.hpas
                .state()
                .into_iter()
                .filter(|h| h.metadata.namespace.as_deref() == Some(ns))
                .collect()
        })
    }

    /// `cached` when it may answer this pass: at the version this process last knew of it, or at
    /// any version when `any_version` (the apex at rest).
    pub fn answers<K: kube::Resource>(
        &self,
        cached: Option<Arc<K>>,
        kind: KnownKind,
        any_version: bool,
    ) -> Option<Arc<K>> {
        cached.filter(|c| {
            let meta = c.meta();
            let (ns, name) = (meta.namespace.as_deref(), meta.name.as_deref());
            let known = self
                .known
                .version(kind, ns.unwrap_or_default(), name.unwrap_or_default());
            trust_cached(
                any_version,
                meta.resource_version.as_deref(),
                known.as_deref(),
            )
        })
    }

    /// Whether the synced primary cache has no Deployment `ns/name`.
    pub fn primary_absent(&self, ns: &str, name: &str) -> bool {
        synced(&self.primaries)
            && self
                .primaries
                .get(&ObjectRef::new(name).within(ns))
                .is_none()
    }

    /// The cached routes for `target`, per route resource (`None` where none is cached), as JSON.
    fn routes_of(&self, target: &RouteTarget) -> Option<Vec<(ApiResource, Option<Value>)>> {
        self.routes
            .iter()
            .map(|(resource, store)| {
                if !synced(store) {
                    return None;
                }
                let key =
                    ObjectRef::new_with(&target.name, resource.clone()).within(&target.namespace);
                let cached = store
                    .get(&key)
                    .and_then(|obj| serde_json::to_value(obj.as_ref()).ok());
                Some((resource.clone(), cached))
            })
            .collect()
    }

    /// Whether the route of `target` is cached exactly as `weights` would write it and no other
    /// kind's route of Sluice's is left for the router to sweep.
    pub fn route_is_current(&self, target: &RouteTarget, weights: Weights) -> bool {
        self.routes_of(target)
            .is_some_and(|cached| route_is_current(&cached, target, weights))
    }
}

/// Whether `phase` is a status at rest, where no `app-primary` should exist.
pub fn at_rest(phase: Option<Phase>) -> bool {
    matches!(
        phase,
        Some(Phase::Initialized | Phase::Succeeded | Phase::Failed)
    )
}

/// Whether the primary may be taken as absent from the cache without asking the API server:
/// only at rest, and only when the synced cache has none.
pub fn trust_absent_primary(phase: Option<Phase>, cache_says_absent: bool) -> bool {
    at_rest(phase) && cache_says_absent
}

/// Whether `current` already holds `desired`: every field of `desired` is in `current` with the
/// same value (objects compared key by key, lists element by element with the same length,
/// fields only `current` has ignored: server defaults, other managers' fields).
pub fn holds(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (Value::Object(c), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| c.get(k).is_some_and(|cv| holds(cv, dv))),
        (Value::Array(c), Value::Array(d)) => {
            c.len() == d.len() && c.iter().zip(d).all(|(cv, dv)| holds(cv, dv))
        }
        (c, d) => c == d,
    }
}

/// Whether the cached object `current` (a generated Service, `app-primary`) already holds the
/// object Sluice would apply.
pub fn is_current<K: serde::Serialize>(current: Option<&K>, desired: &K) -> bool {
    let (Some(current), Ok(desired)) = (current, serde_json::to_value(desired)) else {
        return false;
    };
    serde_json::to_value(current).is_ok_and(|c| holds(&c, &desired))
}

/// The router kind whose routes `resource` holds.
fn router_of(resource: &ApiResource) -> Option<RouterKind> {
    match (resource.group.as_str(), resource.kind.as_str()) {
        (smi::GROUP, smi::KIND) => Some(RouterKind::Smi),
        (gateway::GROUP, gateway::KIND) => Some(RouterKind::GatewayApi),
        _ => None,
    }
}

/// The route `target` should be, in `resource`'s version; `None` when it cannot be built.
fn desired_route(resource: &ApiResource, target: &RouteTarget, weights: Weights) -> Option<Value> {
    match router_of(resource)? {
        RouterKind::Smi => smi::SmiVersion::PREFERRED
            .into_iter()
            .find(|v| v.as_str() == resource.version)
            .map(|v| smi::desired_trafficsplit(target, weights, v)),
        RouterKind::GatewayApi => gateway::desired_httproute(target, weights).ok(),
        RouterKind::Nginx => None,
    }
}

/// Whether `current` is a route Sluice wrote for `target`'s Deployment (owner and label).
fn is_ours(current: &Value, target: &RouteTarget) -> bool {
    current["metadata"]["labels"][super::objects::MANAGED_BY_LABEL] == super::objects::MANAGED_BY
        && current["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == target.owner.uid.as_str()))
}

/// Given the cached route of `target` per route resource, whether nothing is to be written:
/// the route of `target.router`'s kind is up to date for `weights` by that router's comparison,
/// and no route of another kind that Sluice wrote for the Deployment is left.
pub fn route_is_current(
    cached: &[(ApiResource, Option<Value>)],
    target: &RouteTarget,
    weights: Weights,
) -> bool {
    let mut current = false;
    for (resource, route) in cached {
        let Some(kind) = router_of(resource) else {
            continue;
        };
        match (kind == target.router, route) {
            (true, Some(route)) => {
                current = desired_route(resource, target, weights).is_some_and(|d| match kind {
                    RouterKind::Smi => smi::is_up_to_date(route, &d),
                    _ => gateway::is_up_to_date(route, &d),
                });
                if !current {
                    return false;
                }
            }
            (false, Some(route)) if is_ours(route, target) => return false,
            _ => {}
        }
    }
    current
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_custom_apex_is_found_by_its_service_until_the_deployment_names_its_own_again() {
        let apexes = CustomApexes::default();
        apexes.note("shop", "web", "web-apex");
        apexes.note("shop", "api", "api");
        apexes.note("other", "web", "web-apex");
        assert_eq!(apexes.deployments_of("shop", "web-apex"), ["web"]);
        assert!(apexes.deployments_of("shop", "api").is_empty());
        apexes.note("shop", "web", "web");
        assert!(apexes.deployments_of("shop", "web-apex").is_empty());
        apexes.forget("other", "web");
        assert!(apexes.deployments_of("other", "web-apex").is_empty());
    }

    use serde_json::json;

    use super::*;
    use crate::routing::mk_target;

    #[test]
    fn a_cached_copy_answers_only_at_the_version_last_known_unless_any_will_do() {
        // Sluice wrote the apex (version 12); the watch has not delivered it yet.
        assert!(!trust_cached(false, Some("11"), Some("12")));
        // It has: the copy is the write's answer.
        assert!(trust_cached(false, Some("12"), Some("12")));
        // Someone else wrote after Sluice's read: the copy is newer, and it is read once more.
        assert!(!trust_cached(false, Some("13"), Some("12")));
        // A new process knows no version: it reads once.
        assert!(!trust_cached(false, Some("12"), None));
        assert!(!trust_cached(false, None, None));
        // The apex at rest: any cached version.
        assert!(trust_cached(true, Some("11"), Some("12")));
    }

    #[test]
    fn known_versions_are_per_kind_and_object_and_absence_forgets() {
        let known = Known::default();
        known.record(KnownKind::Apex, "shop", "web", Some("7"));
        known.record(KnownKind::Primary, "shop", "web", Some("9"));
        assert_eq!(
            known.version(KnownKind::Apex, "shop", "web").as_deref(),
            Some("7")
        );
        assert_eq!(
            known.version(KnownKind::Primary, "shop", "web").as_deref(),
            Some("9")
        );
        assert_eq!(known.version(KnownKind::Apex, "other", "web"), None);
        known.record(KnownKind::Primary, "shop", "web", None);
        assert_eq!(known.version(KnownKind::Primary, "shop", "web"), None);
        assert!(known.version(KnownKind::Apex, "shop", "web").is_some());
    }

    fn split_v2() -> ApiResource {
        smi::SmiVersion::V1Alpha2.api_resource()
    }

    #[test]
    fn a_value_holds_what_it_contains_and_ignores_fields_only_it_has() {
        let current = json!({"a": 1, "b": {"c": [ {"x": 1, "y": 2} ], "d": "z"}});
        assert!(holds(&current, &json!({"b": {"c": [ {"x": 1} ]}})));
        assert!(!holds(&current, &json!({"b": {"c": [ {"x": 2} ]}})));
        assert!(!holds(&current, &json!({"e": 1})));
        assert!(
            !holds(&current, &json!({"b": {"c": [ {"x": 1}, {"x": 1} ]}})),
            "a list with another length is not held"
        );
    }

    #[test]
    fn a_generated_service_with_server_defaults_is_current_and_one_with_another_selector_is_not() {
        let desired: Service = serde_json::from_value(json!({
            "metadata": {"name": "web-primary", "namespace": "shop",
                         "labels": {"app.kubernetes.io/managed-by": "sluice"}},
            "spec": {"type": "ClusterIP", "selector": {"app": "web-primary"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }))
        .unwrap();
        let mut stored = serde_json::to_value(&desired).unwrap();
        stored["metadata"]["resourceVersion"] = json!("7");
        stored["spec"]["clusterIP"] = json!("10.0.0.7");
        stored["spec"]["ports"][0]["protocol"] = json!("TCP");
        let stored: Service = serde_json::from_value(stored).unwrap();
        assert!(is_current(Some(&stored), &desired));

        let mut other = stored.clone();
        other.spec.as_mut().unwrap().selector =
            Some([("app".to_string(), "web".to_string())].into());
        assert!(!is_current(Some(&other), &desired));
        assert!(!is_current(None, &desired));
    }

    #[test]
    fn the_primary_is_taken_as_absent_from_the_cache_only_at_rest() {
        for phase in [Phase::Initialized, Phase::Succeeded, Phase::Failed] {
            assert!(trust_absent_primary(Some(phase), true));
            assert!(!trust_absent_primary(Some(phase), false));
        }
        for phase in [
            Phase::Preparing,
            Phase::Progressing,
            Phase::Promoting,
            Phase::RollingBack,
            Phase::Paused,
            Phase::WaitingPromotion,
            Phase::Blocked,
        ] {
            assert!(!trust_absent_primary(Some(phase), true), "{phase:?}");
        }
        assert!(!trust_absent_primary(None, true), "no status yet");
    }

    #[test]
    fn a_cached_route_with_the_same_weights_needs_no_write() {
        let t = mk_target(RouterKind::Smi);
        let stored = smi::desired_trafficsplit(&t, Weights::AT_REST, smi::SmiVersion::V1Alpha2);
        let cached = [(split_v2(), Some(stored))];
        assert!(route_is_current(&cached, &t, Weights::AT_REST));
        assert!(!route_is_current(&cached, &t, Weights::canary(10).unwrap()));
    }

    #[test]
    fn an_absent_route_or_one_owned_by_another_deployment_is_written() {
        let t = mk_target(RouterKind::Smi);
        assert!(!route_is_current(
            &[(split_v2(), None)],
            &t,
            Weights::AT_REST
        ));
        let mut stored = smi::desired_trafficsplit(&t, Weights::AT_REST, smi::SmiVersion::V1Alpha2);
        stored["metadata"]["ownerReferences"][0]["uid"] = json!("uid-2");
        assert!(!route_is_current(
            &[(split_v2(), Some(stored))],
            &t,
            Weights::AT_REST
        ));
        assert!(!route_is_current(&[], &t, Weights::AT_REST), "no cache");
    }

    #[test]
    fn a_leftover_route_of_another_kind_goes_through_the_router_to_be_swept() {
        let t = mk_target(RouterKind::GatewayApi);
        let route = gateway::desired_httproute(&t, Weights::AT_REST).unwrap();
        let leftover = smi::desired_trafficsplit(&t, Weights::AT_REST, smi::SmiVersion::V1Alpha2);
        let only = [(gateway::api_resource(), Some(route.clone()))];
        assert!(route_is_current(&only, &t, Weights::AT_REST));
        let both = [
            (gateway::api_resource(), Some(route)),
            (split_v2(), Some(leftover)),
        ];
        assert!(!route_is_current(&both, &t, Weights::AT_REST));
    }
}
