//! Apply-time enforcement (DESIGN §6) end to end: an unmodified kubectl against the sandbox's
//! API server, which calls Sluice's validating webhooks as `deploy/base/webhooks.yaml`
//! registers them. Each refusal must reach kubectl's stderr and change nothing: every row of
//! `tests/fixtures/enforce/bad-settings.json` (the table the webhook's unit tests check as a
//! pure function) is applied at its level and must come back with its exact message. Last, pure
//! checks that the file's matchConditions call each webhook only where it can refuse.
//!
//! Without kubectl the tests fail under `CI=true` and are skipped with one line otherwise.

#[path = "sandbox/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sluice::controller::status::{Phase, RolloutStatus};
use sluice::sandbox::apiserver::Identity;
use sluice::sandbox::embedded::Embedded;
use sluice::sandbox::{MetricsBackend, Sandbox, SandboxOptions};

const NS: &str = "shop";
const APP: &str = "podinfo";

struct World {
    sandbox: Sandbox,
    sluice: Embedded,
    client: Client,
    kubectl: PathBuf,
    dir: tempfile::TempDir,
}

/// The Deployment manifest as a user keeps it, with `annotations` and `image`.
fn app_manifest(annotations: Value, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": APP, "namespace": NS, "labels": {"app": APP}, "annotations": annotations},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": APP}},
            "template": {"metadata": {"labels": {"app": APP}},
                "spec": {"containers": [{"name": "podinfod", "image": image}]}}}
    })
}

impl World {
    /// The sandbox with Sluice inside, namespace `shop` opted in, the apex Service and the app
    /// onboarded at rest; `None` when kubectl is missing outside CI.
    async fn start(ready_delay: Duration) -> Option<World> {
        let kubectl = support::kubectl()?;
        support::init();
        let sandbox = Sandbox::start(SandboxOptions {
            ready_delay,
            metrics: MetricsBackend::Builtin,
        })
        .await
        .unwrap();
        let sluice = Embedded::start(&sandbox).await.unwrap();
        let client = sandbox.client(Identity::Admin).await.unwrap();
        support::opted_in_with_apex(&client, NS, APP).await;
        let world = World {
            sandbox,
            sluice,
            client,
            kubectl,
            dir: tempfile::tempdir().unwrap(),
        };
        world
            .apply_ok(&app_manifest(json!({}), "podinfo:6.0.0"))
            .await;
        world.sandbox.mesh.set_load(NS, APP, 50.0);
        world
            .until("the Deployment is onboarded", |s| {
                s.phase == Phase::Initialized
            })
            .await;
        Some(world)
    }

    async fn stop(self) {
        self.sluice.shutdown().await;
        self.sandbox.shutdown().await;
    }

    async fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = tokio::process::Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(self.sandbox.kubeconfig_path())
            .args(args)
            .output()
            .await
            .expect("kubectl runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    }

    /// `kubectl apply -f` of `manifest`; whether it succeeded and everything kubectl said.
    async fn apply(&self, manifest: &Value) -> (bool, String) {
        let path = self.dir.path().join("manifest.json");
        std::fs::write(&path, serde_json::to_vec(manifest).unwrap()).unwrap();
        self.kubectl(&["apply", "-f", path.to_str().unwrap()]).await
    }

    async fn apply_ok(&self, manifest: &Value) {
        let (ok, said) = self.apply(manifest).await;
        assert!(ok, "kubectl apply failed: {said}");
    }

    /// kubectl `args` must fail with the webhook `hook`'s denial containing `fragment`.
    async fn refused(&self, args: &[&str], hook: &str, fragment: &str) {
        let (ok, said) = self.kubectl(args).await;
        assert_denied(ok, &said, hook, fragment, &args);
    }

    async fn deployment(&self, name: &str) -> Deployment {
        Api::<Deployment>::namespaced(self.client.clone(), NS)
            .get(name)
            .await
            .unwrap()
    }

    async fn status(&self) -> Option<RolloutStatus> {
        let d = self.deployment(APP).await;
        RolloutStatus::from_annotations(d.metadata.annotations.as_ref()).unwrap()
    }

    async fn until(&self, what: &str, check: impl Fn(&RolloutStatus) -> bool) -> RolloutStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status().await;
            if let Some(s) = s.as_ref().filter(|s| check(s)) {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}; status: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn assert_denied(ok: bool, said: &str, hook: &str, fragment: &str, what: &impl std::fmt::Debug) {
    assert!(!ok, "{what:?} was admitted: {said}");
    let denial = format!("admission webhook \"{hook}\" denied the request: ");
    assert!(
        said.contains(&denial) && said.contains(fragment),
        "{what:?}: kubectl said\n  {said}\nnot {denial:?} with {fragment:?}"
    );
}

fn image(d: &Deployment) -> String {
    let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    pod.and_then(|p| p.containers[0].image.clone())
        .unwrap_or_default()
}

/// Where a row of the bad-settings table is written.
#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum At {
    Deployment,
    Namespace,
    Cluster,
}

/// One row of `tests/fixtures/enforce/bad-settings.json`, the table the unit test in
/// `src/webhook/admit/enforce/tests.rs` checks as a pure function.
#[derive(Debug, serde::Deserialize)]
struct BadRow {
    why: String,
    at: At,
    settings: serde_json::Map<String, Value>,
    message: String,
}

impl BadRow {
    /// The manifest kubectl applies, the webhook that must refuse it and the object prefix
    /// of its message.
    fn manifest(&self) -> (Value, &'static str, &'static str) {
        let settings = Value::Object(self.settings.clone());
        match self.at {
            At::Deployment => (
                app_manifest(settings, "podinfo:6.0.0"),
                "validate.sluice.dev",
                "Deployment shop/podinfo: ",
            ),
            At::Namespace => (
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS,
                    "labels": {"sluice.dev/canary": "enabled"}, "annotations": settings}}),
                "validate-namespaces.sluice.dev",
                "Namespace shop: ",
            ),
            At::Cluster => (
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "sluice-policy", "namespace": "sluice-system"},
                    "data": settings}),
                "validate-policy.sluice.dev",
                "ConfigMap sluice-system/sluice-policy: ",
            ),
        }
    }
}

/// The annotations (or, for the policy, the data) stored now where `at` writes.
async fn stored(w: &World, at: At) -> BTreeMap<String, String> {
    match at {
        At::Deployment => w.deployment(APP).await.annotations().clone(),
        At::Namespace => Api::<Namespace>::all(w.client.clone())
            .get(NS)
            .await
            .unwrap()
            .annotations()
            .clone(),
        At::Cluster => Api::<ConfigMap>::namespaced(w.client.clone(), "sluice-system")
            .get_opt("sluice-policy")
            .await
            .unwrap()
            .and_then(|cm| cm.data)
            .unwrap_or_default(),
    }
}

#[tokio::test]
async fn kubectl_apply_reports_every_bad_setting_and_changes_nothing() {
    let table: Vec<BadRow> =
        serde_json::from_str(include_str!("fixtures/enforce/bad-settings.json"))
            .expect("tests/fixtures/enforce/bad-settings.json is a list of rows");
    let Some(w) = World::start(Duration::from_millis(300)).await else {
        return;
    };
    for row in &table {
        let (manifest, hook, object) = row.manifest();
        let (ok, said) = w.apply(&manifest).await;
        let full = format!("{object}{}", row.message);
        assert_denied(ok, &said, hook, &full, &(&row.why, &row.settings));
        // Sluice writes its status on the Deployment meanwhile; none of the refused keys got in.
        let kept = stored(&w, row.at).await;
        for key in row.settings.keys() {
            assert!(!kept.contains_key(key), "{key} was stored: {kept:?}");
        }
    }
    // A valid policy is stored.
    w.apply_ok(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "sluice-policy", "namespace": "sluice-system"},
        "data": {"interval": "1m"}}))
        .await;
    assert_eq!(
        stored(&w, At::Cluster)
            .await
            .get("interval")
            .map(String::as_str),
        Some("1m")
    );
    w.stop().await;
}

#[tokio::test]
async fn generated_objects_the_held_apex_and_un_pausing_are_refused_mid_rollout() {
    // Primary pods take 2 s to become ready: long enough to try an un-pause while Sluice waits.
    let Some(w) = World::start(Duration::from_secs(2)).await else {
        return;
    };
    const GEN: &str = "validate-generated.sluice.dev";
    let generated = "is generated by Sluice for Deployment shop/podinfo";
    w.refused(
        &["-n", NS, "label", "svc", "podinfo-canary", "team=a"],
        GEN,
        generated,
    )
    .await;
    w.refused(
        &["-n", NS, "delete", "svc", "podinfo-primary"],
        GEN,
        generated,
    )
    .await;
    w.refused(
        &[
            "-n",
            NS,
            "patch",
            "trafficsplit",
            APP,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"backends":[]}}"#,
        ],
        GEN,
        &format!("TrafficSplit shop/podinfo {generated}"),
    )
    .await;

    // A new image: the mutating webhook pauses the app, and Sluice holds it while the primary
    // starts. Un-pausing it by hand is refused.
    w.apply_ok(&app_manifest(json!({}), "podinfo:6.0.1")).await;
    assert_eq!(w.deployment(APP).await.spec.unwrap().paused, Some(true));
    w.refused(
        &[
            "-n",
            NS,
            "patch",
            "deploy",
            APP,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"paused":false}}"#,
        ],
        "validate.sluice.dev",
        "Deployment shop/podinfo: spec.paused: false is refused while Sluice holds the Deployment",
    )
    .await;
    assert_eq!(w.deployment(APP).await.spec.unwrap().paused, Some(true));

    // Mid-rollout: app-primary and the apex's selector are Sluice's.
    w.until("the rollout progresses", |s| s.phase == Phase::Progressing)
        .await;
    w.refused(
        &["-n", NS, "label", "deploy", "podinfo-primary", "team=a"],
        GEN,
        &format!("Deployment shop/podinfo-primary {generated}"),
    )
    .await;
    let apex = Api::<Service>::namespaced(w.client.clone(), NS)
        .get(APP)
        .await
        .unwrap();
    w.refused(
        &["-n", NS, "patch", "svc", APP, "--type", "merge", "-p", r#"{"spec":{"selector":{"app":"podinfo"}}}"#],
        "validate-apex.sluice.dev",
        "Service shop/podinfo: spec.selector and sluice.dev/apex-selector are Sluice's while a rollout runs",
    )
    .await;
    let after = Api::<Service>::namespaced(w.client.clone(), NS)
        .get(APP)
        .await
        .unwrap();
    assert_eq!(after.spec.unwrap().selector, apex.spec.unwrap().selector);
    // The apex's labels stay the user's.
    let (ok, said) = w.kubectl(&["-n", NS, "label", "svc", APP, "team=a"]).await;
    assert!(ok, "{said}");
    w.stop().await;
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[tokio::test]
async fn a_namespace_freeze_refuses_a_new_image_and_break_glass_lets_it_through_with_an_event() {
    let Some(w) = World::start(Duration::from_millis(300)).await else {
        return;
    };
    let now = SystemTime::now();
    let window = format!(
        "{}/{}",
        rfc3339(now - Duration::from_secs(3600)),
        rfc3339(now + Duration::from_secs(3600))
    );
    Api::<Namespace>::all(w.client.clone())
        .patch(
            NS,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"sluice.dev/freeze": window}}})),
        )
        .await
        .unwrap();
    // The webhook reads the Namespace from its cache: a server-side dry run (answered exactly
    // as the real request, without effect) tells when the cache has the freeze.
    let frozen = app_manifest(json!({}), "podinfo:6.0.1");
    let path = w.dir.path().join("frozen.json");
    std::fs::write(&path, serde_json::to_vec(&frozen).unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while w
        .kubectl(&["apply", "--dry-run=server", "-f", path.to_str().unwrap()])
        .await
        .0
    {
        assert!(
            Instant::now() < deadline,
            "the freeze never reached the webhook"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, said) = w.apply(&frozen).await;
    let until = rfc3339(now + Duration::from_secs(3600));
    assert_denied(
        ok,
        &said,
        "validate.sluice.dev",
        &format!(
            "Deployment shop/podinfo: pod template changes are frozen until {until} by the window \
             {window} (sluice.dev/freeze on Namespace shop)"
        ),
        &"freeze",
    );
    assert_eq!(image(&w.deployment(APP).await), "podinfo:6.0.0");

    let glass = json!({"sluice.dev/break-glass": "INC-7 payments down"});
    let (ok, said) = w.apply(&app_manifest(glass, "podinfo:6.0.1")).await;
    assert!(ok, "break-glass was refused: {said}");
    let events: Api<Event> = Api::namespaced(w.client.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("BreakGlass"));
        if let Some(e) = found {
            let note = e.note.unwrap_or_default();
            assert!(
                note.contains("INC-7 payments down") && note.contains("kubernetes-admin"),
                "{note}"
            );
            assert_eq!(e.regarding.and_then(|r| r.name).as_deref(), Some(APP));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no BreakGlass Event on the Deployment"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.stop().await;
}

/// Sluice's webhook over caches that never finish their first list, registered from
/// `deploy/base/webhooks.yaml` with a fresh API server.
async fn cold_webhook(
    server: &sluice::sandbox::apiserver::ApiServer,
    admin: &Client,
) -> sluice::webhook::Running {
    use kube::api::DynamicObject;
    use kube::core::{ApiResource, GroupVersionKind};
    use kube::runtime::reflector::store::Writer;
    use sluice::webhook::{NamespaceCache, WebhookState};

    let never_listed = NamespaceCache::new(Writer::<Namespace>::default().as_reader())
        .with_policy(Writer::default().as_reader(), "sluice-system");
    let ca = sluice::tls::Ca::new("cold cache test CA").unwrap();
    let issued = ca
        .issue(
            &["sluice.sluice-system.svc", "localhost"],
            &["127.0.0.1".parse().unwrap()],
        )
        .unwrap();
    let tls =
        sluice::tls::server_config("cold webhook", &issued.cert_pem, &issued.key_pem).unwrap();
    let running = sluice::webhook::start(
        "127.0.0.1:0".parse().unwrap(),
        tls,
        WebhookState::new(std::sync::Arc::new(never_listed)),
    )
    .await
    .unwrap();
    server.register_service("sluice-system", "sluice", running.local_addr());
    for config in sluice::sandbox::embedded::webhook_configurations(ca.cert_pem()) {
        let kind = config["kind"].as_str().unwrap().to_string();
        let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", &kind);
        let api: Api<DynamicObject> = Api::all_with(admin.clone(), &ApiResource::from_gvk(&gvk));
        api.patch(
            "sluice",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&config),
        )
        .await
        .unwrap();
    }
    running
}

#[tokio::test]
async fn a_cold_cache_refuses_a_new_image_with_a_retryable_error_rather_than_admitting_it() {
    let Some(kubectl) = support::kubectl() else {
        return;
    };
    let server = support::server().await;
    let admin = server.client(Identity::Admin).await.unwrap();
    support::opted_in_with_apex(&admin, NS, APP).await;
    let deployments = Api::<Deployment>::namespaced(admin.clone(), NS);
    let created: Deployment =
        serde_json::from_value(app_manifest(json!({}), "podinfo:6.0.0")).unwrap();
    deployments
        .create(&kube::api::PostParams::default(), &created)
        .await
        .unwrap();
    let _webhook = cold_webhook(&server, &admin).await;

    let args = [
        "-n",
        NS,
        "set",
        "image",
        "deploy/podinfo",
        "podinfod=podinfo:6.0.1",
    ];
    let out = support::run_kubectl(&kubectl, &server, &args).await;
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_denied(
        out.status.success(),
        &said,
        "mutate.sluice.dev",
        "Deployment shop/podinfo cannot be judged yet: Sluice's caches are still syncing; retry in a few seconds",
        &args,
    );
    assert_eq!(image(&deployments.get(APP).await.unwrap()), "podinfo:6.0.0");
}

// ---------------------------------------------------------------------------------------------
// Which validating webhook deploy/base/webhooks.yaml calls (its matchConditions, pure)

/// Whether the sandbox, deciding as kube-apiserver does (rules, namespaceSelector,
/// objectSelector, matchConditions), calls validating webhook `name` of
/// `deploy/base/webhooks.yaml` when `user` changes `old` into `new` (of resource `plural`, in
/// namespace `ns`, or namespace `ns` itself).
fn called(name: &str, plural: &str, ns: &str, user: &str, old: Value, new: Value) -> bool {
    use sluice::sandbox::apiserver::admission::{
        AdmissionAttributes, Operation, UserInfo, config, matching,
    };
    use sluice::sandbox::apiserver::resources::builtin_kinds;

    const VALIDATING: &str = "ValidatingWebhookConfiguration";
    let configs: Vec<Value> = sluice::sandbox::embedded::webhook_configurations("ca")
        .into_iter()
        .filter(|c| c["kind"] == VALIDATING)
        .collect();
    let hook = config::webhooks(VALIDATING, &configs)
        .unwrap()
        .into_iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("{name} is in deploy/base/webhooks.yaml"));
    let kind = builtin_kinds()
        .into_iter()
        .find(|k| k.plural == plural)
        .unwrap();
    let attrs = AdmissionAttributes {
        kind,
        sub_resource: None,
        object_kind: None,
        operation: Operation::Update,
        name: new["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        namespace: Some(ns.to_string()),
        user: UserInfo {
            username: user.to_string(),
            uid: String::new(),
            groups: vec![],
        },
        dry_run: false,
        options: None,
        object: Some(new.clone()),
        old_object: Some(old),
        namespace_labels: std::collections::BTreeMap::from([(
            "kubernetes.io/metadata.name".to_string(),
            ns.to_string(),
        )]),
    };
    matching::should_call(&hook, &attrs, Some(&new)).unwrap()
}

const ALICE: &str = "alice";

#[test]
fn namespaces_are_judged_only_when_they_carry_sluice_annotations() {
    let called = |old: &Value, new: &Value| {
        called(
            "validate-namespaces.sluice.dev",
            "namespaces",
            NS,
            ALICE,
            old.clone(),
            new.clone(),
        )
    };
    let plain = json!({"metadata": {"name": NS, "annotations": {"owner": "team-a"}}});
    let bare = json!({"metadata": {"name": NS}});
    let policy = json!({"metadata": {"name": NS, "annotations": {"sluice.dev/interval": "1m"}}});
    assert!(!called(&bare, &plain));
    assert!(!called(&bare, &bare));
    assert!(called(&bare, &policy));
}

#[test]
fn the_apex_is_judged_only_while_it_keeps_sluices_saved_selector() {
    let called = |user: &str, old: &Value| {
        called(
            "validate-apex.sluice.dev",
            "services",
            NS,
            user,
            old.clone(),
            old.clone(),
        )
    };
    let rest = json!({"metadata": {"name": APP}, "spec": {"selector": {"app": APP}}});
    let held = json!({"metadata": {"name": APP, "annotations": {"sluice.dev/apex-selector": "{}"}},
        "spec": {"selector": {"app": "podinfo-primary"}}});
    assert!(!called(ALICE, &rest));
    assert!(called(ALICE, &held));
    assert!(!called("system:serviceaccount:sluice-system:sluice", &held));
}

#[test]
fn generated_objects_are_left_to_kubernetes_own_controllers_and_to_sluice() {
    let called = |user: &str, svc: &Value| {
        called(
            "validate-generated.sluice.dev",
            "services",
            NS,
            user,
            svc.clone(),
            svc.clone(),
        )
    };
    let svc = json!({"metadata": {"name": "podinfo-canary",
        "labels": {"app.kubernetes.io/managed-by": "sluice"}}});
    assert!(called(ALICE, &svc));
    assert!(!called(
        ALICE,
        &json!({"metadata": {"name": "podinfo-canary"}})
    ));
    for user in [
        "system:serviceaccount:kube-system:generic-garbage-collector",
        "system:serviceaccount:kube-system:deployment-controller",
        "system:serviceaccount:sluice-system:sluice",
    ] {
        assert!(!called(user, &svc), "{user}");
    }
}

#[test]
fn only_the_policy_configmap_is_judged_in_sluices_namespace() {
    let called = |ns: &str, name: &str| {
        let cm = json!({"metadata": {"name": name, "namespace": ns}});
        called(
            "validate-policy.sluice.dev",
            "configmaps",
            ns,
            ALICE,
            cm.clone(),
            cm,
        )
    };
    assert!(called("sluice-system", "sluice-policy"));
    assert!(!called("sluice-system", "kube-root-ca.crt"));
    assert!(!called(NS, "sluice-policy"));
}
