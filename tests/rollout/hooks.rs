//! Hooks end to end: a local HTTP hook server records every call Sluice makes and answers as
//! the scenario says (DESIGN §5, issue 5). The server listens on the test's loopback, which a
//! real cluster cannot reach: on one these scenarios say so and stop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use sluice::controller::status::Phase;

use super::{eventually, eventually_status};
use crate::harness::{APP, Harness, RouterKind, THRESHOLD, Version, status};
use crate::observer::follow;

/// What the hook server answers and what it received.
#[derive(Default)]
struct Record {
    /// Status per path; 200 when unset.
    answers: BTreeMap<String, u16>,
    /// Every call, in order: (path, body).
    calls: Vec<(String, Value)>,
}

/// A hook server on the loopback.
struct HookServer {
    base: String,
    record: Arc<Mutex<Record>>,
}

impl HookServer {
    async fn start() -> HookServer {
        let record = Arc::new(Mutex::new(Record::default()));
        async fn handle(
            State(record): State<Arc<Mutex<Record>>>,
            Path(path): Path<String>,
            Json(body): Json<Value>,
        ) -> StatusCode {
            let mut r = record.lock().unwrap();
            let path = format!("/{path}");
            let status = r.answers.get(&path).copied().unwrap_or(200);
            r.calls.push((path, body));
            StatusCode::from_u16(status).unwrap()
        }
        let app = axum::Router::new()
            .route("/{*path}", post(handle))
            .with_state(record.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        HookServer { base, record }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn answer(&self, path: &str, status: u16) {
        self.record
            .lock()
            .unwrap()
            .answers
            .insert(path.into(), status);
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.record.lock().unwrap().calls.clone()
    }

    /// The paths called, but `skip`, with repeats in a row folded: `["/pre", "/load", "/gate"]`.
    fn sequence(&self, skip: &[&str]) -> Vec<String> {
        let mut seq: Vec<String> = Vec::new();
        for (path, _) in self.calls() {
            if !skip.contains(&path.as_str()) && seq.last() != Some(&path) {
                seq.push(path);
            }
        }
        seq
    }

    fn bodies(&self, path: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b)
            .collect()
    }
}

/// Starts the scenario, or `None` on a real cluster, which cannot reach the test's loopback.
async fn start() -> Option<(Harness, HookServer)> {
    let h = Harness::start(RouterKind::Smi).await;
    if h.is_cluster() {
        eprintln!("skipped: a cluster cannot call a hook server on the test's loopback");
        h.finish().await;
        return None;
    }
    Some((h, HookServer::start().await))
}

/// Rolls to `version` with these `sluice.dev/` annotations, in one apply.
async fn roll_with(h: &Harness, version: Version, annotations: &[(&str, String)]) {
    let mut patch = h.template_patch(version);
    for (key, value) in annotations {
        patch["metadata"]["annotations"][format!("sluice.dev/{key}")] = json!(value);
    }
    h.patch(patch).await;
}

/// Rolls to `version` with `hooks` as `sluice.dev/webhooks`, in one apply.
async fn roll_with_hooks(h: &Harness, version: Version, hooks: Value) {
    roll_with(h, version, &[("webhooks", hooks.to_string())]).await;
}

/// Waits until the hook server received a call on `path`.
async fn called(h: &Harness, server: &HookServer, path: &str) {
    eventually(h, &format!("{path} is called"), || async {
        !server.bodies(path).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_rollout_hook_rolls_back_without_sending_the_canary_any_traffic() {
    let Some((h, server)) = start().await else {
        return;
    };
    server.answer("/smoke", 500);
    let from = SystemTime::now();
    roll_with_hooks(
        &h,
        Version::Good(1),
        json!([{"type": "pre-rollout", "url": server.url("/smoke"), "timeout": "2s",
                "metadata": {"cmd": "helm test podinfo"}},
               {"type": "post-rollout", "url": server.url("/post")}]),
    )
    .await;
    let story = follow(&h).await;
    assert_eq!(story.last.phase, Phase::Failed, "{:?}", story.points);
    assert_eq!(story.last.failed_checks, THRESHOLD, "{:?}", story.points);
    assert_eq!(story.weights(), vec![0], "{:?}", story.points);
    assert!(
        story.last.message.contains("pre-rollout-hook fail"),
        "{}",
        story.last.message
    );
    // Not one request reached the new version.
    let canary_image = h.template_patch(Version::Good(1))["spec"]["template"]["spec"]["containers"]
        [0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    let served: u64 = h
        .traffic(from)
        .await
        .iter()
        .filter_map(|w| w.by_image.as_ref()?.get(&canary_image).copied())
        .sum();
    assert_eq!(served, 0, "requests answered by {canary_image}");
    // Called once per interval until threshold, with Flagger's payload.
    let smoke = server.bodies("/smoke");
    assert_eq!(smoke.len(), THRESHOLD as usize, "{smoke:?}");
    let failed = story
        .last
        .failed_revision
        .clone()
        .expect("a failed revision");
    assert_eq!(
        smoke[0],
        json!({"name": APP, "namespace": h.ns, "phase": "Progressing", "checksum": failed,
               "metadata": {"cmd": "helm test podinfo"}})
    );
    called(&h, &server, "/post").await;
    let post = server.bodies("/post");
    assert_eq!(post.len(), 1, "{post:?}");
    assert_eq!(
        (&post[0]["phase"], &post[0]["checksum"]),
        (&json!("Failed"), &json!(failed))
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_promotion_holds_waiting_promotion_until_its_hook_says_yes() {
    let Some((h, server)) = start().await else {
        return;
    };
    server.answer("/gate", 403);
    server.answer("/stop", 404);
    roll_with_hooks(
        &h,
        Version::Good(1),
        json!([{"type": "pre-rollout", "url": server.url("/pre")},
               {"type": "rollout", "url": server.url("/load")},
               {"type": "rollback", "url": server.url("/stop")},
               {"type": "confirm-promotion", "url": server.url("/gate")},
               {"type": "post-rollout", "url": server.url("/post")},
               {"type": "event", "url": server.url("/events")}]),
    )
    .await;
    let gate = async {
        eventually_status(&h, "the rollout waits for promotion", |s| {
            s.phase == Phase::WaitingPromotion
        })
        .await;
        // The analysis goes on while it waits; the gate is asked again every interval.
        let asked = server.bodies("/gate").len();
        eventually(&h, "the gate is asked again", || async {
            server.bodies("/gate").len() > asked
        })
        .await;
        let s = status(&h.api.get(APP).await.unwrap()).unwrap();
        assert_eq!(s.phase, Phase::WaitingPromotion, "{s:?}");
        assert!(s.message.contains("answered 403"), "{}", s.message);
        server.answer("/gate", 200);
    };
    let (story, ()) = tokio::join!(follow(&h), gate);
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
    assert!(
        story
            .points
            .iter()
            .any(|(p, w, _)| *p == Phase::WaitingPromotion && *w == crate::harness::MAX_WEIGHT),
        "{:?}",
        story.points
    );
    called(&h, &server, "/post").await;
    // The full sequence: pre-rollout alone at 0%, then each analysis calls rollout and
    // rollback, the gate from max weight on, post-rollout once at the end.
    let seq = server.sequence(&["/events"]);
    assert_eq!(seq.first().map(String::as_str), Some("/pre"), "{seq:?}");
    assert_eq!(seq.last().map(String::as_str), Some("/post"), "{seq:?}");
    assert_eq!(server.bodies("/pre").len(), 1, "{seq:?}");
    assert_eq!(server.bodies("/post").len(), 1, "{seq:?}");
    let first_gate = seq.iter().position(|p| p == "/gate").expect("the gate");
    assert!(seq[1..first_gate].iter().any(|p| p == "/load"), "{seq:?}");
    let phases: Vec<Value> = server
        .bodies("/gate")
        .iter()
        .map(|b| b["phase"].clone())
        .collect();
    assert!(
        phases.contains(&json!("WaitingPromotion")),
        "the gate sees the phase it holds: {phases:?}"
    );
    assert_eq!(server.bodies("/post")[0]["phase"], "Succeeded");
    // Event hooks tell every transition, with Flagger's event fields.
    eventually(&h, "the Succeeded event reaches the event hook", || async {
        server
            .bodies("/events")
            .iter()
            .any(|b| b["phase"] == "Succeeded")
    })
    .await;
    let events = server.bodies("/events");
    assert!(
        events.iter().all(|b| b["eventType"] == "Normal"
            && b["eventMessage"].as_str().is_some_and(|m| !m.is_empty())
            && b["timestamp"].as_str().is_some()),
        "{events:?}"
    );
    assert!(
        events.iter().any(|b| b["eventMessage"]
            .as_str()
            .unwrap()
            .contains("waits for its confirm-promotion hook")),
        "{events:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_from_a_rollback_hook_aborts_the_rollout() {
    let Some((h, server)) = start().await else {
        return;
    };
    server.answer("/stop", 404);
    roll_with_hooks(
        &h,
        Version::Good(1),
        json!([{"type": "rollback", "url": server.url("/stop")},
               {"type": "post-rollout", "url": server.url("/post")}]),
    )
    .await;
    let stop = async {
        called(&h, &server, "/stop").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.answer("/stop", 200);
    };
    let (story, ()) = tokio::join!(follow(&h), stop);
    assert_eq!(story.last.phase, Phase::Failed, "{:?}", story.points);
    assert_eq!(story.last.failed_checks, 0, "{:?}", story.points);
    assert!(
        story
            .last
            .message
            .starts_with("a rollback hook asked for it: rollback hook"),
        "{}",
        story.last.message
    );
    assert!(h.runs(&h.api.get(APP).await.unwrap(), Version::Stable));
    called(&h, &server, "/post").await;
    assert_eq!(server.bodies("/post")[0]["phase"], "Failed");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_never_becomes_ready_alerts_slack_and_json_receivers() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    use sluice::sandbox::embedded::NAMESPACE as SLUICE_NAMESPACE;

    let Some((h, server)) = start().await else {
        return;
    };
    let notify = json!([{"url": server.url("/slack"), "type": "slack"},
                        {"url": server.url("/json"), "type": "json"}]);
    let policy: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "sluice-policy"},
        "data": {"notify": serde_json::to_string(&notify).unwrap()},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(h.client.clone(), SLUICE_NAMESPACE)
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let deadline = humantime::format_duration(h.interval() * 2);
    roll_with(
        &h,
        Version::Broken,
        &[("progress-deadline", deadline.to_string())],
    )
    .await;
    let story = follow(&h).await;
    assert_eq!(story.last.phase, Phase::Failed, "{:?}", story.points);
    eventually(&h, "both alerts reach both receivers", || async {
        server.bodies("/slack").len() >= 2 && server.bodies("/json").len() >= 2
    })
    .await;
    let kinds: Vec<Value> = server
        .bodies("/json")
        .iter()
        .map(|b| b["kind"].clone())
        .collect();
    assert_eq!(kinds, vec![json!("rollout-stuck"), json!("failed")]);
    let stuck = &server.bodies("/json")[0];
    assert_eq!(
        (&stuck["namespace"], &stuck["name"], &stuck["phase"]),
        (&json!(h.ns), &json!(APP), &json!("RollingBack"))
    );
    assert!(
        stuck["reason"]
            .as_str()
            .unwrap()
            .contains("not ready within progress-deadline"),
        "{stuck}"
    );
    let texts: Vec<String> = server
        .bodies("/slack")
        .iter()
        .map(|b| b["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts[0].starts_with(&format!("[rollout-stuck] {}/{APP} revision ", h.ns)),
        "{texts:?}"
    );
    assert!(texts[1].starts_with("[failed]"), "{texts:?}");
    h.finish().await;
}
