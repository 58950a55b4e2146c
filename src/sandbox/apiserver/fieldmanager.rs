//! Field ownership (`metadata.managedFields`) and server-side apply, after
//! sigs.k8s.io/structured-merge-diff as kube-apiserver v1.36 runs it.
//!
//! ```text
//!  Update (create/update/patch)            Apply (application/apply-patch+yaml)
//!  old ─┐                                  live ─┐
//!       ├─ compare ─► added/modified/removed     ├─ merge ─► merged ─ compare ─► conflicts? ─► 409
//!  new ─┘   │                              cfg ──┘                      │ force: others lose them
//!           ├─ other managers lose changed fields      applier owns exactly set(cfg)
//!           └─ manager gains added ∪ modified          fields it dropped (and nobody else owns)
//!                                                      are pruned from the object
//! ```
//!
//! A field set is a tree in the FieldsV1 encoding: `f:<field>` for map fields,
//! `k:{"name":"x"}` for keyed list elements, `v:<json>` for set lists, and `".": {}` on a node
//! that is itself owned (a list element, or a map a manager added).
//!
//! Where this is simpler than structured-merge-diff (and so differs from kube-apiserver):
//! - There is no OpenAPI schema: list keys, set lists and atomic maps come from a fixed table
//!   ([`list_shape`](super::resources::list_shape), `is_atomic_map`) for the kinds the sandbox serves; every other list is
//!   atomic and every other map granular.
//! - The empty object an Update compares a create against is a per-kind skeleton reproducing
//!   what Go's zero value serialises to (so `spec` is not "added", but `metadata.labels` is).
//! - Field sets are not converted between API versions: TrafficSplit v1alpha1 and v1alpha2
//!   share field names.
//! - No cap of 10 Update entries (kube folds older ones into `ancient-changes`), and no
//!   reset of `status` on main-resource writes: the server resets it before calling here.
//! - Keyed lists merge in live order with new elements appended; structured-merge-diff can
//!   interleave them differently.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::resources::list_map_keys;
use super::status::ApiError;

/// Records, in `new.metadata.managedFields`, the fields `manager` owns after an Update
/// (create, update, merge/JSON/strategic patch) of `old` into `new`.
///
/// Call it after defaulting (the defaulted fields belong to the writer, as in kube), with
/// `kind` set on `new`: a create is compared against that kind's empty object.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let provided = if subresource.is_none() {
        decode_entries(new)
    } else {
        Vec::new()
    };
    let mut entries = if provided.is_empty() {
        old.map(decode_entries).unwrap_or_default()
    } else {
        provided
    };
    let baseline = match old {
        Some(o) => o.clone(),
        None => skeleton(new),
    };
    let changes = compare(&baseline, new);
    let changed = changes.added.union(&changes.modified);
    for e in entries.iter_mut() {
        e.set = e.set.difference(&changed).difference(&changes.removed);
    }
    if !changed.is_empty() {
        let id = Identity {
            manager: manager.to_string(),
            operation: Operation::Update,
            api_version: api_version.to_string(),
            subresource: subresource.map(str::to_string),
        };
        match entries.iter_mut().find(|e| e.id == id) {
            Some(e) => {
                e.set = e.set.union(&changed);
                e.time = Some(now.to_string());
            }
            None => entries.push(Entry {
                id,
                time: Some(now.to_string()),
                set: changed,
            }),
        }
    }
    write_entries(new, entries);
}

/// Server-side apply of `applied` by `manager` onto `live` (`None` when the object does not
/// exist yet). Returns the merged object with managedFields updated, or a 409 `Conflict`
/// with one `FieldManagerConflict` cause per contested field when `force` is false.
///
/// The result is not defaulted: defaulted fields belong to nobody, as in kube.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    now: &str,
) -> Result<Value, ApiError> {
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "the apply configuration must be a YAML or JSON object",
        ));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let mut entries = live.map(decode_entries).unwrap_or_default();
    let baseline = match live {
        Some(l) => l.clone(),
        None => skeleton(applied),
    };
    let start = live.cloned().unwrap_or_else(|| json!({}));
    let kind = applied
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let merged = ssa_merge(kind, &start, applied, &mut Vec::new());

    let id = Identity {
        manager: manager.to_string(),
        operation: Operation::Apply,
        api_version: api_version.to_string(),
        subresource: None,
    };
    let changes = compare(&baseline, &merged);
    let changed = changes.added.union(&changes.modified);
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for e in entries.iter().filter(|e| e.id != id) {
        for path in e.set.intersection(&changed).members() {
            conflicts.push((e.id.describe(), display_path(&path)));
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(conflict_error(conflicts));
    }
    for e in entries.iter_mut().filter(|e| e.id != id) {
        e.set = e.set.difference(&changed);
    }

    let new_set = field_set(applied);
    let last_set = entries
        .iter()
        .find(|e| e.id == id)
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut others = FieldSet::default();
    for e in entries.iter().filter(|e| e.id != id) {
        others = others.union(&e.set);
    }
    let mut pruned = merged;
    // Shallowest first: a dropped list element goes whole, before its key fields could.
    let mut dropped = last_set.difference(&new_set).members();
    dropped.sort_by_key(Vec::len);
    for path in dropped {
        if !others.owns_at_or_below(&path) && !is_key_field(&path) {
            remove_path(&mut pruned, &path);
        }
    }

    let removed = compare(&baseline, &pruned).removed;
    for e in entries.iter_mut().filter(|e| e.id != id) {
        e.set = e.set.difference(&removed);
    }
    let unchanged = live.is_some_and(|l| strip_managed(l) == strip_managed(&pruned));
    match entries.iter_mut().find(|e| e.id == id) {
        Some(e) => {
            e.set = new_set;
            e.id.api_version = api_version.to_string();
            if !unchanged || e.time.is_none() {
                e.time = Some(now.to_string());
            }
        }
        None => entries.push(Entry {
            id,
            time: Some(now.to_string()),
            set: new_set,
        }),
    }
    write_entries(&mut pruned, entries);
    Ok(pruned)
}

fn strip_managed(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

/// The 409 kube-apiserver answers for apply conflicts (`internal.NewConflictError`).
fn conflict_error(mut conflicts: Vec<(String, String)>) -> ApiError {
    conflicts.sort();
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(who, path)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {who}"), "field": path})
        })
        .collect();
    let message = if let [(who, path)] = conflicts.as_slice() {
        format!("Apply failed with 1 conflict: conflict with {who}: {path}")
    } else {
        let mut lines = Vec::new();
        let mut current: Option<&str> = None;
        for (who, path) in &conflicts {
            if current != Some(who.as_str()) {
                lines.push(format!("conflicts with {who}:"));
                current = Some(who);
            }
            lines.push(format!("- {path}"));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::new(409, "Conflict", message).with_details(json!({ "causes": causes }))
}

// ---------------------------------------------------------------------------------------------
// Managers

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// What makes two managedFields entries the same manager (kube's `BuildManagerIdentifier`:
/// the API version counts for Update only).
#[derive(Clone, Debug)]
struct Identity {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: Option<String>,
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }
}

impl Identity {
    /// How conflict messages name a manager (kube's `printManager`, time omitted).
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

#[derive(Clone, Debug)]
struct Entry {
    id: Identity,
    time: Option<String>,
    set: FieldSet,
}

fn decode_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let operation = match e.get("operation")?.as_str()? {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return None,
            };
            Some(Entry {
                id: Identity {
                    manager: e.get("manager")?.as_str()?.to_string(),
                    operation,
                    api_version: e
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    subresource: e
                        .get("subresource")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                },
                time: e.get("time").and_then(Value::as_str).map(str::to_string),
                set: e
                    .get("fieldsV1")
                    .map(FieldSet::from_fields_v1)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes the entries sorted as kube does: operation, time, manager, apiVersion, subresource.
fn write_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (
            a.id.operation.as_str(),
            &a.time,
            &a.id.manager,
            &a.id.api_version,
            &a.id.subresource,
        )
            .cmp(&(
                b.id.operation.as_str(),
                &b.time,
                &b.id.manager,
                &b.id.api_version,
                &b.id.subresource,
            ))
    });
    let encoded: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = json!({
                "manager": e.id.manager,
                "operation": e.id.operation.as_str(),
                "apiVersion": e.id.api_version,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.set.to_fields_v1(),
            });
            if let Some(t) = &e.time {
                v["time"] = json!(t);
            }
            if let Some(s) = &e.id.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if !obj.is_object() {
        *obj = json!({});
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let meta = obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object");
    if encoded.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(encoded));
    }
}

// ---------------------------------------------------------------------------------------------
// Field sets

/// A set of field paths, as a tree keyed by FieldsV1 path elements.
#[derive(Clone, Debug, Default, PartialEq)]
struct FieldSet {
    /// This node is itself a member (`".": {}`, or a leaf).
    own: bool,
    children: BTreeMap<String, FieldSet>,
}

type Path = Vec<String>;

impl FieldSet {
    fn from_fields_v1(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(m) = v {
            for (k, child) in m {
                if k == "." {
                    set.own = true;
                    continue;
                }
                let mut c = FieldSet::from_fields_v1(child);
                if c.children.is_empty() {
                    c.own = true;
                }
                set.children.insert(k.clone(), c);
            }
        }
        set
    }

    fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        for (k, child) in &self.children {
            let mut cv = child.to_fields_v1();
            if child.own && !child.children.is_empty() {
                cv[".".to_string()] = json!({});
            }
            m.insert(k.clone(), cv);
        }
        Value::Object(m)
    }

    fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for p in path {
            node = node.children.entry(p.clone()).or_default();
        }
        node.own = true;
    }

    fn is_empty(&self) -> bool {
        !self.own && self.children.values().all(FieldSet::is_empty)
    }

    fn prune(mut self) -> FieldSet {
        self.children = self
            .children
            .into_iter()
            .map(|(k, c)| (k, c.prune()))
            .filter(|(_, c)| !c.is_empty())
            .collect();
        self
    }

    fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.own |= other.own;
        for (k, c) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.own &= !other.own;
        for (k, c) in &other.children {
            if let Some(mine) = out.children.get(k) {
                let d = mine.difference(c);
                out.children.insert(k.clone(), d);
            }
        }
        out.prune()
    }

    fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            own: self.own && other.own,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                out.children.insert(k.clone(), c.intersection(o));
            }
        }
        out.prune()
    }

    /// Every member path, parents before their children, in key order.
    fn members(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        if self.own && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            prefix.push(k.clone());
            c.collect(prefix, out);
            prefix.pop();
        }
    }

    fn owns_at_or_below(&self, path: &[String]) -> bool {
        let mut node = self;
        for p in path {
            match node.children.get(p) {
                Some(c) => node = c,
                None => return false,
            }
        }
        !node.is_empty()
    }
}

/// A path as conflict messages print it: `.spec.template.spec.containers[name="app"].image`.
fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if let Some(f) = p.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = p.strip_prefix("k:") {
            let fields = serde_json::from_str::<Map<String, Value>>(k).unwrap_or_default();
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", inner.join(",")));
        } else if let Some(v) = p.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = p.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The shape of the served kinds (what structured-merge-diff reads from the OpenAPI schema)

fn is_set_list(field: &str, parent_path: &[&str]) -> bool {
    field == "finalizers" && parent_path == ["metadata"]
}

/// Maps that are owned whole (`+structType=atomic`): label selectors and `valueFrom` refs.
fn is_atomic_map(kind: &str, field: &str, parent_path: &[&str]) -> bool {
    match field {
        // A Service's selector is a plain string map; everywhere else it is a LabelSelector.
        "selector" => !(kind == "Service" && parent_path == ["spec"]),
        "labelSelector" | "namespaceSelector" | "objectSelector" | "configMapKeyRef"
        | "secretKeyRef" | "fieldRef" | "resourceFieldRef" => true,
        _ => false,
    }
}

/// The fields kube never tracks ownership of.
fn is_ignored(path: &[String]) -> bool {
    match path {
        [a] => a == "f:apiVersion" || a == "f:kind",
        [m, f] if m == "f:metadata" => matches!(
            f.as_str(),
            "f:name"
                | "f:namespace"
                | "f:creationTimestamp"
                | "f:selfLink"
                | "f:uid"
                | "f:clusterName"
                | "f:generation"
                | "f:managedFields"
                | "f:resourceVersion"
        ),
        _ => false,
    }
}

/// What Go's zero value of the object's kind serialises to: the "old" object of a create.
fn skeleton(obj: &Value) -> Value {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "Deployment" => json!({"metadata": {}, "spec": {"selector": null, "strategy": {},
            "template": {"metadata": {}, "spec": {"containers": null}}}, "status": {}}),
        "Service" | "Ingress" => {
            json!({"metadata": {}, "spec": {}, "status": {"loadBalancer": {}}})
        }
        "Namespace" | "HorizontalPodAutoscaler" => {
            json!({"metadata": {}, "spec": {}, "status": {}})
        }
        "Lease" => json!({"metadata": {}, "spec": {}}),
        // Custom resources are unstructured: nothing but metadata exists before a create.
        _ => json!({"metadata": {}}),
    }
}

fn key_element(item: &Value, keys: &[&str]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        match item.get(*k) {
            Some(v) if !v.is_null() => {
                m.insert((*k).to_string(), v.clone());
            }
            // Port protocols default to TCP, so they key as TCP when absent.
            _ if *k == "protocol" => {
                m.insert("protocol".into(), json!("TCP"));
            }
            _ => return None,
        }
    }
    Some(format!("k:{}", Value::Object(m)))
}

fn list_items<'a>(v: Option<&'a Value>, keys: &[&str]) -> Vec<(String, &'a Value)> {
    match v {
        Some(Value::Array(a)) => keyed_items(a, keys).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn keyed_items<'a>(list: &'a [Value], keys: &[&str]) -> Option<Vec<(String, &'a Value)>> {
    list.iter()
        .map(|item| key_element(item, keys).map(|k| (k, item)))
        .collect()
}

enum Shape {
    Map,
    Keyed(&'static [&'static str]),
    Set,
    Leaf,
}

struct Walk<'a> {
    kind: &'a str,
    /// Field names from the root to the current node (list positions omitted).
    fields: Vec<String>,
    /// FieldsV1 path elements from the root to the current node.
    path: Path,
}

impl Walk<'_> {
    fn shape(&self, old: Option<&Value>, new: Option<&Value>) -> Shape {
        let field = self.fields.last().map(String::as_str).unwrap_or_default();
        let parent: Vec<&str> = self.fields[..self.fields.len().saturating_sub(1)]
            .iter()
            .map(String::as_str)
            .collect();
        let is_empty = |v: Option<&Value>| match v {
            None | Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if is_empty(old) && is_empty(new) {
            return Shape::Leaf;
        }
        let any = |f: fn(&Value) -> bool| old.is_some_and(f) || new.is_some_and(f);
        if any(Value::is_object) {
            if !self.fields.is_empty() && is_atomic_map(self.kind, field, &parent) {
                return Shape::Leaf;
            }
            return Shape::Map;
        }
        if any(Value::is_array) {
            if is_set_list(field, &parent) {
                return Shape::Set;
            }
            if let Some(keys) = list_map_keys(field, &parent) {
                let keyable = |v: Option<&Value>| match v {
                    Some(Value::Array(a)) => keyed_items(a, keys).is_some(),
                    _ => true,
                };
                if keyable(old) && keyable(new) {
                    return Shape::Keyed(keys);
                }
            }
        }
        Shape::Leaf
    }
}

#[derive(Default)]
struct Changes {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

/// Compares two objects field by field, as structured-merge-diff's `Compare` does.
fn compare(old: &Value, new: &Value) -> Changes {
    let kind = new
        .get("kind")
        .or_else(|| old.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut w = Walk {
        kind,
        fields: Vec::new(),
        path: Vec::new(),
    };
    let mut ch = Changes::default();
    compare_node(&mut w, Some(old), Some(new), &mut ch);
    ch
}

fn compare_node(w: &mut Walk, old: Option<&Value>, new: Option<&Value>, ch: &mut Changes) {
    if is_ignored(&w.path) {
        return;
    }
    let at_root = w.path.is_empty();
    match (old, new) {
        (None, None) => return,
        (None, Some(_)) if !at_root => ch.added.insert(&w.path),
        (Some(_), None) if !at_root => ch.removed.insert(&w.path),
        _ => {}
    }
    match w.shape(old, new) {
        Shape::Leaf => {
            if let (Some(o), Some(n)) = (old, new)
                && o != n
            {
                ch.modified.insert(&w.path);
            }
        }
        Shape::Map => {
            let empty = Map::new();
            let om = old.and_then(Value::as_object).unwrap_or(&empty);
            let nm = new.and_then(Value::as_object).unwrap_or(&empty);
            let mut keys: Vec<&String> = om.keys().chain(nm.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                w.fields.push(k.clone());
                w.path.push(format!("f:{k}"));
                compare_node(w, om.get(k), nm.get(k), ch);
                w.path.pop();
                w.fields.pop();
            }
        }
        Shape::Keyed(keys) => {
            let (oi, ni) = (list_items(old, keys), list_items(new, keys));
            let mut all: Vec<&String> = oi.iter().chain(ni.iter()).map(|(k, _)| k).collect();
            all.sort();
            all.dedup();
            for k in all {
                let o = oi.iter().find(|(ok, _)| ok == k).map(|(_, v)| *v);
                let n = ni.iter().find(|(nk, _)| nk == k).map(|(_, v)| *v);
                w.path.push(k.clone());
                // A list element is a node of its own: added or removed as a whole.
                compare_element(w, o, n, ch);
                w.path.pop();
            }
        }
        Shape::Set => {
            let items = |v: Option<&Value>| -> Vec<String> {
                match v {
                    Some(Value::Array(a)) => a.iter().map(|x| format!("v:{x}")).collect(),
                    _ => Vec::new(),
                }
            };
            let (oi, ni) = (items(old), items(new));
            for k in ni.iter().filter(|k| !oi.contains(k)) {
                w.path.push(k.clone());
                ch.added.insert(&w.path);
                w.path.pop();
            }
            for k in oi.iter().filter(|k| !ni.contains(k)) {
                w.path.push(k.clone());
                ch.removed.insert(&w.path);
                w.path.pop();
            }
        }
    }
}

fn compare_element(w: &mut Walk, old: Option<&Value>, new: Option<&Value>, ch: &mut Changes) {
    match (old, new) {
        (None, Some(_)) => ch.added.insert(&w.path),
        (Some(_), None) => ch.removed.insert(&w.path),
        _ => {}
    }
    let empty = Map::new();
    let om = old.and_then(Value::as_object).unwrap_or(&empty);
    let nm = new.and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = om.keys().chain(nm.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        w.fields.push(k.clone());
        w.path.push(format!("f:{k}"));
        compare_node(w, om.get(k), nm.get(k), ch);
        w.path.pop();
        w.fields.pop();
    }
}

/// The fields an apply configuration sets (structured-merge-diff's `ToFieldSet`).
fn field_set(applied: &Value) -> FieldSet {
    let kind = applied
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut w = Walk {
        kind,
        fields: Vec::new(),
        path: Vec::new(),
    };
    let mut set = FieldSet::default();
    collect_set(&mut w, applied, &mut set);
    set
}

fn collect_set(w: &mut Walk, v: &Value, set: &mut FieldSet) {
    if is_ignored(&w.path) {
        return;
    }
    match w.shape(None, Some(v)) {
        Shape::Leaf => {
            if !w.path.is_empty() {
                set.insert(&w.path);
            }
        }
        Shape::Map => {
            for (k, child) in v.as_object().into_iter().flatten() {
                w.fields.push(k.clone());
                w.path.push(format!("f:{k}"));
                collect_set(w, child, set);
                w.path.pop();
                w.fields.pop();
            }
        }
        Shape::Keyed(keys) => {
            let items = v
                .as_array()
                .and_then(|a| keyed_items(a, keys))
                .unwrap_or_default();
            for (k, item) in items {
                w.path.push(k);
                set.insert(&w.path);
                for (f, child) in item.as_object().into_iter().flatten() {
                    w.fields.push(f.clone());
                    w.path.push(format!("f:{f}"));
                    collect_set(w, child, set);
                    w.path.pop();
                    w.fields.pop();
                }
                w.path.pop();
            }
        }
        Shape::Set => {
            for x in v.as_array().into_iter().flatten() {
                w.path.push(format!("v:{x}"));
                set.insert(&w.path);
                w.path.pop();
            }
        }
    }
}

/// Merges an apply configuration into the live object: maps merge, keyed lists merge by key
/// (live order, new elements appended), set lists union, everything else is replaced.
fn ssa_merge(kind: &str, live: &Value, applied: &Value, fields: &mut Vec<String>) -> Value {
    let field = fields.last().map(String::as_str).unwrap_or_default();
    let parent: Vec<&str> = fields[..fields.len().saturating_sub(1)]
        .iter()
        .map(String::as_str)
        .collect();
    match (live, applied) {
        (Value::Object(lm), Value::Object(am))
            if fields.is_empty() || !is_atomic_map(kind, field, &parent) =>
        {
            let mut out = lm.clone();
            for (k, av) in am {
                fields.push(k.clone());
                let merged = match lm.get(k) {
                    Some(lv) => ssa_merge(kind, lv, av, fields),
                    None => av.clone(),
                };
                fields.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(la), Value::Array(aa)) => {
            if is_set_list(field, &parent) {
                let mut out = la.clone();
                out.extend(aa.iter().filter(|x| !la.contains(x)).cloned());
                return Value::Array(out);
            }
            let keys = list_map_keys(field, &parent);
            let (Some(lk), Some(ak)) = (
                keys.and_then(|k| keyed_items(la, k)),
                keys.and_then(|k| keyed_items(aa, k)),
            ) else {
                return applied.clone();
            };
            let mut out: Vec<(String, Value)> =
                lk.into_iter().map(|(k, v)| (k, v.clone())).collect();
            for (k, av) in ak {
                match out.iter_mut().find(|(ok, _)| *ok == k) {
                    Some((_, lv)) => *lv = ssa_merge(kind, lv, av, fields),
                    None => out.push((k, av.clone())),
                }
            }
            Value::Array(out.into_iter().map(|(_, v)| v).collect())
        }
        _ => applied.clone(),
    }
}

/// Whether the path ends at a key field of a keyed list element (`k:{"name":..}` / `f:name`),
/// which stays as long as its element does.
fn is_key_field(path: &[String]) -> bool {
    match path {
        [.., element, field] => match (element.strip_prefix("k:"), field.strip_prefix("f:")) {
            (Some(key), Some(f)) => {
                serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(f))
            }
            _ => false,
        },
        _ => false,
    }
}

/// Removes the field at a FieldsV1 path from an object (apply's pruning).
fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = obj;
    let mut fields: Vec<String> = Vec::new();
    for p in parents {
        let next = match step(node, p, &fields) {
            Some(n) => n,
            None => return,
        };
        if let Some(f) = p.strip_prefix("f:") {
            fields.push(f.to_string());
        }
        node = next;
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = node.as_object_mut() {
            m.remove(f);
        }
    } else if let Value::Array(items) = node {
        let field = fields.last().map(String::as_str).unwrap_or_default();
        let parent: Vec<&str> = fields[..fields.len().saturating_sub(1)]
            .iter()
            .map(String::as_str)
            .collect();
        if let Some(v) = last.strip_prefix("v:") {
            if let Ok(value) = serde_json::from_str::<Value>(v) {
                items.retain(|x| *x != value);
            }
        } else if let Some(keys) = list_map_keys(field, &parent) {
            items.retain(|x| key_element(x, keys).as_deref() != Some(last.as_str()));
        }
    }
}

fn step<'a>(node: &'a mut Value, element: &str, fields: &[String]) -> Option<&'a mut Value> {
    if let Some(f) = element.strip_prefix("f:") {
        return node.get_mut(f);
    }
    let field = fields.last().map(String::as_str).unwrap_or_default();
    let parent: Vec<&str> = fields[..fields.len().saturating_sub(1)]
        .iter()
        .map(String::as_str)
        .collect();
    let keys = list_map_keys(field, &parent)?;
    node.as_array_mut()?
        .iter_mut()
        .find(|x| key_element(x, keys).as_deref() == Some(element))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-11-27T08:58:00Z";
    const T1: &str = "2026-11-27T08:58:02Z";

    /// The `create-deployment` fixture's response body, before managedFields.
    fn created_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "podinfo", "namespace": "capture", "uid": "u1",
                         "resourceVersion": "1089", "generation": 1,
                         "creationTimestamp": T0, "labels": {"app": "podinfo"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {
                    "metadata": {"labels": {"app": "podinfo"}},
                    "spec": {
                        "containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                            "resources": {}, "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst", "securityContext": {},
                        "schedulerName": "default-scheduler"
                    }
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600
            },
            "status": {}
        })
    }

    /// The fieldsV1 the fixture shows for the creator.
    fn creator_fields() -> Value {
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {},
                "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:containers": {"k:{\"name\":\"podinfod\"}": {".": {}, "f:image": {},
                            "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
                            "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                        "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                        "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}
                    }
                }
            }
        })
    }

    fn created() -> Value {
        let mut d = created_deployment();
        record_update(None, &mut d, "unknown", "apps/v1", None, T0);
        d
    }

    fn entries(obj: &Value) -> &Vec<Value> {
        obj["metadata"]["managedFields"].as_array().unwrap()
    }

    #[test]
    fn a_create_owns_every_field_it_set_including_defaults_as_the_fixture_shows() {
        let d = created();
        assert_eq!(
            d["metadata"]["managedFields"],
            json!([{"manager": "unknown", "operation": "Update", "apiVersion": "apps/v1",
                    "time": T0, "fieldsType": "FieldsV1", "fieldsV1": creator_fields()}])
        );
    }

    #[test]
    fn a_generated_name_is_owned_but_name_and_namespace_are_not() {
        let mut d = created_deployment();
        d["metadata"]["generateName"] = json!("podinfo-");
        record_update(None, &mut d, "unknown", "apps/v1", None, T0);
        let fields = &entries(&d)[0]["fieldsV1"]["f:metadata"];
        assert!(fields.get("f:generateName").is_some());
        for untracked in [
            "f:name",
            "f:namespace",
            "f:uid",
            "f:resourceVersion",
            "f:generation",
            "f:creationTimestamp",
        ] {
            assert!(fields.get(untracked).is_none(), "{untracked}");
        }
    }

    #[test]
    fn fields_v1_round_trips_through_the_tree() {
        assert_eq!(
            FieldSet::from_fields_v1(&creator_fields()).to_fields_v1(),
            creator_fields()
        );
    }

    #[test]
    fn an_update_moves_changed_fields_to_the_writer_and_leaves_the_rest() {
        let old = created();
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["metadata"]["annotations"] = json!({"a": "b"});
        record_update(Some(&old), &mut new, "kubectl-edit", "apps/v1", None, T1);
        let e = entries(&new);
        assert_eq!(e.len(), 2);
        // Sorted as kube sorts them: the older entry first.
        assert_eq!(e[1]["manager"], "kubectl-edit");
        assert_eq!(
            e[1]["fieldsV1"],
            json!({"f:metadata": {"f:annotations": {".": {}, "f:a": {}}}, "f:spec": {"f:replicas": {}}})
        );
        assert_eq!(e[0]["manager"], "unknown");
        assert!(e[0]["fieldsV1"]["f:spec"].get("f:replicas").is_none());
        assert!(e[0]["fieldsV1"]["f:spec"].get("f:selector").is_some());
        assert_eq!(e[0]["time"], T0);
    }

    #[test]
    fn a_writer_adding_a_key_to_an_existing_map_does_not_own_the_map() {
        let mut old = created();
        old["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
        record_update(
            None,
            &mut old,
            "kube-controller-manager",
            "apps/v1",
            Some("status"),
            T0,
        );
        let mut new = old.clone();
        new["metadata"]["annotations"]["a"] = json!("b");
        record_update(Some(&old), &mut new, "unknown", "apps/v1", None, T1);
        let unknown = entries(&new)
            .iter()
            .find(|e| e["manager"] == "unknown")
            .unwrap();
        assert_eq!(
            unknown["fieldsV1"]["f:metadata"]["f:annotations"],
            json!({"f:a": {}})
        );
        assert_eq!(unknown["time"], T1);
    }

    #[test]
    fn an_update_that_changes_nothing_keeps_the_entry_time() {
        let old = created();
        let mut new = old.clone();
        record_update(Some(&old), &mut new, "unknown", "apps/v1", None, T1);
        assert_eq!(entries(&new)[0]["time"], T0);
    }

    #[test]
    fn a_rollout_pause_gives_kubectl_rollout_only_spec_paused() {
        let old = created();
        let mut new = old.clone();
        new["spec"]["paused"] = json!(true);
        record_update(Some(&old), &mut new, "kubectl-rollout", "apps/v1", None, T1);
        let e = entries(&new);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1]["manager"], "kubectl-rollout");
        assert_eq!(e[1]["fieldsV1"], json!({"f:spec": {"f:paused": {}}}));
        assert_eq!(e[0]["fieldsV1"], creator_fields());
    }

    #[test]
    fn removing_a_field_drops_it_from_its_owner() {
        let old = created();
        let mut new = old.clone();
        new["metadata"].as_object_mut().unwrap().remove("labels");
        record_update(Some(&old), &mut new, "other", "apps/v1", None, T1);
        let e = entries(&new);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0]["fieldsV1"].get("f:metadata").is_none());
    }

    #[test]
    fn a_status_write_gets_its_own_entry_with_the_subresource() {
        let old = created();
        let mut new = old.clone();
        new["status"] =
            json!({"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
        record_update(
            Some(&old),
            &mut new,
            "kube-controller-manager",
            "apps/v1",
            Some("status"),
            T1,
        );
        let e = entries(&new);
        let status = e.iter().find(|e| e["subresource"] == "status").unwrap();
        assert_eq!(
            status["fieldsV1"],
            json!({"f:status": {"f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}})
        );
    }

    #[test]
    fn container_ports_key_by_port_and_default_protocol() {
        let mut d = created_deployment();
        d["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        record_update(None, &mut d, "unknown", "apps/v1", None, T0);
        let c = &entries(&d)[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"podinfod\"}"];
        assert_eq!(
            c["f:ports"],
            json!({".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
        );
    }

    fn apply_replicas() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "podinfo", "namespace": "capture"}, "spec": {"replicas": 5}})
    }

    #[test]
    fn apply_of_a_field_another_manager_owns_conflicts_as_the_fixture_shows() {
        let err = apply(
            Some(&created()),
            &apply_replicas(),
            "other-manager",
            false,
            "apps/v1",
            T1,
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(err.reason, "Conflict");
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"unknown\" using apps/v1: .spec.replicas"
        );
        assert_eq!(
            err.details,
            Some(json!({"causes": [{"reason": "FieldManagerConflict",
                "message": "conflict with \"unknown\" using apps/v1", "field": ".spec.replicas"}]}))
        );
    }

    #[test]
    fn several_conflicts_are_listed_per_manager() {
        let mut cfg = apply_replicas();
        cfg["spec"]["revisionHistoryLimit"] = json!(3);
        let err = apply(
            Some(&created()),
            &cfg,
            "other-manager",
            false,
            "apps/v1",
            T1,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 2 conflicts: conflicts with \"unknown\" using apps/v1:\n- .spec.replicas\n- .spec.revisionHistoryLimit"
        );
        assert_eq!(err.details.unwrap()["causes"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn forced_apply_takes_the_field_as_the_fixture_shows() {
        let out = apply(
            Some(&created()),
            &apply_replicas(),
            "other-manager",
            true,
            "apps/v1",
            T1,
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        let e = entries(&out);
        assert_eq!(e[0]["manager"], "other-manager");
        assert_eq!(e[0]["operation"], "Apply");
        assert_eq!(e[0]["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(e[1]["manager"], "unknown");
        let mut expected = creator_fields();
        expected["f:spec"]
            .as_object_mut()
            .unwrap()
            .remove("f:replicas");
        assert_eq!(e[1]["fieldsV1"], expected);
    }

    #[test]
    fn applying_the_same_value_shares_ownership_without_conflict() {
        let mut cfg = apply_replicas();
        cfg["spec"]["replicas"] = json!(2);
        let out = apply(
            Some(&created()),
            &cfg,
            "other-manager",
            false,
            "apps/v1",
            T1,
        )
        .unwrap();
        let e = entries(&out);
        assert!(
            e.iter()
                .all(|e| e["fieldsV1"]["f:spec"].get("f:replicas").is_some())
        );
    }

    #[test]
    fn apply_creates_an_object_owning_only_what_it_set() {
        let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:1"}]}}}});
        let out = apply(None, &cfg, "sluice", false, "apps/v1", T0).unwrap();
        assert_eq!(out["spec"], cfg["spec"]);
        assert_eq!(
            entries(&out)[0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
    }

    #[test]
    fn reapplying_without_a_field_removes_it_when_nobody_else_owns_it() {
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                         "data": {"a": "1", "b": "2"}});
        let first = apply(None, &cfg, "sluice", false, "v1", T0).unwrap();
        let mut shared = first.clone();
        shared["data"]["c"] = json!("3");
        record_update(Some(&first), &mut shared, "kubectl", "v1", None, T0);
        let cfg2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                          "data": {"a": "1"}});
        let second = apply(Some(&shared), &cfg2, "sluice", false, "v1", T1).unwrap();
        assert_eq!(second["data"], json!({"a": "1", "c": "3"}));
    }

    #[test]
    fn reapplying_keeps_a_dropped_field_another_manager_also_owns() {
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                         "data": {"a": "1", "b": "2"}});
        let first = apply(None, &cfg, "sluice", false, "v1", T0).unwrap();
        let co = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                        "data": {"b": "2"}});
        let shared = apply(Some(&first), &co, "other", false, "v1", T0).unwrap();
        let cfg2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                          "data": {"a": "1"}});
        let second = apply(Some(&shared), &cfg2, "sluice", false, "v1", T1).unwrap();
        assert_eq!(second["data"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn apply_merges_containers_by_name() {
        let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "podinfo"},
            "spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": "podinfo:7"}]}}}});
        let out = apply(Some(&created()), &cfg, "sluice", true, "apps/v1", T1).unwrap();
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "podinfo:7");
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn reapplying_without_a_container_removes_the_whole_container() {
        let cfg = |names: &[&str]| {
            let containers: Vec<Value> = names
                .iter()
                .map(|n| json!({"name": n, "image": format!("{n}:1")}))
                .collect();
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"template": {"spec": {"containers": containers}}}})
        };
        let first = apply(None, &cfg(&["a", "b"]), "sluice", false, "apps/v1", T0).unwrap();
        let second = apply(Some(&first), &cfg(&["a"]), "sluice", false, "apps/v1", T1).unwrap();
        assert_eq!(
            second["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:1"}])
        );
        assert_eq!(
            entries(&second)[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"],
            json!({"k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}}})
        );
    }

    #[test]
    fn reproduces_the_fixture_managed_fields_through_status_merge_patch_and_forced_apply() {
        let created = created();
        // kube-controller-manager writes the revision annotation and status (status subresource).
        let mut status = created.clone();
        status["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
        status["status"] = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
            "readyReplicas": 2, "availableReplicas": 2, "terminatingReplicas": 0,
            "conditions": [
                {"type": "Available", "status": "True", "lastUpdateTime": T0, "lastTransitionTime": T0,
                 "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True", "lastUpdateTime": T0, "lastTransitionTime": T0,
                 "reason": "NewReplicaSetAvailable", "message": "ReplicaSet \"podinfo-7d56c449dd\" has successfully progressed."}]});
        record_update(
            Some(&created),
            &mut status,
            "kube-controller-manager",
            "apps/v1",
            Some("status"),
            T1,
        );
        // patch-merge: the annotation a=b by "unknown".
        let mut merged = status.clone();
        merged["metadata"]["annotations"]["a"] = json!("b");
        record_update(Some(&status), &mut merged, "unknown", "apps/v1", None, T1);
        // apply-force: other-manager takes spec.replicas.
        let out = apply(
            Some(&merged),
            &apply_replicas(),
            "other-manager",
            true,
            "apps/v1",
            T1,
        )
        .unwrap();
        let conditions = json!({".": {},
            "k:{\"type\":\"Available\"}": {".": {}, "f:lastTransitionTime": {}, "f:lastUpdateTime": {},
                "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}},
            "k:{\"type\":\"Progressing\"}": {".": {}, "f:lastTransitionTime": {}, "f:lastUpdateTime": {},
                "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}}});
        let mut unknown = creator_fields();
        unknown["f:spec"]
            .as_object_mut()
            .unwrap()
            .remove("f:replicas");
        unknown["f:metadata"]["f:annotations"] = json!({"f:a": {}});
        assert_eq!(
            out["metadata"]["managedFields"],
            json!([
                {"manager": "other-manager", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
                 "time": T1, "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {
                    "f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}},
                    "f:status": {"f:availableReplicas": {}, "f:conditions": conditions,
                        "f:observedGeneration": {}, "f:readyReplicas": {}, "f:replicas": {},
                        "f:terminatingReplicas": {}, "f:updatedReplicas": {}}}},
                {"manager": "unknown", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
                 "fieldsType": "FieldsV1", "fieldsV1": unknown}
            ])
        );
    }

    #[test]
    fn apply_refuses_managed_fields_in_the_configuration() {
        let cfg = json!({"kind": "ConfigMap", "metadata": {"name": "c", "managedFields": []}});
        let err = apply(None, &cfg, "m", false, "v1", T0).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn conflicts_name_subresource_managers() {
        let id = Identity {
            manager: "kcm".into(),
            operation: Operation::Update,
            api_version: "apps/v1".into(),
            subresource: Some("status".into()),
        };
        assert_eq!(
            id.describe(),
            "\"kcm\" with subresource \"status\" using apps/v1"
        );
        assert_eq!(
            display_path(&[
                "f:spec".into(),
                "k:{\"name\":\"a\"}".into(),
                "f:image".into()
            ]),
            ".spec[name=\"a\"].image"
        );
    }
}
