//! What the webhook knows about the cluster besides the review: caches only, never an API call
//! on the admission path (DESIGN §1, §7.4).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{ObjectRef, Store};

/// The cluster state admission decisions read. Implementations answer from memory.
pub trait ClusterView: Send + Sync {
    /// Whether the caches have completed their first list; until then nothing is known.
    fn synced(&self) -> bool;
    /// The labels of namespace `ns`, or `None` when the cache does not know it.
    fn namespace_labels(&self, ns: &str) -> Option<BTreeMap<String, String>>;
}

/// A [`ClusterView`] over the controller's Namespace reflector.
pub struct NamespaceCache {
    store: Store<Namespace>,
    ready: AtomicBool,
}

impl NamespaceCache {
    /// Reads `store`, which the controller's reflector fills.
    pub fn new(store: Store<Namespace>) -> Self {
        Self {
            store,
            ready: AtomicBool::new(false),
        }
    }
}

impl ClusterView for NamespaceCache {
    fn synced(&self) -> bool {
        if self.ready.load(Ordering::Acquire) {
            return true;
        }
        // Readiness is a one-shot; polling it once never blocks.
        let ready = matches!(self.store.wait_until_ready().now_or_never(), Some(Ok(())));
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
}

/// A fixed [`ClusterView`]: for tests, benchmarks and the sandbox's scripted scenarios.
#[derive(Clone, Debug, Default)]
pub struct StaticView {
    /// What [`ClusterView::synced`] answers.
    pub synced: bool,
    /// Namespace name to labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
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
        }
    }
}

impl ClusterView for StaticView {
    fn synced(&self) -> bool {
        self.synced
    }

    fn namespace_labels(&self, ns: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get(ns).cloned()
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
}
