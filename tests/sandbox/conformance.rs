//! Sandbox tests: conformance of the sandbox API server with kube-apiserver.
//!
//! `replays_every_captured_kube_apiserver_response` replays every case of
//! `tests/fixtures/apiserver-responses.json` (captured from kube-apiserver v1.36.2) in order;
//! the other tests drive the server through an unmodified `kube::Client`.
//!
//! What the replay normalises, because the capture generated it or did things in between:
//! uids and resourceVersions (taken from this server), the generated name's suffix, the
//! `too old resource version: 1 (N)` number, the continue token's rv, and the replicas of
//! `update-ok`/`patch-merge` (the capture scaled the Deployment to 3 before reading those
//! responses; the replay expects the 4 its request sent).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use reqwest::Method;
use serde_json::{Value, json};
use sluice::sandbox::apiserver::{ApiServer, ApiServerOptions, Identity};

use crate::support::{deployment, http, namespace, server, webhook};

/// The API of `K` in `default` for the server's admin.
async fn in_default<K>(server: &ApiServer) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(server.client(Identity::Admin).await.unwrap(), "default")
}

/// A request as the admin to `path` of `server`.
fn as_admin(server: &ApiServer, method: Method, path: &str) -> reqwest::RequestBuilder {
    http(server)
        .request(method, format!("{}{path}", server.url()))
        .bearer_auth(Identity::Admin.token())
}

/// The body of a GET of `path` as the admin (a watch's events, one a line).
async fn get_text(server: &ApiServer, path: &str) -> String {
    as_admin(server, Method::GET, path)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The Status a call was refused with; fails the test on a success or any other error.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("want an API error, got {other:?}"),
    }
}

/// An empty ConfigMap `name`.
fn mk_configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

/// A webhook that denies every request with `message`.
async fn denying_webhook(message: &'static str) -> (SocketAddr, String) {
    webhook(
        "validate",
        move |_| json!({"allowed": false, "status": {"code": 403, "message": message}}),
    )
    .await
}

fn fixture() -> serde_json::Map<String, Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/apiserver-responses.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture cases in capture order (later cases build on earlier ones).
const CASES: [&str; 20] = [
    "create-deployment",
    "create-already-exists",
    "create-generate-name",
    "get-not-found",
    "update-ok",
    "update-conflict-stale-resourceversion",
    "patch-merge",
    "patch-json-test-fails",
    "patch-json-ok",
    "patch-strategic-merge-containers",
    "apply-conflict-without-force",
    "apply-force",
    "invalid-deployment",
    "invalid-spec",
    "malformed-json",
    "unsupported-patch-type",
    "list-deployments",
    "watch-too-old-resourceversion",
    "delete-deployment",
    "create-denied-by-validating-webhook",
];

/// Differences between an expected and an actual value at `path`, as lines.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    if want != got {
        out.push(format!("{path}: want {want}, got {got}"));
    }
}

fn decode_token(token: &str) -> Value {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap_or_default();
    serde_json::from_slice(&raw).unwrap_or(Value::Null)
}

/// Compares a Status body: reason, message, code and details (uid normalised by the caller).
fn compare_status(want: &Value, got: &Value, out: &mut Vec<String>) {
    for f in ["kind", "status", "reason", "message", "code", "details"] {
        diff(f, &want[f], &got[f], out);
    }
}

/// Compares the parts of an object that matter: spec (with defaults), generation, labels and
/// annotations (the capture's `deployment.kubernetes.io/revision` arrives with the `update-ok`
/// request body, so the sandbox keeps it too).
fn compare_object(want: &Value, got: &Value, out: &mut Vec<String>) {
    diff("kind", &want["kind"], &got["kind"], out);
    diff("apiVersion", &want["apiVersion"], &got["apiVersion"], out);
    diff("spec", &want["spec"], &got["spec"], out);
    for f in [
        "generation",
        "labels",
        "annotations",
        "namespace",
        "generateName",
    ] {
        diff(
            &format!("metadata.{f}"),
            &want["metadata"][f],
            &got["metadata"][f],
            out,
        );
    }
    for f in ["uid", "resourceVersion", "creationTimestamp"] {
        if !got["metadata"][f].is_string() {
            out.push(format!("metadata.{f} is not set: {}", got["metadata"]));
        }
    }
}

#[tokio::test]
async fn replays_every_captured_kube_apiserver_response() {
    let server = server().await;
    let client = server.client(Identity::Admin).await.unwrap();
    namespace(&client, "capture").await;
    let http = http(&server);
    let cases = fixture();
    let mut names: Vec<&str> = cases.keys().map(String::as_str).collect();
    names.sort();
    let mut ordered = CASES.to_vec();
    ordered.sort();
    assert_eq!(
        names, ordered,
        "every fixture case is replayed, in the order of CASES"
    );

    let deployments = format!(
        "{}/apis/apps/v1/namespaces/capture/deployments",
        server.url()
    );
    let get_live = || async {
        http.get(format!("{deployments}/podinfo"))
            .bearer_auth(Identity::Admin.token())
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let mut failures: Vec<String> = Vec::new();
    let mut stale_rv = String::new();
    for name in CASES {
        let case = &cases[name];
        let req = &case["request"];
        let mut body = req["body"].clone();
        let mut want = case["response"].clone();
        let mut problems = Vec::new();

        // Normalise what the capture generated (uids, resourceVersions) to this server's.
        match name {
            "update-ok" => {
                let live = get_live().await;
                stale_rv = live["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string();
                body["metadata"]["resourceVersion"] = json!(stale_rv);
                body["metadata"]["uid"] = live["metadata"]["uid"].clone();
                // The capture scaled the Deployment to 3 before reading this response (and
                // the next one); the replay expects the replicas its request sent.
                want["spec"]["replicas"] = body["spec"]["replicas"].clone();
            }
            "patch-merge" => want["spec"]["replicas"] = json!(4),
            "update-conflict-stale-resourceversion" => {
                body["metadata"]["resourceVersion"] = json!(stale_rv);
                body["metadata"]["uid"] = get_live().await["metadata"]["uid"].clone();
            }
            "watch-too-old-resourceversion" => server.compact(),
            "delete-deployment" => {
                want["details"]["uid"] = get_live().await["metadata"]["uid"].clone();
            }
            "create-denied-by-validating-webhook" => {
                let message = "sluice.dev/step-weight: \"150\" is not a weight; use a whole number from 1 to 100";
                let (addr, ca) = denying_webhook(message).await;
                register_validating_webhook(&server, addr, &ca).await;
            }
            _ => {}
        }

        let method = Method::from_bytes(req["method"].as_str().unwrap().as_bytes()).unwrap();
        let mut r = http
            .request(
                method,
                format!("{}{}", server.url(), req["path"].as_str().unwrap()),
            )
            .bearer_auth(Identity::Admin.token());
        if !body.is_null() {
            let raw = match &body {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let ct = req["contentType"].as_str().unwrap_or("application/json");
            r = r.header("Content-Type", ct).body(raw);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        if status != case["status"].as_u64().unwrap() as u16 {
            problems.push(format!("HTTP {status}, want {}: {text}", case["status"]));
        }
        let got: Value = match name {
            "watch-too-old-resourceversion" => {
                let first = text.lines().next().unwrap_or_default();
                serde_json::from_str(first).unwrap_or(Value::Null)
            }
            _ => serde_json::from_str(&text).unwrap_or(Value::Null),
        };
        match name {
            "watch-too-old-resourceversion" => {
                diff("type", &want["type"], &got["type"], &mut problems);
                let obj = &got["object"];
                for f in ["kind", "status", "reason", "code"] {
                    diff(f, &want["object"][f], &obj[f], &mut problems);
                }
                let msg = obj["message"].as_str().unwrap_or_default();
                let (head, tail) = msg.split_once(" (").unwrap_or((msg, ""));
                if head != "too old resource version: 1"
                    || !tail
                        .trim_end_matches(')')
                        .chars()
                        .all(|c| c.is_ascii_digit())
                {
                    problems.push(format!("message {msg:?}"));
                }
            }
            "list-deployments" => {
                for f in ["kind", "apiVersion"] {
                    diff(f, &want[f], &got[f], &mut problems);
                }
                diff(
                    "metadata.remainingItemCount",
                    &want["metadata"]["remainingItemCount"],
                    &got["metadata"]["remainingItemCount"],
                    &mut problems,
                );
                let token = |v: &Value| {
                    let mut t =
                        decode_token(v["metadata"]["continue"].as_str().unwrap_or_default());
                    t.as_object_mut().map(|m| m.remove("rv"));
                    t
                };
                diff(
                    "continue (without rv)",
                    &token(&want),
                    &token(&got),
                    &mut problems,
                );
                diff(
                    "items[].metadata.name",
                    &json!(["podinfo"]),
                    &json!(got["items"].as_array().map(|i| {
                        i.iter()
                            .map(|o| o["metadata"]["name"].clone())
                            .collect::<Vec<_>>()
                    })),
                    &mut problems,
                );
                if got["metadata"]["resourceVersion"].as_str().is_none() {
                    problems.push("list metadata.resourceVersion missing".into());
                }
            }
            "create-generate-name" => {
                let generated = got["metadata"]["name"].as_str().unwrap_or_default();
                let suffix = generated.strip_prefix("podinfo-").unwrap_or_default();
                if suffix.len() != 5
                    || !suffix
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                {
                    problems.push(format!("generated name {generated:?}"));
                }
                compare_object(&want, &got, &mut problems);
            }
            "apply-force" => {
                compare_object(&want, &got, &mut problems);
                let applied = got["metadata"]["managedFields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| m["manager"] == "other-manager" && m["operation"] == "Apply");
                if !applied {
                    problems.push("managedFields has no other-manager/Apply entry".to_string());
                }
            }
            _ if want["kind"] == "Status" => compare_status(&want, &got, &mut problems),
            _ => compare_object(&want, &got, &mut problems),
        }
        for p in problems {
            failures.push(format!("{name}: {p}"));
        }
    }
    assert!(
        failures.is_empty(),
        "fixture cases that differ:\n{}",
        failures.join("\n")
    );
}

async fn register_validating_webhook(server: &ApiServer, addr: SocketAddr, ca_pem: &str) {
    use base64::Engine;
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "sluice"},
        "webhooks": [{
            "name": "validate.sluice.dev",
            "clientConfig": {"url": format!("https://{addr}/validate"),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem)},
            "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"], "scope": "*"}],
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail", "timeoutSeconds": 5
        }]
    });
    let resp = as_admin(
        server,
        Method::POST,
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    )
    .json(&config)
    .send()
    .await
    .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<Deployment>>> + Unpin),
) -> WatchEvent<Deployment> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a watch event within 5s")
        .expect("the stream is open")
        .expect("a decodable event")
}

/// Asserts that the next event is `kind` (`ADDED`, `MODIFIED`, …) of `name`.
async fn expect_event(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<Deployment>>> + Unpin),
    kind: &str,
    name: &str,
) {
    let event = next_event(stream).await;
    assert_eq!(event_name(&event), (kind.to_string(), name.to_string()));
}

fn event_name(e: &WatchEvent<Deployment>) -> (String, String) {
    match e {
        WatchEvent::Added(d) => ("ADDED".into(), d.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Modified(d) => (
            "MODIFIED".into(),
            d.metadata.name.clone().unwrap_or_default(),
        ),
        WatchEvent::Deleted(d) => (
            "DELETED".into(),
            d.metadata.name.clone().unwrap_or_default(),
        ),
        WatchEvent::Bookmark(_) => ("BOOKMARK".into(), String::new()),
        WatchEvent::Error(e) => ("ERROR".into(), e.to_string()),
    }
}

#[tokio::test]
async fn a_watch_resumes_after_a_resource_version() {
    let server = server().await;
    let client = server.client(Identity::Sluice).await.unwrap();
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let a = api
        .create(&PostParams::default(), &deployment("a", "a", 1))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    api.create(&PostParams::default(), &deployment("b", "b", 1))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    expect_event(&mut stream, "ADDED", "b").await;
    expect_event(&mut stream, "MODIFIED", "a").await;
    api.delete("b", &DeleteParams::default()).await.unwrap();
    expect_event(&mut stream, "DELETED", "b").await;
}

#[tokio::test]
async fn a_watch_from_a_compacted_resource_version_gets_an_expired_error_event() {
    let server = server().await;
    let client = server.client(Identity::Sluice).await.unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let a = api
        .create(&PostParams::default(), &deployment("a", "a", 1))
        .await
        .unwrap();
    api.create(&PostParams::default(), &deployment("b", "b", 1))
        .await
        .unwrap();
    server.compact();
    let rv = a.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(
                e.message
                    .starts_with(&format!("too old resource version: {rv} (")),
                "{}",
                e.message
            );
        }
        other => panic!("want a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_raw_watch_from_a_compacted_version_is_one_error_event_and_the_runtime_watcher_relists() {
    let server = server().await;
    let client = server.client(Identity::Admin).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &mk_configmap("one"))
        .await
        .unwrap();
    server.compact();
    let resp = as_admin(
        &server,
        Method::GET,
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let event: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(event["object"]["code"], 410);

    // kube::runtime::watcher: after its watch ends, it re-watches from the last resourceVersion
    // it saw; that is now compacted, so it gets 410 and relists.
    use kube::runtime::watcher;
    let labelled = |name: &str, app: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}}})).unwrap()
    };
    api.create(&PostParams::default(), &labelled("web-1", "web"))
        .await
        .unwrap();
    let cfg = watcher::Config::default()
        .labels("app=web")
        .timeout(1)
        .disable_bookmarks();
    let mut w = watcher::watcher(api.clone(), cfg).boxed();
    let mut inits = 0;
    let mut expired = false;
    let mut relisted = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while inits < 2 && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
            Ok(Some(Ok(watcher::Event::InitDone))) => {
                inits += 1;
                if inits == 1 {
                    // Outside the selection, so the watcher's resourceVersion does not move.
                    api.create(&PostParams::default(), &labelled("db-1", "db"))
                        .await
                        .unwrap();
                    server.compact();
                    api.create(&PostParams::default(), &labelled("db-2", "db"))
                        .await
                        .unwrap();
                }
            }
            Ok(Some(Ok(watcher::Event::InitApply(c)))) if inits == 1 => {
                relisted.push(c.metadata.name.unwrap())
            }
            Ok(Some(Err(e))) => expired |= e.to_string().contains("Expired"),
            _ => {}
        }
    }
    assert!(expired, "the watcher saw the 410");
    assert_eq!(
        (inits, relisted),
        (2, vec!["web-1".to_string()]),
        "and relisted"
    );
}

#[tokio::test]
async fn an_update_with_a_stale_resource_version_conflicts() {
    let server = server().await;
    let api: Api<Deployment> = in_default(&server).await;
    let first = api
        .create(&PostParams::default(), &deployment("web", "web", 1))
        .await
        .unwrap();
    let mut second = first.clone();
    second.spec.as_mut().unwrap().replicas = Some(2);
    let second = api
        .replace("web", &PostParams::default(), &second)
        .await
        .unwrap();
    assert_eq!(second.metadata.generation, Some(2));
    let mut stale = first.clone();
    stale.spec.as_mut().unwrap().replicas = Some(5);
    let s = refusal(api.replace("web", &PostParams::default(), &stale).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );
    // Without a resourceVersion the update is unconditional.
    stale.metadata.resource_version = None;
    let third = api
        .replace("web", &PostParams::default(), &stale)
        .await
        .unwrap();
    assert_eq!(third.spec.unwrap().replicas, Some(5));
}

#[tokio::test]
async fn a_patch_that_sets_a_stale_resource_version_conflicts_whatever_its_type() {
    let server = server().await;
    let api: Api<Deployment> = in_default(&server).await;
    let first = api
        .create(&PostParams::default(), &deployment("web", "web", 1))
        .await
        .unwrap();
    let stale = first.metadata.resource_version.clone().unwrap();
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    let json_patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": stale},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
    ]))
    .unwrap();
    let s = refusal(
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::<()>::Json(json_patch),
        )
        .await,
    );
    assert_eq!(
        (s.code, s.reason.as_str()),
        (409, "Conflict"),
        "{}",
        s.message
    );
    let merge = json!({"metadata": {"resourceVersion": stale}, "spec": {"replicas": 3}});
    let s = refusal(
        api.patch("web", &PatchParams::default(), &Patch::Merge(&merge))
            .await,
    );
    assert_eq!(
        (s.code, s.reason.as_str()),
        (409, "Conflict"),
        "{}",
        s.message
    );
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(2)
    );
}

#[tokio::test]
async fn server_side_apply_conflicts_without_force_and_wins_with_it() {
    let server = server().await;
    let api: Api<Deployment> = in_default(&server).await;
    let applied = api
        .patch(
            "web",
            &PatchParams::apply("first"),
            &Patch::Apply(deployment("web", "web", 1)),
        )
        .await
        .unwrap();
    assert_eq!(
        applied.metadata.generation,
        Some(1),
        "apply creates a missing object"
    );
    let patch = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}});
    let s = refusal(
        api.patch("web", &PatchParams::apply("second"), &Patch::Apply(&patch))
            .await,
    );
    assert_eq!(
        (s.code, s.reason.as_str()),
        (409, "Conflict"),
        "{}",
        s.message
    );
    let forced = api
        .patch(
            "web",
            &PatchParams::apply("second").force(),
            &Patch::Apply(&patch),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.unwrap().replicas, Some(4));
}

#[tokio::test]
async fn merge_json_and_strategic_patches_apply() {
    let server = server().await;
    let api: Api<Deployment> = in_default(&server).await;
    let mut d = deployment("web", "web", 1);
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers
        .push(serde_json::from_value(json!({"name": "sidecar", "image": "proxy:1"})).unwrap());
    api.create(&PostParams::default(), &d).await.unwrap();
    let merged = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.metadata.annotations.unwrap()["a"], "b");
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]))
            .unwrap();
    let jsoned = api
        .patch("web", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(jsoned.spec.unwrap().replicas, Some(3));
    let strategic = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "web:2"}]}}}})),
        )
        .await
        .unwrap();
    let containers = strategic.spec.unwrap().template.spec.unwrap().containers;
    let images: Vec<(String, Option<String>)> =
        containers.into_iter().map(|c| (c.name, c.image)).collect();
    assert_eq!(
        images,
        vec![
            ("main".into(), Some("web:2".into())),
            ("sidecar".into(), Some("proxy:1".into()))
        ],
        "strategic merge keeps the sidecar (containers merge by name)"
    );
}

fn owned_configmap(name: &str, owner: &Deployment) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": owner.metadata.name,
            "uid": owner.metadata.uid, "blockOwnerDeletion": true, "controller": true
        }]}
    }))
    .unwrap()
}

#[tokio::test]
async fn background_deletion_collects_dependents() {
    let server = server().await;
    let client = server.client(Identity::Admin).await.unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = deploys
        .create(&PostParams::default(), &deployment("web", "web", 1))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &owned_configmap("dep", &owner))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "free"}})).unwrap(),
    )
    .await
    .unwrap();
    let orphaned = deploys
        .create(&PostParams::default(), &deployment("keep", "keep", 1))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &owned_configmap("kept", &orphaned))
        .await
        .unwrap();

    deploys
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    deploys
        .delete("keep", &DeleteParams::orphan())
        .await
        .unwrap();
    let mut left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    left.sort();
    assert_eq!(left, vec!["free", "kept"]);
    let kept = cms.get("kept").await.unwrap();
    assert!(
        kept.metadata.owner_references.is_none(),
        "orphaning strips the owner reference"
    );
}

#[tokio::test]
async fn foreground_deletion_removes_dependents_before_the_owner() {
    let server = server().await;
    let client = server.client(Identity::Admin).await.unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owner = deploys
        .create(&PostParams::default(), &deployment("web", "web", 1))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &owned_configmap("dep", &owner))
        .await
        .unwrap();
    let rv = owner.metadata.resource_version.clone().unwrap();
    let raw = as_admin(
        &server,
        Method::GET,
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1"
        ),
    );
    let deleted = deploys
        .delete("web", &DeleteParams::foreground())
        .await
        .unwrap();
    let shown = deleted
        .left()
        .expect("foreground deletion answers with the object");
    assert!(
        shown
            .metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(shown.metadata.deletion_timestamp.is_some());
    assert!(deploys.get_opt("web").await.unwrap().is_none());
    assert!(cms.get_opt("dep").await.unwrap().is_none());
    let events = raw.send().await.unwrap().text().await.unwrap();
    let types: Vec<String> = events
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, vec!["ADDED", "DELETED"]);
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists_and_watches() {
    let server = server().await;
    let api: Api<Deployment> = in_default(&server).await;
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        api.create(&PostParams::default(), &deployment(name, app, 1))
            .await
            .unwrap();
    }
    let names = |l: kube::core::ObjectList<Deployment>| {
        l.items
            .into_iter()
            .map(|d| d.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    let selected = [
        (ListParams::default().labels("app=web"), vec!["a", "b"]),
        (ListParams::default().labels("app notin (web)"), vec!["c"]),
        (
            ListParams::default().labels("app in (db,web),app!=web"),
            vec!["c"],
        ),
        (ListParams::default().labels("!app"), vec![]),
        (ListParams::default().fields("metadata.name=b"), vec!["b"]),
        (
            ListParams::default().fields("metadata.namespace=default,metadata.name!=a"),
            vec!["b", "c"],
        ),
    ];
    for (params, want) in selected {
        assert_eq!(names(api.list(&params).await.unwrap()), want, "{params:?}");
    }
    let all: Api<Deployment> = Api::all(server.client(Identity::Admin).await.unwrap());
    assert_eq!(
        names(all.list(&ListParams::default()).await.unwrap()).len(),
        3
    );

    // An object leaving a watch's selection is sent as DELETED.
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("app=web"), &rv)
        .await
        .unwrap()
        .boxed();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    expect_event(&mut stream, "DELETED", "a").await;
}

#[tokio::test]
async fn limit_and_continue_page_through_a_list() {
    let server = server().await;
    let api: Api<ConfigMap> = in_default(&server).await;
    for i in 0..5 {
        api.create(&PostParams::default(), &mk_configmap(&format!("cm{i}")))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(2);
    let mut remaining = Vec::new();
    loop {
        let page = api.list(&params).await.unwrap();
        seen.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        remaining.push(page.metadata.remaining_item_count);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(seen, vec!["cm0", "cm1", "cm2", "cm3", "cm4"]);
    assert_eq!(remaining, vec![Some(3), Some(1), None]);
}

#[tokio::test]
async fn an_unserved_group_version_leaves_discovery_and_answers_404() {
    let server = server().await;
    let get = |path: &str| as_admin(&server, Method::GET, path).send();
    let path = "/apis/split.smi-spec.io/v1alpha2/namespaces/default/trafficsplits";
    assert_eq!(get(path).await.unwrap().status().as_u16(), 200);
    server.set_served("split.smi-spec.io/v1alpha2", false);
    assert_eq!(get(path).await.unwrap().status().as_u16(), 404);
    assert_eq!(
        get("/apis/split.smi-spec.io/v1alpha2")
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let group: Value = get("/apis/split.smi-spec.io")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(group["preferredVersion"]["version"], "v1alpha1");
    let client = server.client(Identity::Admin).await.unwrap();
    let discovery = kube::discovery::Discovery::new(client).run().await.unwrap();
    let versions: Vec<String> = discovery
        .groups()
        .find(|g| g.name() == "split.smi-spec.io")
        .unwrap()
        .versions()
        .map(str::to_string)
        .collect();
    assert_eq!(versions, vec!["v1alpha1"]);
    server.set_served("split.smi-spec.io/v1alpha2", true);
    assert_eq!(get(path).await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn requests_without_a_known_token_are_unauthorized() {
    let server = server().await;
    let http = http(&server);
    let url = format!("{}/api/v1/namespaces", server.url());
    for resp in [
        http.get(&url).send().await.unwrap(),
        http.get(&url).bearer_auth("wrong").send().await.unwrap(),
    ] {
        assert_eq!(resp.status().as_u16(), 401);
        let status: Value = resp.json().await.unwrap();
        assert_eq!(
            (status["kind"].as_str(), status["reason"].as_str()),
            (Some("Status"), Some("Unauthorized"))
        );
    }
    let ok = http
        .get(&url)
        .bearer_auth(Identity::Sluice.token())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test]
async fn malformed_json_is_a_400_status_and_unknown_paths_are_404() {
    let server = server().await;
    let resp = as_admin(
        &server,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
    )
    .header("Content-Type", "application/json")
    .body("{\"metadata\": [")
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let status: Value = resp.json().await.unwrap();
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("the object provided is unrecognized (must be of type ConfigMap)")
    );
    for (method, path, code) in [
        (Method::GET, "/apis/nope.example.com/v1/things", 404),
        (Method::GET, "/api/v1/namespaces/default/widgets", 404),
        (Method::POST, "/api/v1/namespaces/default/configmaps/x", 405),
        (Method::POST, "/apis/apps/v1/deployments", 404),
    ] {
        let resp = as_admin(&server, method, path).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), code, "{path}");
    }
}

#[tokio::test]
async fn status_and_scale_subresources_write_only_their_part() {
    let server = server().await;
    let client = server.client(Identity::Admin).await.unwrap();
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &deployment("web", "web", 1))
        .await
        .unwrap();
    let patched = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}, "status": {"replicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.spec.as_ref().unwrap().replicas,
        Some(1),
        "status writes leave the spec"
    );
    assert_eq!(patched.status.as_ref().unwrap().replicas, Some(1));
    let ignored = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(
        ignored.status.unwrap().replicas,
        Some(1),
        "main-resource writes leave the status"
    );
    let status_apply = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "status": {"observedGeneration": 1, "replicas": 1}});
    let applied = api
        .patch_status(
            "web",
            &PatchParams::apply("sluice").force(),
            &Patch::Apply(&status_apply),
        )
        .await
        .unwrap();
    assert_eq!(
        applied.status.unwrap().observed_generation,
        Some(1),
        "server-side apply of status"
    );
    assert_eq!(applied.spec.unwrap().replicas, Some(1));
    let mut missing = status_apply.clone();
    missing["metadata"]["name"] = json!("missing");
    let s = refusal(
        api.patch_status(
            "missing",
            &PatchParams::apply("sluice"),
            &Patch::Apply(&missing),
        )
        .await,
    );
    assert_eq!(s.code, 404, "apply does not create through /status");
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    let scaled = api
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(3));
    let d = api.get("web").await.unwrap();
    assert_eq!(
        (d.spec.unwrap().replicas, d.metadata.generation),
        (Some(3), Some(2))
    );
}

#[tokio::test]
async fn dry_run_writes_persist_nothing_and_requests_are_counted() {
    let server = server().await;
    let api: Api<Deployment> = in_default(&server).await;
    let before = server.request_counts();
    api.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &deployment("web", "web", 1),
    )
    .await
    .unwrap();
    assert!(api.get_opt("web").await.unwrap().is_none());
    let after = server.request_counts();
    let delta =
        |verb: &str| after.get(verb).copied().unwrap_or(0) - before.get(verb).copied().unwrap_or(0);
    assert_eq!((delta("create"), delta("get")), (1, 1));
}

#[tokio::test]
async fn creates_need_an_existing_namespace_and_deleting_one_removes_its_objects() {
    let server = server().await;
    let client = server.client(Identity::Admin).await.unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "team");
    let s = refusal(
        api.create(&PostParams::default(), &deployment("web", "web", 1))
            .await,
    );
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, "namespaces \"team\" not found")
    );
    namespace(&client, "team").await;
    api.create(&PostParams::default(), &deployment("web", "web", 1))
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(client);
    let s = refusal(namespaces.delete("default", &DeleteParams::default()).await);
    assert_eq!(
        (s.code, s.message.as_str()),
        (
            403,
            "namespaces \"default\" is forbidden: this namespace may not be deleted"
        )
    );
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert!(namespaces.get_opt("team").await.unwrap().is_none());
    let all: Api<Deployment> = Api::all(server.client(Identity::Admin).await.unwrap());
    assert!(
        all.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn bookmarks_and_initial_events_end_are_sent_when_asked_for() {
    let server = ApiServer::start(ApiServerOptions {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    let text = get_text(&server, "/api/v1/namespaces?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1").await;
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let added = events.iter().take_while(|e| e["type"] == "ADDED").count();
    assert!(added >= 2, "the default namespaces first: {text}");
    assert_eq!(events[added]["type"], "BOOKMARK");
    assert_eq!(
        events[added]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(
        events.len() > added + 2,
        "periodic bookmarks follow: {text}"
    );
}

#[tokio::test]
async fn shutdown_ends_watches_and_stops_serving() {
    let server = server().await;
    let api: Api<Deployment> = in_default(&server).await;
    let mut stream = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    server.shutdown().await;
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(
        matches!(end, Ok(None) | Ok(Some(Err(_)))),
        "the watch ends on shutdown: {end:?}"
    );
    let after = as_admin(&server, Method::GET, "/version").send().await;
    assert!(after.is_err(), "no longer serving: {after:?}");
}

#[tokio::test]
async fn non_object_bodies_and_patches_are_400_not_a_crash() {
    const JSON: &str = "application/json";
    let server = server().await;
    let base = "/api/v1/namespaces/default/configmaps".to_string();
    let send = |method: Method, url: String, ct: &'static str, body: &'static str| {
        as_admin(&server, method, &url)
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    let created = send(
        Method::POST,
        base.clone(),
        JSON,
        r#"{"metadata":{"name":"c"}}"#,
    )
    .await
    .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    for (method, url, ct, body) in [
        (Method::POST, base.clone(), JSON, "[1,2]"),
        (Method::PUT, format!("{base}/c"), JSON, "\"text\""),
        (
            Method::PATCH,
            format!("{base}/c"),
            "application/merge-patch+json",
            "[]",
        ),
        (
            Method::PATCH,
            format!("{base}/c"),
            "application/json-patch+json",
            "{}",
        ),
        (Method::DELETE, format!("{base}/c"), JSON, "[1]"),
        (
            Method::PATCH,
            format!("{base}/c?fieldManager=t"),
            "application/apply-patch+yaml",
            "- a\n- b\n",
        ),
    ] {
        let resp = send(method.clone(), url.clone(), ct, body).await.unwrap();
        let code = resp.status().as_u16();
        let status: Value = resp.json().await.unwrap();
        assert_eq!(
            (code, status["kind"].as_str()),
            (400, Some("Status")),
            "{method} {url} {ct}: {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_are_never_lost() {
    let server = server().await;
    let api: Api<ConfigMap> = in_default(&server).await;
    api.create(&PostParams::default(), &mk_configmap("shared"))
        .await
        .unwrap();
    let writes = (0..24).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            let patch = json!({"metadata": {"annotations": {format!("writer-{i}"): "done"}}});
            api.patch("shared", &PatchParams::default(), &Patch::Merge(patch))
                .await
        })
    });
    for w in futures::future::join_all(writes).await {
        w.unwrap().unwrap();
    }
    let annotations = api
        .get("shared")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap();
    assert_eq!(annotations.len(), 24, "{annotations:?}");
}

#[tokio::test]
async fn a_single_object_watch_sees_only_that_object() {
    let server = server().await;
    let api: Api<ConfigMap> = in_default(&server).await;
    for name in ["a", "b"] {
        api.create(&PostParams::default(), &mk_configmap(name))
            .await
            .unwrap();
    }
    let text = get_text(
        &server,
        "/api/v1/namespaces/default/configmaps/a?watch=1&timeoutSeconds=1",
    )
    .await;
    let seen: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let e: Value = serde_json::from_str(l).unwrap();
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(seen, vec![("ADDED".to_string(), "a".to_string())]);
}

#[tokio::test]
async fn a_mutating_webhook_behind_a_service_patches_writes_and_its_warnings_reach_the_client() {
    use base64::Engine;
    let server = server().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let (addr, ca) = webhook("mutate", move |request| {
        record.lock().unwrap().push((
            request["operation"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            request["dryRun"].as_bool().unwrap_or(false),
            request["userInfo"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            request["options"].clone(),
        ));
        let patch = json!([{"op": "add", "path": "/spec/paused", "value": true}]);
        json!({
            "allowed": true,
            "patchType": "JSONPatch",
            "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string()),
            "warnings": ["sluice paused the rollout"],
        })
    })
    .await;
    server.register_service("sluice-system", "sluice-webhook", addr);
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "sluice"},
        "webhooks": [{
            "name": "mutate.sluice.dev",
            "clientConfig": {
                "service": {"namespace": "sluice-system", "name": "sluice-webhook", "path": "/mutate", "port": 443},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(&ca)
            },
            "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}],
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail"
        }]
    });
    let http = http(&server);
    let created = as_admin(
        &server,
        Method::POST,
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    )
    .json(&config)
    .send()
    .await
    .unwrap();
    assert_eq!(created.status().as_u16(), 201);

    let url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments",
        server.url()
    );
    let body = serde_json::to_value(deployment("web", "web", 1)).unwrap();
    let dry = http
        .post(format!("{url}?dryRun=All"))
        .bearer_auth(Identity::Sluice.token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(dry.status().as_u16(), 201, "{}", dry.text().await.unwrap());
    let resp = http
        .post(&url)
        .bearer_auth(Identity::Sluice.token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let warnings: Vec<String> = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        warnings,
        vec!["299 - \"sluice paused the rollout\"".to_string()]
    );
    let stored: Value = resp.json().await.unwrap();
    assert_eq!(
        stored["spec"]["paused"], true,
        "the webhook's patch is stored"
    );
    // A patch reaches webhooks as an UPDATE with UpdateOptions, as kube-apiserver sends it.
    let patched = http
        .patch(format!("{url}/web?fieldManager=kubectl-rollout"))
        .bearer_auth(Identity::Sluice.token())
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"spec":{"replicas":2}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    let sa = Identity::Sluice.username().to_string();
    let create = json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"});
    let mut dry_create = create.clone();
    dry_create["dryRun"] = json!(["All"]);
    let update = json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-rollout"});
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            ("CREATE".to_string(), true, sa.clone(), dry_create),
            ("CREATE".to_string(), false, sa.clone(), create),
            ("UPDATE".to_string(), false, sa, update),
        ]
    );
}

#[tokio::test]
async fn a_write_that_changes_nothing_keeps_the_resource_version_and_sends_no_event() {
    let server = server().await;
    let api: Api<ConfigMap> = in_default(&server).await;
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap();
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    let same = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(same.metadata.resource_version.as_deref(), Some(rv.as_str()));
    let replaced = api
        .replace("c", &PostParams::default(), &created)
        .await
        .unwrap();
    assert_eq!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    let text = get_text(
        &server,
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=1"
        ),
    )
    .await;
    assert_eq!(text, "", "no event for writes that changed nothing");
}

#[tokio::test]
async fn the_runtime_watcher_works_with_streaming_lists() {
    use kube::runtime::watcher;
    let server = server().await;
    let api: Api<ConfigMap> = in_default(&server).await;
    for name in ["a", "b"] {
        api.create(&PostParams::default(), &mk_configmap(name))
            .await
            .unwrap();
    }
    let mut w = watcher::watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
        {
            Some(Ok(watcher::Event::InitApply(c))) => initial.push(c.metadata.name.unwrap()),
            Some(Ok(watcher::Event::InitDone)) => break,
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(initial, vec!["a", "b"]);
    api.create(&PostParams::default(), &mk_configmap("c"))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
    {
        Some(Ok(watcher::Event::Apply(c))) => assert_eq!(c.metadata.name.as_deref(), Some("c")),
        other => panic!("want the new object, got {other:?}"),
    }
}
