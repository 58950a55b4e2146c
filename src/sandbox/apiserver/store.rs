//! The sandbox's etcd: every object, the one cluster-wide resourceVersion counter, the bounded
//! watch history, and owner-reference garbage collection.
//!
//! ```text
//! write ──► Store (rv += 1) ──► history (VecDeque, bounded) ──► broadcast ──► watch streams
//! ```
//!
//! Objects are kept as `serde_json::Value` in their storage version, keyed by storage key
//! (`apps/deployments`) and `(namespace, name)`. Everything here is synchronous and pure apart
//! from the broadcast; the server holds the store behind one mutex, so each write is atomic.
//!
//! Differences from kube-apiserver:
//! - Lists are served from the current state, not from a snapshot at the continue token's
//!   resourceVersion.
//! - Garbage collection runs synchronously inside the deleting request (Background deletion
//!   removes dependents before the response), and GC deletions do not go through admission.
//! - A watcher that falls more than the broadcast buffer behind gets a 410 `Expired` ERROR
//!   event and must re-watch, as a lagging kube-apiserver watch-cache client would. The buffer
//!   is as long as the history ([`broadcast_capacity`]), so a lagging watch is cut no sooner
//!   than it could no longer resume.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::selectors::Selection;

/// `ADDED`, `MODIFIED` or `DELETED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The event type as watch streams spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the store, as kept in the watch history.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub storage_key: String,
    pub event: EventType,
    /// The object after the change (for DELETED: the last state, carrying the deletion's rv).
    pub object: Value,
    /// The object before the change (MODIFIED only), so selector watches can see it leave.
    pub prev: Option<Value>,
}

/// `(namespace, name)`; namespace is empty for cluster-scoped objects.
pub type ObjKey = (String, String);

/// Objects, the resourceVersion counter and the watch history.
pub struct Store {
    rv: u64,
    objects: BTreeMap<String, BTreeMap<ObjKey, Value>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Every change with rv <= compacted has been dropped from the history.
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
    gc: GcIndex,
}

/// The namespace and name of an object.
pub fn obj_key(obj: &Value) -> ObjKey {
    (
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The `metadata.resourceVersion` of an object as a number (0 when absent or garbage).
pub fn object_rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn uid_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["uid"].as_str()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// How far behind a watch may fall before it gets 410 `Expired`: as far as the history reaches
/// (a watch that lagged less than that could resume anyway), at least 4,096 and at most 65,536
/// changes (the channel holds that many changes alive).
pub fn broadcast_capacity(history_limit: usize) -> usize {
    history_limit.clamp(4096, 65_536)
}

/// The finalizer kube-apiserver adds for `propagationPolicy: Foreground`.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

impl Store {
    /// An empty store keeping at most `history_limit` changes for watch resumption.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(broadcast_capacity(history_limit));
        Self {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            tx,
            gc: GcIndex::default(),
        }
    }

    /// The current cluster-wide resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Every change with a resourceVersion at or below this one has left the history.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Drops the whole watch history: a watch from any earlier resourceVersion gets 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// The retained changes after `rv`, or `Err(compacted)` when some of them were dropped.
    pub fn changes_since(&self, rv: u64) -> Result<Vec<Arc<Change>>, u64> {
        if rv < self.compacted {
            return Err(self.compacted);
        }
        Ok(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// One stored object.
    pub fn get(&self, storage_key: &str, key: &ObjKey) -> Option<&Value> {
        self.objects.get(storage_key)?.get(key)
    }

    /// Objects of one storage, in (namespace, name) order, optionally in one namespace.
    pub fn list<'a>(
        &'a self,
        storage_key: &str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(storage_key)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|(_, v)| v)
    }

    fn record(&mut self, storage_key: &str, event: EventType, object: Value, prev: Option<Value>) {
        let change = Arc::new(Change {
            rv: self.rv,
            storage_key: storage_key.to_string(),
            event,
            object,
            prev,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
    }

    /// Stores a new object with the next resourceVersion and returns it as stored.
    pub fn insert(&mut self, storage_key: &str, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let loc = (storage_key.to_string(), obj_key(&obj));
        let prev = self
            .objects
            .entry(storage_key.to_string())
            .or_default()
            .insert(loc.1.clone(), obj.clone());
        if let Some(prev) = &prev {
            self.gc.forget(&loc, prev);
        }
        self.gc.learn(&loc, &obj);
        let event = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(storage_key, event, obj.clone(), prev);
        obj
    }

    /// Removes an object, recording a DELETED change that carries a new resourceVersion.
    pub fn remove(&mut self, storage_key: &str, key: &ObjKey) -> Option<Value> {
        let mut obj = self.objects.get_mut(storage_key)?.remove(key)?;
        self.gc
            .removed(&(storage_key.to_string(), key.clone()), &obj);
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(storage_key, EventType::Deleted, obj.clone(), None);
        Some(obj)
    }

    /// Deletes an object the way the registry does: objects with finalizers only get a
    /// `deletionTimestamp` (if they do not have one yet); others are removed.
    pub fn delete_or_finalize(&mut self, storage_key: &str, key: &ObjKey, now: &str) {
        let Some(obj) = self.get(storage_key, key) else {
            return;
        };
        if finalizers(obj).is_empty() {
            self.remove(storage_key, key);
        } else if obj["metadata"]["deletionTimestamp"].is_null() {
            let mut obj = obj.clone();
            obj["metadata"]["deletionTimestamp"] = json!(now);
            self.insert(storage_key, obj);
        }
    }

    /// Removes every object of `namespace` (the namespace controller's job).
    pub fn delete_namespace_contents(&mut self, namespace: &str) {
        let keys: Vec<(String, ObjKey)> = self
            .objects
            .iter()
            .flat_map(|(sk, m)| {
                m.keys()
                    .filter(|(ns, _)| ns == namespace)
                    .map(|k| (sk.clone(), k.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (sk, k) in keys {
            self.remove(&sk, &k);
        }
    }

    /// Removes `uid` from the ownerReferences of every dependent (propagationPolicy Orphan).
    pub fn orphan_dependents(&mut self, uid: &str) {
        for (sk, key) in self.gc.dependents_of(uid) {
            let Some(mut obj) = self.get(&sk, &key).cloned() else {
                continue;
            };
            if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"].as_str() != Some(uid));
                if refs.is_empty() {
                    obj["metadata"]
                        .as_object_mut()
                        .map(|m| m.remove("ownerReferences"));
                }
            }
            self.insert(&sk, obj);
        }
    }

    /// Runs the garbage collector to a fixed point:
    /// - an owner being deleted in the foreground has its dependents deleted, and loses its
    ///   `foregroundDeletion` finalizer (and is removed) once none remain;
    /// - a dependent whose owners are all gone is deleted; one with some owners left loses the
    ///   references to the vanished ones.
    ///
    /// It visits only what [`GcIndex`] points at: the owners being deleted in the foreground and
    /// the objects that may have lost an owner, never every object (with 5,000 Deployments and
    /// their generated objects, a walk per delete held the store for tens of milliseconds).
    pub fn collect_garbage(&mut self, now: &str) {
        for _ in 0..10_000 {
            if !self.gc_step(now) {
                return;
            }
        }
    }

    /// One action of the collector; false when there was nothing to do.
    fn gc_step(&mut self, now: &str) -> bool {
        for loc in self.gc.foreground.clone() {
            let Some(owner) = self.get(&loc.0, &loc.1) else {
                continue;
            };
            let uid = uid_of(owner).unwrap_or_default().to_string();
            let dependents = self.gc.dependents_of(&uid);
            if dependents.is_empty() {
                let mut owner = owner.clone();
                let rest: Vec<String> = finalizers(&owner)
                    .into_iter()
                    .filter(|f| f != FOREGROUND_FINALIZER)
                    .collect();
                if rest.is_empty() {
                    self.remove(&loc.0, &loc.1);
                } else {
                    owner["metadata"]["finalizers"] = json!(rest);
                    self.insert(&loc.0, owner);
                }
                return true;
            }
            let mut acted = false;
            for (sk, key) in dependents {
                if self
                    .get(&sk, &key)
                    .is_some_and(|d| d["metadata"]["deletionTimestamp"].is_null())
                {
                    self.delete_or_finalize(&sk, &key, now);
                    acted = true;
                }
            }
            if acted {
                return true;
            }
        }
        while let Some(loc) = self.gc.suspects.pop_first() {
            let Some(obj) = self.get(&loc.0, &loc.1) else {
                continue;
            };
            let owners = owner_uids(obj);
            let alive = owners
                .iter()
                .filter(|u| self.gc.live.contains_key(*u))
                .count();
            if alive == owners.len() {
                continue;
            }
            if alive == 0 {
                if obj["metadata"]["deletionTimestamp"].is_null() {
                    self.delete_or_finalize(&loc.0, &loc.1, now);
                    return true;
                }
                continue;
            }
            let mut obj = obj.clone();
            if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| {
                    r["uid"]
                        .as_str()
                        .is_some_and(|u| self.gc.live.contains_key(u))
                });
            }
            self.insert(&loc.0, obj);
            return true;
        }
        false
    }
}

/// Where an object is stored: its storage key and `(namespace, name)`.
type Loc = (String, ObjKey);

/// The owner-reference graph the garbage collector works from, kept by [`Store::insert`] and
/// [`Store::remove`] (the only two writers of the objects).
#[derive(Default)]
struct GcIndex {
    /// Every live object's uid, and where it is.
    live: HashMap<String, Loc>,
    /// Owner uid → the objects that name it in `ownerReferences` (whether it lives or not).
    dependents: HashMap<String, BTreeSet<Loc>>,
    /// Owners being deleted in the foreground: a `deletionTimestamp` and the
    /// `foregroundDeletion` finalizer.
    foreground: BTreeSet<Loc>,
    /// Objects that may have lost an owner since the collector last looked: the dependents of
    /// a removed object, and objects written naming an owner that does not exist.
    suspects: BTreeSet<Loc>,
}

impl GcIndex {
    fn dependents_of(&self, uid: &str) -> Vec<Loc> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `loc` no longer holds `old`.
    fn forget(&mut self, loc: &Loc, old: &Value) {
        if let Some(uid) = uid_of(old)
            && self.live.get(uid) == Some(loc)
        {
            self.live.remove(uid);
        }
        for owner in owner_uids(old) {
            if let Some(d) = self.dependents.get_mut(&owner) {
                d.remove(loc);
                if d.is_empty() {
                    self.dependents.remove(&owner);
                }
            }
        }
        self.foreground.remove(loc);
    }

    /// `loc` now holds `new`.
    fn learn(&mut self, loc: &Loc, new: &Value) {
        if let Some(uid) = uid_of(new) {
            self.live.insert(uid.to_string(), loc.clone());
        }
        for owner in owner_uids(new) {
            if !self.live.contains_key(&owner) {
                self.suspects.insert(loc.clone());
            }
            self.dependents
                .entry(owner)
                .or_default()
                .insert(loc.clone());
        }
        if !new["metadata"]["deletionTimestamp"].is_null()
            && finalizers(new).iter().any(|f| f == FOREGROUND_FINALIZER)
        {
            self.foreground.insert(loc.clone());
        }
    }

    /// The object at `loc`, `old`, is gone: what named it as an owner may be garbage now.
    fn removed(&mut self, loc: &Loc, old: &Value) {
        self.forget(loc, old);
        if let Some(uid) = uid_of(old) {
            let orphans = self.dependents_of(uid);
            self.suspects.extend(orphans);
        }
    }
}

/// What a watch with a namespace and selection sees of one change, as kube-apiserver's
/// watch cache decides it: an object entering the selection is ADDED, one leaving it DELETED.
pub fn visible_event<'a>(
    change: &'a Change,
    namespace: Option<&str>,
    selection: &Selection,
) -> Option<(EventType, &'a Value)> {
    if let Some(ns) = namespace
        && change.object["metadata"]["namespace"].as_str() != Some(ns)
    {
        return None;
    }
    let now = selection.matches(&change.object);
    match change.event {
        EventType::Modified => {
            let before = change.prev.as_ref().is_some_and(|p| selection.matches(p));
            match (before, now) {
                (true, true) => Some((EventType::Modified, &change.object)),
                (false, true) => Some((EventType::Added, &change.object)),
                (true, false) => Some((EventType::Deleted, &change.object)),
                (false, false) => None,
            }
        }
        event => now.then_some((event, &change.object)),
    }
}

/// The `continue` token kube-apiserver hands out: base64 of
/// `{"v":"meta.k8s.io/v1","rv":RV,"start":"/NAME\u0000"}`, the start key relative to the
/// list's prefix (`/NAMESPACE/NAME` for an all-namespaces list of a namespaced kind).
pub fn encode_continue(rv: u64, list_namespace: Option<&str>, last: &ObjKey) -> String {
    let start = if list_namespace.is_some() || last.0.is_empty() {
        format!("/{}\u{0}", last.1)
    } else {
        format!("/{}/{}\u{0}", last.0, last.1)
    };
    // Field order as Go writes it: v, rv, start.
    let token = format!(
        r#"{{"v":"meta.k8s.io/v1","rv":{rv},"start":{}}}"#,
        Value::String(start)
    );
    base64::engine::general_purpose::STANDARD.encode(token)
}

/// Decodes a continue token of a list in `list_namespace` into the resourceVersion and the
/// key to resume after; `None` if it is not a token this server issued.
pub fn decode_continue(token: &str, list_namespace: Option<&str>) -> Option<(u64, ObjKey)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(token))
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let start = v["start"]
        .as_str()?
        .strip_suffix('\u{0}')?
        .strip_prefix('/')?;
    let key = match (list_namespace, start.split_once('/')) {
        (Some(ns), _) => (ns.to_string(), start.to_string()),
        (None, Some((ns, name))) => (ns.to_string(), name.to_string()),
        (None, None) => (String::new(), start.to_string()),
    };
    Some((v["rv"].as_u64()?, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::apiserver::selectors::LabelSelector;

    fn obj(ns: &str, name: &str, uid: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name, "uid": uid}})
    }

    fn owned(ns: &str, name: &str, uid: &str, owner: &str) -> Value {
        let mut o = obj(ns, name, uid);
        o["metadata"]["ownerReferences"] =
            json!([{"uid": owner, "name": "x", "kind": "X", "apiVersion": "v1"}]);
        o
    }

    #[test]
    fn every_write_takes_the_next_cluster_wide_resource_version() {
        let mut s = Store::new(10);
        let a = s.insert("apps/deployments", obj("d", "a", "1"));
        let b = s.insert("/configmaps", obj("d", "b", "2"));
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert_eq!(b["metadata"]["resourceVersion"], "2");
        s.remove("/configmaps", &("d".into(), "b".into()));
        assert_eq!(s.resource_version(), 3);
    }

    #[test]
    fn a_lagging_watch_is_cut_no_sooner_than_the_history_would_expire_it() {
        assert_eq!(broadcast_capacity(50_000), 50_000);
        assert_eq!(
            broadcast_capacity(10),
            4096,
            "small histories keep a usable buffer"
        );
        assert_eq!(broadcast_capacity(1_000_000), 65_536, "bounded memory");
    }

    #[test]
    fn bounded_history_expires_old_resource_versions() {
        let mut s = Store::new(2);
        for i in 0..4 {
            s.insert("k", obj("d", &format!("o{i}"), &i.to_string()));
        }
        assert_eq!(s.changes_since(1).unwrap_err(), 2);
        assert_eq!(s.changes_since(2).unwrap().len(), 2);
        s.compact();
        assert_eq!(s.changes_since(3).unwrap_err(), 4);
        assert!(s.changes_since(4).unwrap().is_empty());
    }

    #[test]
    fn background_collection_deletes_dependents_of_a_vanished_owner() {
        let mut s = Store::new(100);
        s.insert("apps/deployments", obj("d", "owner", "u1"));
        s.insert("apps/replicasets", owned("d", "child", "u2", "u1"));
        s.insert("/pods", owned("d", "grandchild", "u3", "u2"));
        s.remove("apps/deployments", &("d".into(), "owner".into()));
        s.collect_garbage("now");
        assert_eq!(s.list("apps/replicasets", None).count(), 0);
        assert_eq!(s.list("/pods", None).count(), 0);
    }

    #[test]
    fn foreground_deletion_removes_the_owner_only_after_its_dependents() {
        let mut s = Store::new(100);
        let mut owner = obj("d", "owner", "u1");
        owner["metadata"]["finalizers"] = json!([FOREGROUND_FINALIZER]);
        owner["metadata"]["deletionTimestamp"] = json!("now");
        s.insert("apps/deployments", owner);
        s.insert("apps/replicasets", owned("d", "child", "u2", "u1"));
        let mut rx = s.subscribe();
        s.collect_garbage("now");
        let first = rx.try_recv().unwrap();
        assert_eq!(
            (first.event, first.storage_key.as_str()),
            (EventType::Deleted, "apps/replicasets")
        );
        let second = rx.try_recv().unwrap();
        assert_eq!(
            (second.event, second.storage_key.as_str()),
            (EventType::Deleted, "apps/deployments")
        );
    }

    #[test]
    fn a_dependent_naming_an_owner_that_never_existed_is_collected() {
        let mut s = Store::new(100);
        s.insert("apps/replicasets", owned("d", "stray", "u2", "nobody"));
        s.collect_garbage("now");
        assert_eq!(s.list("apps/replicasets", None).count(), 0);
    }

    #[test]
    fn an_owner_recreated_under_the_same_name_does_not_adopt_the_old_ones_dependents() {
        let mut s = Store::new(100);
        s.insert("apps/deployments", obj("d", "owner", "u1"));
        s.insert("apps/replicasets", owned("d", "old-child", "u2", "u1"));
        s.remove("apps/deployments", &("d".into(), "owner".into()));
        s.insert("apps/deployments", obj("d", "owner", "u9"));
        s.insert("apps/replicasets", owned("d", "new-child", "u3", "u9"));
        s.collect_garbage("now");
        let left: Vec<&str> = s
            .list("apps/replicasets", None)
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        assert_eq!(left, ["new-child"]);
    }

    #[test]
    fn a_dependent_with_an_owner_left_keeps_it_and_loses_the_vanished_one() {
        let mut s = Store::new(100);
        s.insert("apps/deployments", obj("d", "a", "ua"));
        s.insert("apps/deployments", obj("d", "b", "ub"));
        let mut child = obj("d", "child", "uc");
        child["metadata"]["ownerReferences"] = json!([
            {"uid": "ua", "name": "a", "kind": "Deployment", "apiVersion": "apps/v1"},
            {"uid": "ub", "name": "b", "kind": "Deployment", "apiVersion": "apps/v1"}
        ]);
        s.insert("apps/replicasets", child);
        s.remove("apps/deployments", &("d".into(), "a".into()));
        s.collect_garbage("now");
        let child = s
            .get("apps/replicasets", &("d".into(), "child".into()))
            .unwrap();
        assert_eq!(child["metadata"]["ownerReferences"][0]["uid"], "ub");
        assert_eq!(
            child["metadata"]["ownerReferences"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn orphaning_strips_the_owner_reference() {
        let mut s = Store::new(100);
        s.insert("apps/deployments", obj("d", "owner", "u1"));
        s.insert("apps/replicasets", owned("d", "child", "u2", "u1"));
        s.orphan_dependents("u1");
        s.remove("apps/deployments", &("d".into(), "owner".into()));
        s.collect_garbage("now");
        let child = s
            .get("apps/replicasets", &("d".into(), "child".into()))
            .unwrap();
        assert!(child["metadata"]["ownerReferences"].is_null());
    }

    #[test]
    fn an_object_leaving_the_selection_is_seen_as_deleted() {
        let sel = Selection {
            labels: LabelSelector::parse("app=a").unwrap(),
            ..Default::default()
        };
        let change = Change {
            rv: 2,
            storage_key: "k".into(),
            event: EventType::Modified,
            object: json!({"metadata": {"namespace": "d", "labels": {"app": "b"}}}),
            prev: Some(json!({"metadata": {"namespace": "d", "labels": {"app": "a"}}})),
        };
        assert_eq!(
            visible_event(&change, None, &sel).unwrap().0,
            EventType::Deleted
        );
        assert!(visible_event(&change, Some("other"), &sel).is_none());
    }

    #[test]
    fn continue_tokens_round_trip_in_kube_apiserver_shape() {
        let key: ObjKey = ("capture".into(), "podinfo".into());
        let t = encode_continue(1169, Some("capture"), &key);
        // The token the fixture `list-deployments` shows for this list.
        assert_eq!(
            t,
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTE2OSwic3RhcnQiOiIvcG9kaW5mb1x1MDAwMCJ9"
        );
        assert_eq!(
            decode_continue(&t, Some("capture")),
            Some((1169, key.clone()))
        );
        let all = encode_continue(5, None, &key);
        assert_eq!(decode_continue(&all, None), Some((5, key)));
    }
}
