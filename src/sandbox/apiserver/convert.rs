//! Conversion between the versions of a kind that share one storage but not one shape.
//!
//! Events are the one such kind the sandbox serves: kube-apiserver keeps every Event in one
//! storage and serves it both as `v1` `Event` (what `kubectl get events` and
//! `kubectl describe` read) and as `events.k8s.io/v1` `Event` (what kube-runtime's `Recorder`
//! writes). The field renames are those of kube's `pkg/apis/events/v1` conversion:
//!
//! | events.k8s.io/v1 | v1 (storage) |
//! |---|---|
//! | `note` | `message` |
//! | `regarding` | `involvedObject` |
//! | `reportingController` | `reportingComponent` |
//! | `deprecatedSource` | `source` |
//! | `deprecatedFirstTimestamp` | `firstTimestamp` |
//! | `deprecatedLastTimestamp` | `lastTimestamp` |
//! | `deprecatedCount` | `count` |
//!
//! Every other field (`metadata`, `eventTime`, `series`, `related`, `action`, `reason`, `type`,
//! `reportingInstance`) has the same name and shape in both. Kinds whose versions share a shape
//! (TrafficSplit v1alpha1/v1alpha2 as the sandbox serves them) need no conversion.

use serde_json::{Map, Value};

use super::resources::ResourceKind;

/// (`events.k8s.io/v1` name, `v1` name)
const EVENT_RENAMES: [(&str, &str); 7] = [
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_events_v1(kind: &ResourceKind) -> bool {
    kind.group == "events.k8s.io" && kind.kind == "Event"
}

fn rename(obj: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let mut renamed = Map::new();
    for (from, to) in pairs {
        if let Some(v) = map.remove(from) {
            renamed.insert(to.to_string(), v);
        }
    }
    map.extend(renamed);
}

/// `obj`, as served at `kind`'s version, in its storage shape.
pub fn to_storage(kind: &ResourceKind, mut obj: Value) -> Value {
    if is_events_v1(kind) {
        rename(&mut obj, EVENT_RENAMES.into_iter());
    }
    obj
}

/// `obj`, as stored, in the shape `kind`'s version serves.
pub fn from_storage(kind: &ResourceKind, mut obj: Value) -> Value {
    if is_events_v1(kind) {
        rename(&mut obj, EVENT_RENAMES.into_iter().map(|(a, b)| (b, a)));
    }
    obj
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sandbox::apiserver::resources::builtin_kinds;

    fn kind(group: &str, plural: &str) -> ResourceKind {
        builtin_kinds()
            .into_iter()
            .find(|k| k.group == group && k.plural == plural)
            .unwrap()
    }

    fn recorder_event() -> Value {
        json!({
            "metadata": {"name": "podinfo.1", "namespace": "shop"},
            "eventTime": "2026-11-27T12:00:00.000000Z",
            "reportingController": "sluice", "reportingInstance": "sandbox",
            "action": "Rollout", "reason": "Advanced", "type": "Normal",
            "note": "weight 0% → 20%",
            "regarding": {"kind": "Deployment", "name": "podinfo", "namespace": "shop"},
            "series": {"count": 2, "lastObservedTime": "2026-11-27T12:00:05.000000Z"},
        })
    }

    #[test]
    fn an_events_v1_event_is_stored_with_the_core_field_names() {
        let stored = to_storage(&kind("events.k8s.io", "events"), recorder_event());
        assert_eq!(stored["message"], "weight 0% → 20%");
        assert_eq!(stored["involvedObject"]["name"], "podinfo");
        assert_eq!(stored["reportingComponent"], "sluice");
        assert_eq!(stored["series"]["count"], 2);
        for gone in ["note", "regarding", "reportingController"] {
            assert!(stored.get(gone).is_none(), "{gone} left in {stored}");
        }
    }

    #[test]
    fn the_conversion_round_trips() {
        let k = kind("events.k8s.io", "events");
        assert_eq!(
            from_storage(&k, to_storage(&k, recorder_event())),
            recorder_event()
        );
    }

    #[test]
    fn core_events_and_other_kinds_pass_unchanged() {
        let core = json!({"message": "m", "involvedObject": {"name": "x"}, "count": 3});
        assert_eq!(to_storage(&kind("", "events"), core.clone()), core);
        assert_eq!(from_storage(&kind("", "events"), core.clone()), core);
        let d = json!({"note": "a Deployment annotation is not an event field"});
        assert_eq!(from_storage(&kind("apps", "deployments"), d.clone()), d);
    }
}
