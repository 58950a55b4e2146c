//! What the webhook knows about the cluster besides the review: caches only, never an API call
//! on the admission path (DESIGN §1, §7.4).
//!
//! ```text
//! Namespace reflector ───────┐
//! sluice-policy reflector ───┼─► NamespaceCache ─► synced? labels, annotations, cluster policy
//! break-glass channel ◄──────┤        (record_break_glass: try_send, never waits)
//! AnyRouter's discovery ─────┘        route APIs served, as last discovered
//!                                     (unserved: rediscover_soon, on a background task)
//! ```
//!
//! Choices where DESIGN.md is silent:
//! - The view is synced only when every cache it reads has listed once; a cache built without
//!   a policy store ([`NamespaceCache::new`]) states that the cluster has no policy level.
//! - Break-glass records leave through a bounded channel; when it is full the record is
//!   dropped with a warning in the log (the log line of the admission itself is always written).
//! - Route discovery comes from the routers' own cache (discovered at start, and again by the
//!   controller while a Deployment is Blocked). A view without routers knows nothing about it,
//!   and nothing is refused for that reason. When the view finds an API unserved, it asks the
//!   routers to discover again in the background, so installing the CRDs is seen within
//!   seconds by the next admission, without a call on the admission path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc;

use super::admit::audit::BreakGlass;
use crate::policy::values::RouterKind;
use crate::routing::{AnyRouter, Discovery, served};

/// The name of the cluster policy ConfigMap in Sluice's namespace (DESIGN §2).
pub const POLICY_CONFIGMAP: &str = "sluice-policy";

/// The cluster state admission decisions read. Implementations answer from memory.
pub trait ClusterView: Send + Sync {
    /// Whether the caches have completed their first list; until then nothing is known.
    fn synced(&self) -> bool;
    /// The labels of namespace `ns`, or `None` when the cache does not know it.
    fn namespace_labels(&self, ns: &str) -> Option<BTreeMap<String, String>>;
    /// The annotations of namespace `ns` (its policy layer), or `None` when the cache does not
    /// know it.
    fn namespace_annotations(&self, ns: &str) -> Option<BTreeMap<String, String>>;
    /// The `sluice-policy` ConfigMap's data, or `None` when there is no such ConfigMap.
    fn cluster_policy(&self) -> Option<BTreeMap<String, String>>;
    /// Hands a break-glass admission over to be recorded as an Event, without waiting.
    fn record_break_glass(&self, record: BreakGlass);
    /// The route APIs the cluster serves, as last discovered; `None` when not known.
    fn route_discovery(&self) -> Option<Discovery>;
}

/// A [`ClusterView`] over the controller's reflectors: Namespaces and, when given, the
/// `sluice-policy` ConfigMap.
pub struct NamespaceCache {
    store: Store<Namespace>,
    /// The policy store and Sluice's namespace; `None`: the cluster has no policy level.
    policy: Option<(Store<ConfigMap>, String)>,
    audit: Option<mpsc::Sender<BreakGlass>>,
    routes: Option<AnyRouter>,
    ready: AtomicBool,
}

impl NamespaceCache {
    /// Reads `store`, which the controller's reflector fills.
    pub fn new(store: Store<Namespace>) -> Self {
        Self {
            store,
            policy: None,
            audit: None,
            routes: None,
            ready: AtomicBool::new(false),
        }
    }

    /// Also reads the `sluice-policy` ConfigMap of `namespace` from `store`.
    pub fn with_policy(self, store: Store<ConfigMap>, namespace: &str) -> Self {
        Self {
            policy: Some((store, namespace.to_string())),
            ..self
        }
    }

    /// Judges `sluice.dev/router` by what `routes` discovered.
    pub fn with_routes(self, routes: AnyRouter) -> Self {
        Self {
            routes: Some(routes),
            ..self
        }
    }

    /// Sends break-glass records to `audit` (see [`super::admit::audit::record_events`]).
    pub fn with_audit(self, audit: mpsc::Sender<BreakGlass>) -> Self {
        Self {
            audit: Some(audit),
            ..self
        }
    }
}

/// Readiness is a one-shot; polling it once never blocks.
fn store_ready<K: kube::Resource + Clone>(store: &Store<K>) -> bool
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

impl ClusterView for NamespaceCache {
    fn synced(&self) -> bool {
        if self.ready.load(Ordering::Acquire) {
            return true;
        }
        let ready = store_ready(&self.store)
            && self
                .policy
                .as_ref()
                .is_none_or(|(store, _)| store_ready(store));
        if ready {
            self.ready.store(true, Ordering::Release);
        }
        ready
    }

    fn namespace_labels(&self, ns: &str) -> Option<BTreeMap<String, String>> {
        self.store
            .get(&ObjectRef::new(ns))
            .map(|n| n.metadata.labels.clone().unwrap_or_default())
    }

    fn namespace_annotations(&self, ns: &str) -> Option<BTreeMap<String, String>> {
        self.store
            .get(&ObjectRef::new(ns))
            .map(|n| n.metadata.annotations.clone().unwrap_or_default())
    }

    fn cluster_policy(&self) -> Option<BTreeMap<String, String>> {
        let (store, ns) = self.policy.as_ref()?;
        store
            .get(&ObjectRef::new(POLICY_CONFIGMAP).within(ns))
            .map(|cm| cm.data.clone().unwrap_or_default())
    }

    fn record_break_glass(&self, record: BreakGlass) {
        let Some(audit) = &self.audit else { return };
        if let Err(e) = audit.try_send(record) {
            tracing::warn!("break-glass Event not recorded ({e}); the admission log has it");
        }
    }

    fn route_discovery(&self) -> Option<Discovery> {
        let routes = self.routes.as_ref()?;
        let discovery = routes.discovery();
        if RouterKind::ALL
            .into_iter()
            .any(|kind| served(kind, &discovery).is_err())
        {
            routes.rediscover_soon();
        }
        Some(discovery)
    }
}

/// A fixed [`ClusterView`]: for tests, benchmarks and the sandbox's scripted scenarios.
#[derive(Clone, Debug, Default)]
pub struct StaticView {
    /// What [`ClusterView::synced`] answers.
    pub synced: bool,
    /// Namespace name to labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Namespace name to annotations (a namespace absent here has none).
    pub namespace_annotations: BTreeMap<String, BTreeMap<String, String>>,
    /// The `sluice-policy` data, if the ConfigMap exists.
    pub policy: Option<BTreeMap<String, String>>,
    /// Break-glass records handed over, in order.
    pub break_glass: Arc<Mutex<Vec<BreakGlass>>>,
    /// What [`ClusterView::route_discovery`] answers.
    pub discovery: Option<Discovery>,
}

impl StaticView {
    /// A synced view holding one namespace with the given labels.
    pub fn with_namespace(ns: &str, labels: &[(&str, &str)]) -> Self {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            synced: true,
            namespaces: BTreeMap::from([(ns.to_string(), labels)]),
            ..Self::default()
        }
    }

    /// Break-glass records handed over so far.
    pub fn recorded(&self) -> Vec<BreakGlass> {
        self.break_glass
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

impl ClusterView for StaticView {
    fn synced(&self) -> bool {
        self.synced
    }

    fn namespace_labels(&self, ns: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get(ns).cloned()
    }

    fn namespace_annotations(&self, ns: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get(ns)?;
        Some(
            self.namespace_annotations
                .get(ns)
                .cloned()
                .unwrap_or_default(),
        )
    }

    fn cluster_policy(&self) -> Option<BTreeMap<String, String>> {
        self.policy.clone()
    }

    fn record_break_glass(&self, record: BreakGlass) {
        if let Ok(mut r) = self.break_glass.lock() {
            r.push(record);
        }
    }

    fn route_discovery(&self) -> Option<Discovery> {
        self.discovery.clone()
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;
    use kube::runtime::watcher;

    use super::*;

    fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_namespace_cache_is_unsynced_until_its_first_list_completes() {
        let mut writer = kube::runtime::reflector::store::Writer::<Namespace>::default();
        let view = NamespaceCache::new(writer.as_reader());
        assert!(!view.synced());
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(namespace(
            "shop",
            &[("sluice.dev/canary", "enabled")],
        )));
        assert!(!view.synced());
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert!(view.synced());
        assert_eq!(
            view.namespace_labels("shop")
                .unwrap()
                .get("sluice.dev/canary"),
            Some(&"enabled".to_string())
        );
        assert_eq!(view.namespace_labels("other"), None);
    }

    fn configmap(ns: &str, name: &str, data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn with_a_policy_store_the_view_waits_for_it_and_reads_only_sluices_policy() {
        let mut namespaces = kube::runtime::reflector::store::Writer::<Namespace>::default();
        let mut policy = kube::runtime::reflector::store::Writer::<ConfigMap>::default();
        let view = NamespaceCache::new(namespaces.as_reader())
            .with_policy(policy.as_reader(), "sluice-system");
        let mut ns = namespace("shop", &[]);
        ns.metadata.annotations = Some(BTreeMap::from([(
            "sluice.dev/interval".to_string(),
            "2m".to_string(),
        )]));
        namespaces.apply_watcher_event(&watcher::Event::Init);
        namespaces.apply_watcher_event(&watcher::Event::InitApply(ns));
        namespaces.apply_watcher_event(&watcher::Event::InitDone);
        assert!(!view.synced(), "the policy store has not listed yet");
        policy.apply_watcher_event(&watcher::Event::Init);
        policy.apply_watcher_event(&watcher::Event::InitApply(configmap(
            "shop",
            "sluice-policy",
            &[("interval", "9m")],
        )));
        policy.apply_watcher_event(&watcher::Event::InitDone);
        assert!(view.synced());
        assert_eq!(
            view.cluster_policy(),
            None,
            "a sluice-policy elsewhere is not the policy"
        );
        policy.apply_watcher_event(&watcher::Event::Apply(configmap(
            "sluice-system",
            "sluice-policy",
            &[("interval", "3m")],
        )));
        assert_eq!(
            view.cluster_policy()
                .unwrap()
                .get("interval")
                .map(String::as_str),
            Some("3m")
        );
        assert_eq!(
            view.namespace_annotations("shop").unwrap()["sluice.dev/interval"],
            "2m"
        );
        assert_eq!(view.namespace_annotations("other"), None);
    }

    #[tokio::test]
    async fn break_glass_records_leave_through_the_audit_channel() {
        let (tx, mut rx) = mpsc::channel(1);
        let writer = kube::runtime::reflector::store::Writer::<Namespace>::default();
        let view = NamespaceCache::new(writer.as_reader()).with_audit(tx);
        let record = BreakGlass {
            namespace: "shop".into(),
            deployment: "web".into(),
            user: "alice".into(),
            reason: "INC-1".into(),
            window: "Sat 00:00-Mon 06:00 UTC".into(),
        };
        view.record_break_glass(record.clone());
        // A full channel drops the record rather than blocking the admission.
        view.record_break_glass(record.clone());
        assert_eq!(rx.recv().await, Some(record));
        assert!(rx.try_recv().is_err());
    }
}
