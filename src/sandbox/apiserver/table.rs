//! `meta.k8s.io/v1` Table output, which `kubectl get` asks for (`Accept: application/json;
//! as=Table;v=v1;g=meta.k8s.io`), with the columns kube-apiserver prints for the kinds kubectl
//! users look at most (Deployments, Services, Namespaces, ConfigMaps, Secrets, Leases).
//!
//! Events (both `v1` and `events.k8s.io/v1`) get kube's event columns (LAST SEEN, TYPE, REASON,
//! OBJECT, MESSAGE; SUBOBJECT, SOURCE, FIRST SEEN, COUNT, NAME with `-o wide`).
//!
//! Differences from kube-apiserver: other kinds get only NAME and AGE (the real server has
//! per-kind columns for Ingresses and HPAs, and CRD `additionalPrinterColumns`);
//! `includeObject=Object` is answered as `Metadata` (rows carry PartialObjectMetadata).

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::resources::ResourceKind;

/// Whether an `Accept` header asks for `meta.k8s.io/v1` Tables.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.contains(&"v=v1")
    })
}

fn column(name: &str, kind: &str, format: &str, description: &str, priority: u8) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

/// The column definitions for `kind`.
pub fn columns(kind: &ResourceKind) -> Vec<Value> {
    if kind.kind == "Event" {
        return [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1),
        ]
        .into_iter()
        .map(|(name, priority)| column(name, "string", "", "", priority))
        .collect();
    }
    let name = column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    );
    let age = column(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    );
    let mut cols = vec![name];
    match kind.kind {
        "Deployment" => {
            cols.push(column(
                "Ready",
                "string",
                "",
                "Number of the pod with ready state",
                0,
            ));
            cols.push(column("Up-to-date", "integer", "", "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", 0));
            cols.push(column("Available", "integer", "", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", 0));
            cols.push(age);
            cols.push(column(
                "Containers",
                "string",
                "",
                "Names of each container in the template.",
                1,
            ));
            cols.push(column(
                "Images",
                "string",
                "",
                "Images referenced by each container in the template.",
                1,
            ));
            cols.push(column("Selector", "string", "", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", 1));
        }
        "Service" => {
            cols.push(column("Type", "string", "", "Type of the service.", 0));
            cols.push(column(
                "Cluster-IP",
                "string",
                "",
                "The cluster IP of the service.",
                0,
            ));
            cols.push(column(
                "External-IP",
                "string",
                "",
                "The external IP of the service.",
                0,
            ));
            cols.push(column(
                "Port(s)",
                "string",
                "",
                "The ports of the service.",
                0,
            ));
            cols.push(age);
            cols.push(column(
                "Selector",
                "string",
                "",
                "Route service traffic to pods with label keys and values matching this selector.",
                1,
            ));
        }
        "Namespace" => {
            cols.push(column(
                "Status",
                "string",
                "",
                "The status of the namespace",
                0,
            ));
            cols.push(age);
        }
        "ConfigMap" => {
            cols.push(column(
                "Data",
                "integer",
                "",
                "Number of entries in the data.",
                0,
            ));
            cols.push(age);
        }
        "Secret" => {
            cols.push(column("Type", "string", "", "The type of the secret", 0));
            cols.push(column(
                "Data",
                "integer",
                "",
                "Number of entries in the data.",
                0,
            ));
            cols.push(age);
        }
        "ServiceAccount" => {
            cols.push(column(
                "Secrets",
                "integer",
                "",
                "Number of secrets the service account references.",
                0,
            ));
            cols.push(age);
        }
        "ClusterRole" | "Role" => cols.push(column(
            "Created At",
            "date",
            "",
            "Time is the time the object was created.",
            0,
        )),
        "ClusterRoleBinding" | "RoleBinding" => {
            cols.push(column(
                "Role",
                "string",
                "",
                "RoleRef to the role being bound.",
                0,
            ));
            cols.push(age);
        }
        "PodDisruptionBudget" => {
            cols.push(column(
                "Min Available",
                "string",
                "",
                "The minimum number of pods that must be available.",
                0,
            ));
            cols.push(column(
                "Max Unavailable",
                "string",
                "",
                "The maximum number of pods that may be unavailable.",
                0,
            ));
            cols.push(column(
                "Allowed Disruptions",
                "integer",
                "",
                "Calculated number of pods that may be disrupted at this time.",
                0,
            ));
            cols.push(age);
        }
        "Lease" => {
            cols.push(column(
                "Holder",
                "string",
                "",
                "The holder of the lease.",
                0,
            ));
            cols.push(age);
        }
        _ => cols.push(age),
    }
    cols
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

fn count(v: &Value) -> usize {
    v.as_object().map_or(0, |m| m.len())
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

fn selector_string(sel: &Value) -> String {
    sel.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// `Age`: kube's `HumanDuration` of the time since `metadata.creationTimestamp`.
fn age(obj: &Value, now: SystemTime) -> String {
    let Some(ts) = obj["metadata"]["creationTimestamp"].as_str() else {
        return "<unknown>".to_string();
    };
    match humantime::parse_rfc3339(ts) {
        Ok(created) => match now.duration_since(created) {
            Ok(d) => human_duration(d),
            Err(_) => "0s".to_string(),
        },
        Err(_) => "<invalid>".to_string(),
    }
}

/// kube's `duration.HumanDuration`: `45s`, `3m20s`, `15m`, `5h30m`, `2d3h`, `40d`, `3y`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (m, h, day) = (60, 3600, 86400);
    if secs < 2 * m {
        format!("{secs}s")
    } else if secs < 10 * m {
        let s = secs % m;
        if s == 0 {
            format!("{}m", secs / m)
        } else {
            format!("{}m{s}s", secs / m)
        }
    } else if secs < 3 * h {
        format!("{}m", secs / m)
    } else if secs < 8 * h {
        let mins = (secs % h) / m;
        if mins == 0 {
            format!("{}h", secs / h)
        } else {
            format!("{}h{mins}m", secs / h)
        }
    } else if secs < 2 * day {
        format!("{}h", secs / h)
    } else if secs < 8 * day {
        let hours = (secs % day) / h;
        if hours == 0 {
            format!("{}d", secs / day)
        } else {
            format!("{}d{hours}h", secs / day)
        }
    } else if secs < 2 * 365 * day {
        format!("{}d", secs / day)
    } else if secs < 8 * 365 * day {
        let years = secs / (365 * day);
        let days = (secs % (365 * day)) / day;
        if days == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{days}d")
        }
    } else {
        format!("{}y", secs / (365 * day))
    }
}

/// The cells of one object's row, in `columns(kind)` order.
pub fn cells(kind: &ResourceKind, obj: &Value, now: SystemTime) -> Vec<Value> {
    if kind.kind == "Event" {
        return event_cells(&super::convert::to_storage(kind, obj.clone()), now);
    }
    let name = json!(obj["metadata"]["name"].as_str().unwrap_or_default());
    let age = json!(age(obj, now));
    match kind.kind {
        "Deployment" => {
            let containers = obj["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let names: Vec<&str> = containers
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            let images: Vec<&str> = containers
                .iter()
                .filter_map(|c| c["image"].as_str())
                .collect();
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&obj["status"]["readyReplicas"]),
                    obj["spec"]["replicas"].as_i64().unwrap_or(1)
                )),
                json!(int(&obj["status"]["updatedReplicas"])),
                json!(int(&obj["status"]["availableReplicas"])),
                age,
                json!(names.join(",")),
                json!(images.join(",")),
                json!(or_none(selector_string(
                    &obj["spec"]["selector"]["matchLabels"]
                ))),
            ]
        }
        "Service" => {
            let ports: Vec<String> = obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        int(&p["port"]),
                        p["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            vec![
                name,
                json!(obj["spec"]["type"].as_str().unwrap_or("ClusterIP")),
                json!(obj["spec"]["clusterIP"].as_str().unwrap_or("<none>")),
                json!("<none>"),
                json!(or_none(ports.join(","))),
                age,
                json!(or_none(selector_string(&obj["spec"]["selector"]))),
            ]
        }
        "Namespace" => vec![
            name,
            json!(obj["status"]["phase"].as_str().unwrap_or("Active")),
            age,
        ],
        "ConfigMap" => vec![
            name,
            json!(count(&obj["data"]) + count(&obj["binaryData"])),
            age,
        ],
        "Secret" => vec![
            name,
            json!(obj["type"].as_str().unwrap_or("Opaque")),
            json!(count(&obj["data"])),
            age,
        ],
        "ServiceAccount" => vec![name, json!(len(&obj["secrets"])), age],
        "ClusterRole" | "Role" => vec![
            name,
            json!(
                obj["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("<unknown>")
            ),
        ],
        "ClusterRoleBinding" | "RoleBinding" => vec![
            name,
            json!(format!(
                "{}/{}",
                obj["roleRef"]["kind"].as_str().unwrap_or_default(),
                obj["roleRef"]["name"].as_str().unwrap_or_default()
            )),
            age,
        ],
        "PodDisruptionBudget" => {
            let bound = |v: &Value| match v {
                Value::Null => "N/A".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![
                name,
                json!(bound(&obj["spec"]["minAvailable"])),
                json!(bound(&obj["spec"]["maxUnavailable"])),
                json!(int(&obj["status"]["disruptionsAllowed"])),
                age,
            ]
        }
        "Lease" => vec![
            name,
            json!(obj["spec"]["holderIdentity"].as_str().unwrap_or("")),
            age,
        ],
        _ => vec![name, age],
    }
}

/// Time since an RFC 3339 timestamp, as kubectl prints it; `<unknown>` without one.
fn since(ts: &Value, now: SystemTime) -> String {
    ts.as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .map(|t| human_duration(now.duration_since(t).unwrap_or_default()))
        .unwrap_or_else(|| "<unknown>".to_string())
}

/// kube's event printer, over a `v1` (storage-shaped) Event.
fn event_cells(ev: &Value, now: SystemTime) -> Vec<Value> {
    let first = ["firstTimestamp", "eventTime"]
        .iter()
        .map(|k| &ev[*k])
        .find(|v| v.is_string())
        .unwrap_or(&Value::Null);
    let last = [&ev["series"]["lastObservedTime"], &ev["lastTimestamp"]]
        .into_iter()
        .find(|v| v.is_string())
        .unwrap_or(first);
    let object = &ev["involvedObject"];
    let source = match (
        ev["source"]["component"].as_str(),
        ev["reportingComponent"].as_str(),
    ) {
        (Some(c), _) if !c.is_empty() => c.to_string(),
        (_, Some(c)) => format!("{c}, {}", ev["reportingInstance"].as_str().unwrap_or("")),
        _ => String::new(),
    };
    let count = ev["series"]["count"]
        .as_i64()
        .or(ev["count"].as_i64())
        .unwrap_or(1);
    [
        since(last, now),
        ev["type"].as_str().unwrap_or("").to_string(),
        ev["reason"].as_str().unwrap_or("").to_string(),
        format!(
            "{}/{}",
            object["kind"].as_str().unwrap_or("").to_lowercase(),
            object["name"].as_str().unwrap_or("")
        ),
        object["fieldPath"].as_str().unwrap_or("").to_string(),
        source,
        ev["message"].as_str().unwrap_or("").trim().to_string(),
        since(first, now),
        count.to_string(),
        ev["metadata"]["name"].as_str().unwrap_or("").to_string(),
    ]
    .into_iter()
    .map(Value::from)
    .collect()
}

/// One row: cells plus the object's metadata as PartialObjectMetadata.
pub fn row(kind: &ResourceKind, obj: &Value, now: SystemTime) -> Value {
    let mut meta = obj["metadata"].clone();
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
    }
    json!({
        "cells": cells(kind, obj, now),
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
    })
}

/// A Table of `objects`, with `list_meta` (resourceVersion, continue) as its metadata.
pub fn table(kind: &ResourceKind, objects: &[Value], list_meta: Value) -> Value {
    let now = SystemTime::now();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(kind),
        "rows": objects.iter().map(|o| row(kind, o, now)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::apiserver::resources::builtin_kinds;

    fn kind(plural: &str) -> ResourceKind {
        builtin_kinds()
            .into_iter()
            .find(|k| k.plural == plural)
            .unwrap()
    }

    #[test]
    fn recognises_the_accept_header_kubectl_get_sends() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(!wants_table(
            "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
        ));
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let cases = [
            (45, "45s"),
            (119, "119s"),
            (200, "3m20s"),
            (900, "15m"),
            (5 * 3600 + 1800, "5h30m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (40 * 86400, "40d"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn deployment_rows_show_ready_over_desired_replicas() {
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "main", "image": "web:1"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        let now = humantime::parse_rfc3339("2026-01-01T00:05:00Z").unwrap();
        let cells = cells(&kind("deployments"), &d, now);
        assert_eq!(
            cells,
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("5m"),
                json!("main"),
                json!("web:1"),
                json!("app=web")
            ]
        );
        assert_eq!(columns(&kind("deployments")).len(), cells.len());
    }

    #[test]
    fn bindings_show_their_role_and_budgets_their_bounds() {
        let now = SystemTime::now();
        let binding = json!({"metadata": {"name": "sluice"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "sluice"}});
        let kinds = builtin_kinds();
        let crb = kinds
            .iter()
            .find(|k| k.kind == "ClusterRoleBinding")
            .unwrap();
        assert_eq!(cells(crb, &binding, now)[1], json!("ClusterRole/sluice"));
        let pdb = json!({"metadata": {"name": "sluice"}, "spec": {"minAvailable": 1},
            "status": {"disruptionsAllowed": 1}});
        let kind = kinds
            .iter()
            .find(|k| k.kind == "PodDisruptionBudget")
            .unwrap();
        assert_eq!(
            cells(kind, &pdb, now)[1..4],
            [json!("1"), json!("N/A"), json!(1)]
        );
    }

    #[test]
    fn every_kind_has_as_many_cells_as_columns() {
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        for k in builtin_kinds() {
            assert_eq!(
                columns(&k).len(),
                cells(&k, &obj, SystemTime::now()).len(),
                "{}",
                k.kind
            );
        }
    }

    #[test]
    fn events_print_as_kubectl_prints_them_whichever_api_wrote_them() {
        let kinds = builtin_kinds();
        let now = humantime::parse_rfc3339("2026-11-27T12:01:00Z").unwrap();
        let v1 = kinds.iter().find(|k| k.group == "events.k8s.io").unwrap();
        let ev = json!({
            "metadata": {"name": "podinfo.1"},
            "eventTime": "2026-11-27T12:00:00.000000Z",
            "series": {"count": 3, "lastObservedTime": "2026-11-27T12:00:30.000000Z"},
            "type": "Warning", "reason": "CheckFailed", "note": "success rate 90% < 99% ",
            "regarding": {"kind": "Deployment", "name": "podinfo"},
            "reportingController": "sluice", "reportingInstance": "pod-a",
        });
        let cols = columns(v1);
        let names: Vec<&str> = cols
            .iter()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Last Seen", "Type", "Reason", "Object", "Message"]);
        assert_eq!(
            cells(v1, &ev, now),
            vec![
                json!("30s"),
                json!("Warning"),
                json!("CheckFailed"),
                json!("deployment/podinfo"),
                json!(""),
                json!("sluice, pod-a"),
                json!("success rate 90% < 99%"),
                json!("60s"),
                json!("3"),
                json!("podinfo.1"),
            ]
        );
    }
}
