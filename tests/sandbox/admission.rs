//! Sandbox tests: admission call-outs. A real HTTPS webhook server (axum + axum-server + rustls,
//! certificates from `sluice::tls::Ca`) answers as a webhook would, and [`Admitter`] is driven
//! directly with configurations built as JSON, the way the sandbox API server stores them.
//!
//! The webhook server's first path segment picks its behaviour: `patch-b64`, `patch-array`,
//! `deny`, `slow`, `warn`, `wrong-uid`, `crash` (a 500), anything else allows. Every review it gets is recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine;
use serde_json::{Value, json};
use sluice::sandbox::apiserver::admission::{
    AdmissionAttributes, Admitted, Admitter, Operation, ServiceRef, ServiceResolver, UserInfo,
};
use sluice::sandbox::apiserver::resources::{builtin_kinds, lookup};
use sluice::sandbox::apiserver::status::ApiError;
use sluice::tls::Ca;

use crate::support;

const DENIAL: &str =
    "sluice.dev/step-weight: \"150\" is not a weight; use a whole number from 1 to 100";
const SERVICE_NAMESPACE: &str = "sluice-test";
const SERVICE_NAME: &str = "hooks";

/// One review as the webhook server received it.
#[derive(Clone, Debug)]
struct Call {
    path: String,
    query: String,
    review: Value,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Call>>>);

impl Log {
    fn calls(&self, path: &str) -> Vec<Call> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.path.clone())
            .collect()
    }
}

fn label_patch(key: &str) -> Vec<u8> {
    serde_json::to_vec(&json!([
        { "op": "add", "path": format!("/metadata/labels/{key}"), "value": "yes" }
    ]))
    .unwrap()
}

async fn webhook(State(log): State<Log>, uri: Uri, Json(review): Json<Value>) -> Response {
    let path = uri.path().to_string();
    log.0.lock().unwrap().push(Call {
        path: path.clone(),
        query: uri.query().unwrap_or("").to_string(),
        review: review.clone(),
    });
    let uid = review["request"]["uid"].clone();
    let behaviour = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let response = match behaviour {
        "patch-b64" => json!({
            "uid": uid, "allowed": true, "patchType": "JSONPatch",
            "patch": base64::engine::general_purpose::STANDARD.encode(label_patch("patched-b64")),
        }),
        // kube-core's way of writing `patch` (kube-rs#1781).
        "patch-array" => json!({
            "uid": uid, "allowed": true, "patchType": "JSONPatch",
            "patch": label_patch("patched-array"),
        }),
        "deny" => json!({
            "uid": uid, "allowed": false, "status": { "code": 403, "message": DENIAL },
        }),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            json!({ "uid": uid, "allowed": true })
        }
        "warn" => {
            json!({ "uid": uid, "allowed": true, "warnings": [format!("{path} says hello")] })
        }
        "wrong-uid" => json!({ "uid": "not-yours", "allowed": true }),
        "crash" => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "text/plain")],
                "boom\n",
            )
                .into_response();
        }
        _ => json!({ "uid": uid, "allowed": true }),
    };
    Json(json!({
        "apiVersion": review["apiVersion"],
        "kind": "AdmissionReview",
        "response": response,
    }))
    .into_response()
}

/// A running HTTPS webhook server.
struct Hooks {
    addr: SocketAddr,
    ca_bundle: String,
    log: Log,
}

impl Hooks {
    async fn start() -> Self {
        let log = Log::default();
        let app = Router::new().fallback(webhook).with_state(log.clone());
        let (addr, ca) =
            support::serve_tls(app, &[&format!("{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc")]);
        Self {
            addr,
            ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca.cert_pem()),
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// A webhook called at `path` of this server, for CREATE/UPDATE of apps/v1 deployments,
    /// with `extra` fields merged over the defaults.
    fn hook(&self, name: &str, path: &str, extra: Value) -> Value {
        let mut h = json!({
            "name": name,
            "clientConfig": { "url": self.url(path), "caBundle": self.ca_bundle },
            "rules": [{
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": ["apps"],
                "apiVersions": ["v1"],
                "resources": ["deployments"],
            }],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        });
        merge(&mut h, extra);
        h
    }

    /// A webhook called at `path` of this server, with the defaults of [`Hooks::hook`].
    fn at(&self, name: &str, path: &str) -> Value {
        self.hook(name, path, json!({}))
    }

    /// A webhook like [`Hooks::hook`] whose URL is a port nothing listens on; returns the port.
    fn refused(&self, name: &str, extra: Value) -> (Value, u16) {
        let port = support::free_port();
        let mut hook = self.hook(name, "/none", extra);
        hook["clientConfig"]["url"] = json!(format!("https://127.0.0.1:{port}/none"));
        (hook, port)
    }

    /// Runs the mutating webhooks of `configs` on [`create_deployment`].
    async fn mutate(&self, configs: &[Value]) -> Result<Admitted, ApiError> {
        self.admitter().mutate(configs, &create_deployment()).await
    }

    /// Runs the validating webhooks of `configs` on [`create_deployment`]; returns the warnings.
    async fn validate(&self, configs: &[Value]) -> Result<Vec<String>, ApiError> {
        self.admitter()
            .validate(configs, &create_deployment())
            .await
    }

    /// [`Hooks::mutate`] with one configuration, `sluice`, of `webhooks`.
    async fn mutate_with(&self, webhooks: Vec<Value>) -> Result<Admitted, ApiError> {
        self.mutate_on(webhooks, &create_deployment()).await
    }

    /// [`Hooks::validate`] with one configuration, `sluice`, of `webhooks`.
    async fn validate_with(&self, webhooks: Vec<Value>) -> Result<Vec<String>, ApiError> {
        self.validate_on(webhooks, &create_deployment()).await
    }

    /// Runs one mutating configuration, `sluice`, of `webhooks` on `attrs`.
    async fn mutate_on(
        &self,
        webhooks: Vec<Value>,
        attrs: &AdmissionAttributes,
    ) -> Result<Admitted, ApiError> {
        let configs = [mutating("sluice", webhooks)];
        self.admitter().mutate(&configs, attrs).await
    }

    /// Runs one validating configuration, `sluice`, of `webhooks` on `attrs`.
    async fn validate_on(
        &self,
        webhooks: Vec<Value>,
        attrs: &AdmissionAttributes,
    ) -> Result<Vec<String>, ApiError> {
        let configs = [validating("sluice", webhooks)];
        self.admitter().validate(&configs, attrs).await
    }

    fn admitter(&self) -> Admitter {
        let addr = self.addr;
        let resolver: ServiceResolver = Arc::new(move |svc: &ServiceRef| {
            (svc.namespace == SERVICE_NAMESPACE && svc.port == 8443).then_some(addr)
        });
        Admitter::new(resolver)
    }
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
        into.extend(extra);
    }
}

fn configuration(kind: &str, name: &str, webhooks: Vec<Value>) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": { "name": name },
        "webhooks": webhooks,
    })
}

fn mutating(name: &str, webhooks: Vec<Value>) -> Value {
    configuration("MutatingWebhookConfiguration", name, webhooks)
}

fn validating(name: &str, webhooks: Vec<Value>) -> Value {
    configuration("ValidatingWebhookConfiguration", name, webhooks)
}

/// `kubectl apply` of a new Deployment `podinfo` in the namespace `shop`, which is labelled
/// `sluice.dev/canary=enabled`.
fn create_deployment() -> AdmissionAttributes {
    let kinds = builtin_kinds();
    AdmissionAttributes {
        kind: lookup(&kinds, "apps", "v1", "deployments").unwrap().clone(),
        sub_resource: None,
        object_kind: None,
        operation: Operation::Create,
        name: "podinfo".into(),
        namespace: Some("shop".into()),
        user: UserInfo {
            username: "admin".into(),
            uid: "uid-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        },
        dry_run: false,
        options: Some(json!({ "fieldManager": "kubectl-client-side-apply" })),
        object: Some(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "podinfo", "namespace": "shop", "labels": { "app": "podinfo" } },
            "spec": { "replicas": 2 },
        })),
        old_object: None,
        namespace_labels: BTreeMap::from([("sluice.dev/canary".into(), "enabled".into())]),
    }
}

#[tokio::test]
async fn a_mutating_patch_is_applied_whether_base64_or_an_array_of_numbers() {
    let hooks = Hooks::start().await;
    let admitted = hooks
        .mutate_with(vec![
            hooks.at("b64.sluice.dev", "/patch-b64"),
            hooks.at("array.sluice.dev", "/patch-array"),
        ])
        .await
        .unwrap();
    let labels = &admitted.object.unwrap()["metadata"]["labels"];
    assert_eq!(labels["patched-b64"], "yes");
    assert_eq!(labels["patched-array"], "yes");
    assert_eq!(labels["app"], "podinfo");
    // The second webhook saw the first one's patch, and the default timeout was announced.
    let second = &hooks.log.calls("/patch-array")[0];
    assert_eq!(
        second.review["request"]["object"]["metadata"]["labels"]["patched-b64"],
        "yes"
    );
    assert_eq!(second.query, "timeout=10s");
    let request = &second.review["request"];
    assert_eq!(request["operation"], "CREATE");
    assert_eq!(
        request["options"],
        json!({ "kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-client-side-apply" })
    );
    assert_eq!(request["userInfo"]["username"], "admin");
}

#[tokio::test]
async fn a_denial_is_worded_as_kube_apiserver_words_it() {
    let hooks = Hooks::start().await;
    let err = hooks
        .validate_with(vec![hooks.at("validate.sluice.dev", "/deny")])
        .await
        .unwrap_err();
    // The `create-denied-by-validating-webhook` capture: 403, no reason.
    assert_eq!(
        err.to_status(),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("admission webhook \"validate.sluice.dev\" denied the request: {DENIAL}"),
            "code": 403,
        })
    );
}

#[tokio::test]
async fn a_mutating_webhook_can_deny_too() {
    let hooks = Hooks::start().await;
    let err = hooks
        .mutate_with(vec![hooks.at("mutate.sluice.dev", "/deny")])
        .await
        .unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        format!("admission webhook \"mutate.sluice.dev\" denied the request: {DENIAL}")
    );
}

#[tokio::test]
async fn a_timeout_under_failure_policy_fail_is_an_internal_error() {
    let hooks = Hooks::start().await;
    let started = std::time::Instant::now();
    let err = hooks
        .validate_with(vec![hooks.hook(
            "validate.sluice.dev",
            "/slow",
            json!({ "timeoutSeconds": 1, "failurePolicy": "Fail" }),
        )])
        .await
        .unwrap_err();
    // Well before the webhook would have answered (10 s): the 1 s timeout cut the call.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    assert_eq!(
        err.message,
        format!(
            "Internal error occurred: failed calling webhook \"validate.sluice.dev\": failed to call webhook: Post \"https://127.0.0.1:{}/slow?timeout=1s\": context deadline exceeded",
            hooks.addr.port()
        )
    );
}

#[tokio::test]
async fn a_refused_connection_under_the_default_failure_policy_is_an_internal_error() {
    let hooks = Hooks::start().await;
    let (hook, port) = hooks.refused("validate.sluice.dev", json!({ "timeoutSeconds": 1 }));
    let err = hooks.validate_with(vec![hook]).await.unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    assert_eq!(
        err.message,
        format!(
            "Internal error occurred: failed calling webhook \"validate.sluice.dev\": failed to call webhook: Post \"https://127.0.0.1:{port}/none?timeout=1s\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
}

#[tokio::test]
async fn failure_policy_ignore_goes_on_as_if_the_webhook_did_not_exist() {
    let hooks = Hooks::start().await;
    let (refused, _) = hooks.refused("refused.sluice.dev", json!({ "failurePolicy": "Ignore" }));
    let slow = hooks.hook(
        "slow.sluice.dev",
        "/slow",
        json!({ "failurePolicy": "Ignore", "timeoutSeconds": 1 }),
    );
    let after = hooks.at("after.sluice.dev", "/patch-b64");
    let admitted = hooks
        .mutate_with(vec![refused.clone(), slow.clone(), after])
        .await
        .unwrap();
    // The webhooks after the failed ones still ran.
    assert_eq!(
        admitted.object.unwrap()["metadata"]["labels"]["patched-b64"],
        "yes"
    );
    hooks.validate_with(vec![refused, slow]).await.unwrap();
}

#[tokio::test]
async fn rules_and_selectors_decide_which_webhooks_are_called() {
    let hooks = Hooks::start().await;
    let configs = [validating(
        "sluice",
        vec![
            hooks.hook("match.sluice.dev", "/allow/match", json!({
                "namespaceSelector": { "matchExpressions": [
                    { "key": "sluice.dev/canary", "operator": "In", "values": ["enabled"] }
                ] },
                "objectSelector": { "matchLabels": { "app": "podinfo" } },
            })),
            hooks.hook("ns.sluice.dev", "/allow/other-namespace", json!({
                "namespaceSelector": { "matchLabels": { "sluice.dev/canary": "disabled" } },
            })),
            hooks.hook("obj.sluice.dev", "/allow/other-object", json!({
                "objectSelector": { "matchExpressions": [
                    { "key": "app", "operator": "NotIn", "values": ["podinfo"] }
                ] },
            })),
            hooks.hook("svc.sluice.dev", "/allow/services", json!({
                "rules": [{ "operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["services"] }],
            })),
            hooks.hook("scale.sluice.dev", "/allow/scale-only", json!({
                "rules": [{ "operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments/scale"] }],
            })),
            hooks.hook("update.sluice.dev", "/allow/update-only", json!({
                "rules": [{ "operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"] }],
            })),
        ],
    )];
    hooks.validate(&configs).await.unwrap();
    assert_eq!(hooks.log.paths(), ["/allow/match"]);

    // `kubectl scale`: an UPDATE of deployments/scale with a Scale object reaches only the
    // webhook that lists the subresource.
    let mut scale = create_deployment();
    scale.operation = Operation::Update;
    scale.sub_resource = Some("scale".into());
    scale.object_kind = Some(("autoscaling".into(), "v1".into(), "Scale".into()));
    scale.object = Some(json!({ "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": { "name": "podinfo", "namespace": "shop" }, "spec": { "replicas": 3 } }));
    scale.old_object = Some(json!({ "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": { "name": "podinfo", "namespace": "shop" }, "spec": { "replicas": 2 } }));
    hooks.admitter().validate(&configs, &scale).await.unwrap();
    assert_eq!(hooks.log.paths(), ["/allow/match", "/allow/scale-only"]);
    let request = &hooks.log.calls("/allow/scale-only")[0].review["request"];
    assert_eq!(
        request["kind"],
        json!({ "group": "autoscaling", "version": "v1", "kind": "Scale" })
    );
    assert_eq!(request["subResource"], "scale");
    assert_eq!(request["oldObject"]["spec"]["replicas"], 2);
}

#[tokio::test]
async fn an_object_selector_also_matches_the_old_object() {
    let hooks = Hooks::start().await;
    let webhooks = vec![hooks.hook(
        "old.sluice.dev",
        "/allow/old",
        json!({
            "objectSelector": { "matchLabels": { "tier": "web" } },
        }),
    )];
    let mut update = create_deployment();
    update.operation = Operation::Update;
    update.old_object = Some(json!({ "metadata": { "labels": { "tier": "web" } } }));
    hooks.validate_on(webhooks, &update).await.unwrap();
    assert_eq!(hooks.log.paths(), ["/allow/old"]);
}

#[tokio::test]
async fn a_dry_run_is_refused_for_a_webhook_that_may_have_side_effects() {
    let hooks = Hooks::start().await;
    let webhooks = vec![hooks.hook(
        "effects.sluice.dev",
        "/allow/effects",
        json!({ "sideEffects": "Unknown", "failurePolicy": "Ignore" }),
    )];
    let mut attrs = create_deployment();
    attrs.dry_run = true;
    let err = hooks.mutate_on(webhooks, &attrs).await.unwrap_err();
    // Refused whatever the failure policy, and never called.
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        err.message,
        "admission webhook \"effects.sluice.dev\" does not support dry run"
    );
    assert!(hooks.log.paths().is_empty());
}

#[tokio::test]
async fn a_dry_run_reaches_a_webhook_without_side_effects_marked_as_dry_run() {
    let hooks = Hooks::start().await;
    let webhooks = vec![
        hooks.hook(
            "none.sluice.dev",
            "/allow/none",
            json!({ "sideEffects": "None" }),
        ),
        hooks.hook(
            "ondryrun.sluice.dev",
            "/allow/on-dry-run",
            json!({ "sideEffects": "NoneOnDryRun" }),
        ),
    ];
    let mut attrs = create_deployment();
    attrs.dry_run = true;
    attrs.options = Some(json!({ "dryRun": ["All"] }));
    hooks.validate_on(webhooks, &attrs).await.unwrap();
    for path in ["/allow/none", "/allow/on-dry-run"] {
        let request = &hooks.log.calls(path)[0].review["request"];
        assert_eq!(request["dryRun"], true, "{path}");
        assert_eq!(request["options"]["dryRun"], json!(["All"]), "{path}");
    }
}

#[tokio::test]
async fn an_if_needed_webhook_is_called_again_after_a_later_webhook_changes_the_object() {
    let hooks = Hooks::start().await;
    // Configurations run by name: "a-observe" before "b-patch".
    let configs = [
        mutating("b-patch", vec![hooks.at("patch.sluice.dev", "/patch-b64")]),
        mutating(
            "a-observe",
            vec![
                hooks.hook(
                    "again.sluice.dev",
                    "/allow/if-needed",
                    json!({ "reinvocationPolicy": "IfNeeded" }),
                ),
                hooks.hook(
                    "once.sluice.dev",
                    "/allow/never",
                    json!({ "reinvocationPolicy": "Never" }),
                ),
            ],
        ),
    ];
    let admitted = hooks.mutate(&configs).await.unwrap();
    assert_eq!(
        hooks.log.paths(),
        [
            "/allow/if-needed",
            "/allow/never",
            "/patch-b64",
            "/allow/if-needed"
        ]
    );
    let calls = hooks.log.calls("/allow/if-needed");
    assert!(calls[0].review["request"]["object"]["metadata"]["labels"]["patched-b64"].is_null());
    assert_eq!(
        calls[1].review["request"]["object"]["metadata"]["labels"]["patched-b64"],
        "yes"
    );
    assert_ne!(
        calls[0].review["request"]["uid"],
        calls[1].review["request"]["uid"]
    );
    assert_eq!(
        admitted.object.unwrap()["metadata"]["labels"]["patched-b64"],
        "yes"
    );
}

#[tokio::test]
async fn no_webhook_is_reinvoked_when_nothing_changed_after_it() {
    let hooks = Hooks::start().await;
    hooks
        .mutate_with(vec![
            hooks.at("patch.sluice.dev", "/patch-b64"),
            hooks.hook(
                "after.sluice.dev",
                "/allow/after",
                json!({ "reinvocationPolicy": "IfNeeded" }),
            ),
        ])
        .await
        .unwrap();
    assert_eq!(hooks.log.paths(), ["/patch-b64", "/allow/after"]);
}

fn service_hook(hooks: &Hooks, name: &str, service: &str) -> Value {
    let mut hook = hooks.hook(name, "/", json!({}));
    hook["clientConfig"] = json!({
        "service": { "namespace": SERVICE_NAMESPACE, "name": service, "path": "/patch-b64", "port": 8443 },
        "caBundle": hooks.ca_bundle,
    });
    hook
}

#[tokio::test]
async fn a_service_client_config_is_resolved_and_verified_as_name_namespace_svc() {
    let hooks = Hooks::start().await;
    let admitted = hooks
        .mutate_with(vec![service_hook(&hooks, "svc.sluice.dev", SERVICE_NAME)])
        .await
        .unwrap();
    assert_eq!(
        admitted.object.unwrap()["metadata"]["labels"]["patched-b64"],
        "yes"
    );
    assert_eq!(hooks.log.paths(), ["/patch-b64"]);
}

#[tokio::test]
async fn a_service_whose_name_the_certificate_does_not_carry_is_not_trusted() {
    let hooks = Hooks::start().await;
    // The resolver sends every service in the namespace to the same server, whose
    // certificate is only for `hooks.sluice-test.svc`.
    let err = hooks
        .mutate_with(vec![service_hook(&hooks, "svc.sluice.dev", "other")])
        .await
        .unwrap_err();
    assert_eq!(err.code, 500);
    assert_eq!(
        err.message,
        "Internal error occurred: failed calling webhook \"svc.sluice.dev\": failed to call webhook: Post \"https://other.sluice-test.svc:8443/patch-b64?timeout=10s\": tls: failed to verify certificate: x509: certificate is valid for localhost, hooks.sluice-test.svc, not other.sluice-test.svc"
    );
    assert!(hooks.log.paths().is_empty());
}

#[tokio::test]
async fn an_unresolvable_service_fails_the_call() {
    let hooks = Hooks::start().await;
    let mut hook = service_hook(&hooks, "svc.sluice.dev", SERVICE_NAME);
    hook["clientConfig"]["service"]["port"] = json!(443);
    let err = hooks.mutate_with(vec![hook]).await.unwrap_err();
    assert_eq!(
        err.message,
        "Internal error occurred: failed calling webhook \"svc.sluice.dev\": failed to call webhook: Post \"https://hooks.sluice-test.svc:443/patch-b64?timeout=10s\": service \"hooks\" not found"
    );
}

#[tokio::test]
async fn a_webhook_signed_by_another_ca_is_not_trusted() {
    let hooks = Hooks::start().await;
    let stranger = Ca::new("some other CA").unwrap();
    let mut hook = hooks.at("validate.sluice.dev", "/allow/x");
    hook["clientConfig"]["caBundle"] =
        json!(base64::engine::general_purpose::STANDARD.encode(stranger.cert_pem()));
    let err = hooks.validate_with(vec![hook]).await.unwrap_err();
    assert_eq!(
        err.message,
        format!(
            "Internal error occurred: failed calling webhook \"validate.sluice.dev\": failed to call webhook: Post \"https://127.0.0.1:{}/allow/x?timeout=10s\": tls: failed to verify certificate: x509: certificate signed by unknown authority",
            hooks.addr.port()
        )
    );
}

#[tokio::test]
async fn a_validating_webhook_that_returns_a_patch_fails_the_call() {
    let hooks = Hooks::start().await;
    let err = hooks
        .validate_with(vec![hooks.at("validate.sluice.dev", "/patch-b64")])
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "Internal error occurred: failed calling webhook \"validate.sluice.dev\": received invalid webhook response: validating webhook may not return response.patch"
    );
}

#[tokio::test]
async fn an_answer_to_another_request_fails_the_call() {
    let hooks = Hooks::start().await;
    let err = hooks
        .mutate_with(vec![hooks.at("mutate.sluice.dev", "/wrong-uid")])
        .await
        .unwrap_err();
    let uid = hooks.log.calls("/wrong-uid")[0].review["request"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        err.message,
        format!(
            "Internal error occurred: failed calling webhook \"mutate.sluice.dev\": received invalid webhook response: expected response.uid=\"{uid}\", got \"not-yours\""
        )
    );
}

#[tokio::test]
async fn warnings_of_every_webhook_are_collected() {
    let hooks = Hooks::start().await;
    let admitted = hooks
        .mutate_with(vec![hooks.at("m.sluice.dev", "/warn/m")])
        .await
        .unwrap();
    assert_eq!(admitted.warnings, ["/warn/m says hello"]);
    let warnings = hooks
        .validate_with(vec![
            hooks.at("v1.sluice.dev", "/warn/v1"),
            hooks.at("v2.sluice.dev", "/warn/v2"),
        ])
        .await
        .unwrap();
    assert_eq!(warnings, ["/warn/v1 says hello", "/warn/v2 says hello"]);
}

#[tokio::test]
async fn the_first_failing_validating_webhook_in_order_is_reported() {
    let hooks = Hooks::start().await;
    let configs = [
        validating("b", vec![hooks.at("late.sluice.dev", "/deny/late")]),
        validating(
            "a",
            vec![
                hooks.at("allow.sluice.dev", "/allow/a"),
                hooks.at("early.sluice.dev", "/deny/early"),
            ],
        ),
    ];
    let err = hooks.validate(&configs).await.unwrap_err();
    assert_eq!(
        err.message,
        format!("admission webhook \"early.sluice.dev\" denied the request: {DENIAL}")
    );
    // All three were called: validating webhooks do not stop at the first denial.
    let mut paths = hooks.log.paths();
    paths.sort();
    assert_eq!(paths, ["/allow/a", "/deny/early", "/deny/late"]);
}

#[tokio::test]
async fn a_v1beta1_only_webhook_gets_and_must_answer_a_v1beta1_review() {
    let hooks = Hooks::start().await;
    hooks
        .validate_with(vec![hooks.hook(
            "old.sluice.dev",
            "/allow/beta",
            json!({ "admissionReviewVersions": ["v1beta1"] }),
        )])
        .await
        .unwrap();
    assert_eq!(
        hooks.log.calls("/allow/beta")[0].review["apiVersion"],
        "admission.k8s.io/v1beta1"
    );
}

#[tokio::test]
async fn match_conditions_skip_the_webhook_for_requests_they_exclude() {
    let hooks = Hooks::start().await;
    // Sluice's own writes should not be intercepted by its webhook.
    let configs = [mutating(
        "sluice",
        vec![hooks.hook(
            "mutate.sluice.dev",
            "/patch-b64",
            json!({ "matchConditions": [{
                "name": "not-sluice-itself",
                "expression": "request.userInfo.username != 'system:serviceaccount:sluice-system:sluice'",
            }] }),
        )],
    )];
    let admitter = hooks.admitter();
    let mut by_sluice = create_deployment();
    by_sluice.user.username = "system:serviceaccount:sluice-system:sluice".into();
    let admitted = admitter.mutate(&configs, &by_sluice).await.unwrap();
    assert!(admitted.object.unwrap()["metadata"]["labels"]["patched-b64"].is_null());
    assert!(hooks.log.paths().is_empty());
    let admitted = admitter
        .mutate(&configs, &create_deployment())
        .await
        .unwrap();
    assert_eq!(
        admitted.object.unwrap()["metadata"]["labels"]["patched-b64"],
        "yes"
    );
}

#[tokio::test]
async fn webhook_configurations_themselves_never_go_to_webhooks() {
    let hooks = Hooks::start().await;
    let mut hook = hooks.at("all.sluice.dev", "/deny");
    hook["rules"] = json!([{ "operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"] }]);
    let kinds = builtin_kinds();
    let mut attrs = create_deployment();
    attrs.kind = lookup(
        &kinds,
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
    )
    .unwrap()
    .clone();
    attrs.namespace = None;
    attrs.operation = Operation::Delete;
    attrs.old_object = attrs.object.take();
    hooks.validate_on(vec![hook], &attrs).await.unwrap();
    assert!(hooks.log.paths().is_empty());
}

#[tokio::test]
async fn a_webhook_that_answers_500_fails_the_call_with_its_text() {
    let hooks = Hooks::start().await;
    let err = hooks
        .validate_with(vec![hooks.at("validate.sluice.dev", "/crash")])
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "Internal error occurred: failed calling webhook \"validate.sluice.dev\": failed to call webhook: an error on the server (\"boom\") has prevented the request from succeeding"
    );
}
