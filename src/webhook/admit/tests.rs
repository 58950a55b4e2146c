//! mutate and validate on every captured review in `tests/fixtures/admission/`, and on
//! variations of them (a rollout holding the Deployment, a failed revision, cold caches).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::*;
use crate::controller::status::{CheckVerdict, Phase};
use crate::policy::keys::STATUS_ANNOTATION;
use crate::webhook::revision::{canonical_json, revision};
use crate::webhook::view::StaticView;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/admission/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn review(v: &Value) -> Review {
    Review::from_slice(&serde_json::to_vec(v).unwrap()).unwrap()
}

/// The captures' namespace, labelled as it was when they were taken.
fn shop() -> StaticView {
    StaticView::with_namespace("shop", &[(OPT_IN_LABEL, "enabled")])
}

fn mutate_fixture(v: &Value, view: &dyn ClusterView) -> AdmissionResponse {
    mutate(&review(v), view, SLUICE_USER)
}

fn patch_of(resp: &AdmissionResponse) -> Option<Patch> {
    resp.patch
        .as_ref()
        .map(|p| serde_json::from_slice(p).unwrap())
}

/// The new object after the response's patch, as kube-apiserver would store it.
fn patched(v: &Value, resp: &AdmissionResponse) -> Value {
    let mut object = v["request"]["object"].clone();
    if let Some(p) = patch_of(resp) {
        json_patch::patch(&mut object, &p).unwrap();
    }
    object
}

fn status(phase: Phase) -> RolloutStatus {
    RolloutStatus::new(phase, UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

/// Puts `status` on both objects, as the controller's annotation is carried by every update.
fn with_status(mut v: Value, s: &RolloutStatus) -> Value {
    for o in ["object", "oldObject"] {
        v["request"][o]["metadata"]["annotations"][STATUS_ANNOTATION] = json!(s.to_annotation());
    }
    v
}

fn stable_of(object: &Value) -> Option<&str> {
    object["metadata"]["annotations"][STABLE_TEMPLATE_ANNOTATION].as_str()
}

#[test]
fn pauses_an_image_update_and_records_the_old_template_as_stable() {
    let v = fixture("deployment-update-image.json");
    let resp = mutate_fixture(&v, &shop());
    assert!(resp.allowed, "{resp:?}");
    assert_eq!(resp.uid, "7a532e0f-89cf-4d7b-82e7-738e5e714fed");
    let after = patched(&v, &resp);
    assert_eq!(after["spec"]["paused"], json!(true));
    let old_template = &v["request"]["oldObject"]["spec"]["template"];
    assert_eq!(
        stable_of(&after),
        Some(canonical_json(old_template).as_str())
    );
    // The user's change itself is untouched.
    assert_eq!(
        after["spec"]["template"],
        v["request"]["object"]["spec"]["template"]
    );
}

#[test]
fn escapes_the_annotation_key_in_the_patch_path() {
    let v = fixture("deployment-update-image.json");
    let raw = String::from_utf8(mutate_fixture(&v, &shop()).patch.unwrap()).unwrap();
    let ops: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        ops[0],
        json!({"op": "add", "path": "/spec/paused", "value": true})
    );
    assert_eq!(
        ops[1]["path"],
        json!("/metadata/annotations/sluice.dev~1stable-template")
    );
}

#[test]
fn answers_a_dry_run_exactly_as_the_real_update() {
    let real = fixture("deployment-update-image.json");
    let dry = fixture("deployment-update-image-dryrun.json");
    assert_eq!(dry["request"]["dryRun"], json!(true));
    let (a, b) = (
        mutate_fixture(&real, &shop()),
        mutate_fixture(&dry, &shop()),
    );
    assert!(b.allowed);
    assert_eq!(patched(&dry, &b)["spec"]["paused"], json!(true));
    assert_eq!(
        stable_of(&patched(&dry, &b)),
        Some(canonical_json(&dry["request"]["oldObject"]["spec"]["template"]).as_str())
    );
    assert_eq!(patch_of(&a).unwrap().0.len(), patch_of(&b).unwrap().0.len());
}

#[test]
fn a_reinvocation_after_its_own_patch_changes_nothing() {
    let mut v = fixture("deployment-update-image.json");
    let first = mutate_fixture(&v, &shop());
    v["request"]["object"] = patched(&v, &first);
    let second = mutate_fixture(&v, &shop());
    assert!(second.allowed);
    assert_eq!(patch_of(&second), None);
}

#[test]
fn leaves_the_scale_subresource_untouched() {
    let v = fixture("deployment-scale-subresource.json");
    let resp = mutate_fixture(&v, &shop());
    assert!(resp.allowed);
    assert_eq!(resp.uid, "595aa6ce-f432-4661-8812-475475d65eb2");
    assert_eq!(resp.patch, None);
    // Even while a rollout holds the Deployment and the caches are cold.
    let held = with_status(v, &status(Phase::Progressing));
    let resp = mutate_fixture(&held, &StaticView::default());
    assert!(resp.allowed);
    assert_eq!(resp.patch, None);
}

#[test]
fn leaves_a_create_untouched() {
    let v = fixture("deployment-create.json");
    let resp = mutate_fixture(&v, &shop());
    assert!(resp.allowed);
    assert_eq!(resp.uid, "f62f8e7b-50b5-461c-9798-de68308cbf03");
    assert_eq!(resp.patch, None);
    assert!(validate(&review(&v), &shop(), SLUICE_USER).allowed);
}

#[test]
fn leaves_kubectl_rollout_pause_and_resume_alone_at_rest() {
    for name in [
        "deployment-rollout-pause.json",
        "deployment-rollout-resume.json",
    ] {
        let v = fixture(name);
        let resp = mutate_fixture(&v, &shop());
        assert!(resp.allowed, "{name}");
        assert_eq!(resp.patch, None, "{name}");
        let v = with_status(v, &status(Phase::Succeeded));
        assert_eq!(mutate_fixture(&v, &shop()).patch, None, "{name}");
    }
}

#[test]
fn re_pauses_a_rollout_resume_while_a_rollout_holds_the_deployment() {
    let v = with_status(
        fixture("deployment-rollout-resume.json"),
        &status(Phase::Progressing),
    );
    let resp = mutate_fixture(&v, &shop());
    assert!(resp.allowed);
    assert_eq!(patched(&v, &resp)["spec"]["paused"], json!(true));
    // Nothing recorded a stable template, and the template did not change: none is invented.
    assert_eq!(stable_of(&patched(&v, &resp)), None);
}

#[test]
fn a_rollout_pause_while_held_needs_no_patch() {
    let v = with_status(
        fixture("deployment-rollout-pause.json"),
        &status(Phase::Progressing),
    );
    assert_eq!(mutate_fixture(&v, &shop()).patch, None);
}

#[test]
fn keeps_the_stable_template_of_a_rollout_in_progress() {
    let mut v = with_status(
        fixture("deployment-update-image.json"),
        &status(Phase::Progressing),
    );
    for o in ["object", "oldObject"] {
        v["request"][o]["metadata"]["annotations"][STABLE_TEMPLATE_ANNOTATION] =
            json!("{\"the\":\"first stable\"}");
    }
    let resp = mutate_fixture(&v, &shop());
    let ops = patch_of(&resp).unwrap().0;
    assert_eq!(ops.len(), 1, "only the pause: {ops:?}");
    assert_eq!(
        stable_of(&patched(&v, &resp)),
        Some("{\"the\":\"first stable\"}")
    );

    // An update that drops the annotation (kubectl replace) gets it back.
    let map = v["request"]["object"]["metadata"]["annotations"]
        .as_object_mut()
        .unwrap();
    map.remove(STABLE_TEMPLATE_ANNOTATION);
    let resp = mutate_fixture(&v, &shop());
    assert_eq!(
        stable_of(&patched(&v, &resp)),
        Some("{\"the\":\"first stable\"}")
    );
}

#[test]
fn a_recorded_stable_template_holds_the_deployment_even_without_a_status() {
    let mut v = fixture("deployment-rollout-resume.json");
    for o in ["object", "oldObject"] {
        v["request"][o]["metadata"]["annotations"][STABLE_TEMPLATE_ANNOTATION] = json!("{}");
    }
    let resp = mutate_fixture(&v, &shop());
    assert_eq!(patched(&v, &resp)["spec"]["paused"], json!(true));
}

#[test]
fn adds_the_annotations_map_when_the_deployment_has_none() {
    let mut v = fixture("deployment-update-image.json");
    v["request"]["object"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let resp = mutate_fixture(&v, &shop());
    let after = patched(&v, &resp);
    assert!(stable_of(&after).is_some());
    assert_eq!(
        after["metadata"]["annotations"].as_object().unwrap().len(),
        1
    );
}

#[test]
fn replica_and_metadata_changes_never_start_a_rollout() {
    let mut v = fixture("deployment-update-image.json");
    v["request"]["object"]["spec"]["template"] =
        v["request"]["oldObject"]["spec"]["template"].clone();
    v["request"]["object"]["spec"]["replicas"] = json!(7);
    v["request"]["object"]["metadata"]["labels"]["team"] = json!("checkout");
    let resp = mutate_fixture(&v, &shop());
    assert!(resp.allowed);
    assert_eq!(resp.patch, None);
}

#[test]
fn passes_sluices_own_updates_untouched() {
    let mut v = fixture("deployment-update-image.json");
    v["request"]["userInfo"]["username"] = json!(SLUICE_USER);
    let resp = mutate_fixture(&v, &StaticView::default());
    assert!(resp.allowed);
    assert_eq!(resp.patch, None);
}

#[test]
fn refuses_a_managed_update_while_the_caches_are_cold() {
    let v = fixture("deployment-update-image.json");
    let resp = mutate_fixture(&v, &StaticView::default());
    assert!(!resp.allowed);
    assert_eq!(resp.result.code, 503);
    assert!(
        resp.result.message.contains("shop/podinfo"),
        "{}",
        resp.result.message
    );
    assert!(
        resp.result.message.contains(CACHE_COLD),
        "{}",
        resp.result.message
    );
    assert_eq!(resp.patch, None);

    // A synced cache that has not seen the namespace yet is just as unsure.
    let unknown = StaticView {
        synced: true,
        ..Default::default()
    };
    let resp = mutate_fixture(&v, &unknown);
    assert!(!resp.allowed);
    assert!(
        resp.result.message.contains("\"shop\""),
        "{}",
        resp.result.message
    );
}

#[test]
fn a_deployment_label_opts_in_without_asking_the_cache() {
    let mut v = fixture("deployment-update-image.json");
    v["request"]["object"]["metadata"]["labels"][OPT_IN_LABEL] = json!("enabled");
    let resp = mutate_fixture(&v, &StaticView::default());
    assert!(resp.allowed);
    assert_eq!(patched(&v, &resp)["spec"]["paused"], json!(true));
}

#[test]
fn lets_unmanaged_deployments_through() {
    let v = fixture("deployment-update-image.json");
    let plain = StaticView::with_namespace("shop", &[]);
    let resp = mutate_fixture(&v, &plain);
    assert!(resp.allowed);
    assert_eq!(resp.patch, None);

    // Opted out in a managed namespace, before and after the update.
    let mut v = v;
    for o in ["object", "oldObject"] {
        v["request"][o]["metadata"]["labels"][OPT_IN_LABEL] = json!("disabled");
    }
    let resp = mutate_fixture(&v, &shop());
    assert!(resp.allowed);
    assert_eq!(resp.patch, None);
}

#[test]
fn opting_out_in_the_same_update_as_a_new_image_is_still_intercepted() {
    let mut v = fixture("deployment-update-image.json");
    v["request"]["object"]["metadata"]["labels"][OPT_IN_LABEL] = json!("disabled");
    let resp = mutate_fixture(&v, &shop());
    assert_eq!(patched(&v, &resp)["spec"]["paused"], json!(true));
}

#[test]
fn an_unreadable_status_keeps_the_deployment_paused_and_says_why() {
    let mut v = fixture("deployment-rollout-resume.json");
    v["request"]["oldObject"]["metadata"]["annotations"][STATUS_ANNOTATION] = json!("{nope");
    let resp = mutate_fixture(&v, &shop());
    assert!(resp.allowed);
    assert_eq!(patched(&v, &resp)["spec"]["paused"], json!(true));
    let warnings = resp.warnings.unwrap();
    assert!(warnings[0].contains(STATUS_ANNOTATION), "{warnings:?}");
}

#[test]
fn a_review_without_a_request_gets_an_error_response() {
    let r = Review {
        api_version: "admission.k8s.io/v1".into(),
        request: None,
    };
    for resp in [
        mutate(&r, &shop(), SLUICE_USER),
        validate(&r, &shop(), SLUICE_USER),
    ] {
        assert!(!resp.allowed);
        assert!(
            resp.result.message.contains("no `request`"),
            "{}",
            resp.result.message
        );
    }
}

fn failed_rollout(v: Value) -> (Value, String) {
    let rev = revision(&v["request"]["object"]["spec"]["template"]);
    let mut s = status(Phase::Failed);
    s.failed_revision = Some(rev.clone());
    s.last_verdicts = vec![
        CheckVerdict {
            name: "success-rate".into(),
            result: CheckResult::Fail,
            value: Some(91.0),
            detail: "91% < 99%".into(),
            baseline: None,
        },
        CheckVerdict {
            name: "latency-p99".into(),
            result: CheckResult::Pass,
            value: Some(0.2),
            detail: "200ms <= 500ms".into(),
            baseline: None,
        },
    ];
    (with_status(v, &s), rev)
}

#[test]
fn refuses_reapplying_a_failed_revision() {
    let (v, rev) = failed_rollout(fixture("deployment-update-image.json"));
    let resp = validate(&review(&v), &shop(), SLUICE_USER);
    assert!(!resp.allowed);
    assert_eq!(resp.uid, "7a532e0f-89cf-4d7b-82e7-738e5e714fed");
    assert_eq!(resp.result.code, 403);
    let msg = &resp.result.message;
    for part in [
        "Deployment shop/podinfo",
        rev.as_str(),
        "success-rate: 91% < 99%",
        "kubectl -n shop annotate deploy/podinfo sluice.dev/retry=true",
        "re-apply",
    ] {
        assert!(msg.contains(part), "{part:?} missing from {msg}");
    }
    assert!(
        !msg.contains("latency-p99"),
        "only failed checks are named: {msg}"
    );
}

#[test]
fn allows_a_failed_revision_once_retry_is_set() {
    let (mut v, _) = failed_rollout(fixture("deployment-update-image.json"));
    v["request"]["object"]["metadata"]["annotations"]["sluice.dev/retry"] = json!("true");
    assert!(validate(&review(&v), &shop(), SLUICE_USER).allowed);
    v["request"]["object"]["metadata"]["annotations"]["sluice.dev/retry"] = json!("false");
    assert!(!validate(&review(&v), &shop(), SLUICE_USER).allowed);
}

#[test]
fn allows_a_different_revision_after_a_failure() {
    let (mut v, _) = failed_rollout(fixture("deployment-update-image.json"));
    v["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("ghcr.io/stefanprodan/podinfo:6.0.2");
    assert!(validate(&review(&v), &shop(), SLUICE_USER).allowed);
}

#[test]
fn names_the_status_message_when_no_check_failed() {
    let (mut v, _) = failed_rollout(fixture("deployment-update-image.json"));
    let mut s = status(Phase::Failed);
    s.failed_revision = Some(revision(&v["request"]["object"]["spec"]["template"]));
    s.message = "the canary missed its progress deadline of 10m".into();
    v = with_status(v, &s);
    let resp = validate(&review(&v), &shop(), SLUICE_USER);
    assert!(
        resp.result.message.contains("progress deadline"),
        "{}",
        resp.result.message
    );
}

#[test]
fn validation_refuses_when_the_caches_are_cold_and_passes_unmanaged() {
    let (v, _) = failed_rollout(fixture("deployment-update-image.json"));
    let resp = validate(&review(&v), &StaticView::default(), SLUICE_USER);
    assert!(!resp.allowed);
    assert_eq!(resp.result.code, 503);
    let plain = StaticView::with_namespace("shop", &[]);
    assert!(validate(&review(&v), &plain, SLUICE_USER).allowed);
}

#[test]
fn validation_allows_every_captured_review_of_a_healthy_deployment() {
    for name in [
        "deployment-create.json",
        "deployment-update-image.json",
        "deployment-update-image-dryrun.json",
        "deployment-scale-subresource.json",
        "deployment-rollout-pause.json",
        "deployment-rollout-resume.json",
    ] {
        let resp = validate(&review(&fixture(name)), &shop(), SLUICE_USER);
        assert!(resp.allowed, "{name}: {}", resp.result.message);
        assert_eq!(resp.patch, None, "{name}");
    }
}

#[test]
fn a_template_too_deep_to_read_is_refused_with_a_400_when_managed_and_passes_otherwise() {
    let mut deep = json!([]);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    // mutate records the old template; validate hashes the new one against a failed revision.
    let mut old_deep = fixture("deployment-update-image.json");
    old_deep["request"]["oldObject"]["spec"]["template"] = deep.clone();
    let mut new_deep = fixture("deployment-update-image.json");
    new_deep["request"]["object"]["spec"]["template"] = deep;
    let (new_deep, _) = failed_rollout(new_deep);
    let judge = |view: &StaticView| {
        [
            mutate_fixture(&old_deep, view),
            validate(&review(&new_deep), view, SLUICE_USER),
        ]
    };
    for resp in judge(&shop()) {
        assert!(!resp.allowed);
        assert_eq!(resp.result.code, 400);
        let msg = &resp.result.message;
        assert!(
            msg.contains("shop/podinfo") && msg.contains("spec.template"),
            "{msg}"
        );
    }
    for resp in judge(&StaticView::with_namespace("shop", &[])) {
        assert!(resp.allowed, "{resp:?}");
        assert_eq!(resp.patch, None);
    }
}

#[test]
fn a_review_without_a_request_is_refused_as_a_bad_request_by_both_webhooks() {
    let review =
        Review::from_slice(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
            .unwrap();
    let view = StaticView::default();
    for resp in [
        mutate(&review, &view, SLUICE_USER),
        validate(&review, &view, SLUICE_USER),
    ] {
        assert!(!resp.allowed);
        assert_eq!(resp.result.code, 400, "{resp:?}");
        assert!(resp.result.message.contains("has no `request`"), "{resp:?}");
    }
}

/// The captures' namespace on a cluster that serves TrafficSplits and Ingresses, not HTTPRoutes.
fn without_httproutes() -> StaticView {
    StaticView {
        discovery: Some(
            crate::routing::Discovery::default()
                .with("split.smi-spec.io/v1alpha2", "trafficsplits")
                .with("networking.k8s.io/v1", "ingresses"),
        ),
        ..shop()
    }
}

#[test]
fn setting_a_router_whose_api_is_not_served_is_refused_naming_the_api_and_what_to_install() {
    for name in ["deployment-update-image.json", "deployment-create.json"] {
        let mut v = fixture(name);
        v["request"]["object"]["metadata"]["annotations"]["sluice.dev/router"] =
            json!("gateway-api");
        let resp = validate(&review(&v), &without_httproutes(), SLUICE_USER);
        assert!(!resp.allowed, "{name}");
        assert_eq!(resp.result.code, 403, "{name}");
        let msg = &resp.result.message;
        for part in [
            "Deployment shop/podinfo",
            "sluice.dev/router: gateway-api",
            "gateway.networking.k8s.io/v1 httproutes",
            "install the Gateway API CRDs",
        ] {
            assert!(msg.contains(part), "{name}: {part:?} missing from {msg}");
        }
        v["request"]["object"]["metadata"]["annotations"]["sluice.dev/router"] = json!("nginx");
        let resp = validate(&review(&v), &without_httproutes(), SLUICE_USER);
        assert!(resp.allowed, "{name}: {}", resp.result.message);
    }
}

#[test]
fn a_router_already_set_or_an_unknown_discovery_refuses_nothing() {
    let mut v = fixture("deployment-update-image.json");
    v["request"]["object"]["metadata"]["annotations"]["sluice.dev/router"] = json!("gateway-api");
    assert!(
        validate(&review(&v), &shop(), SLUICE_USER).allowed,
        "no discovery known"
    );
    v["request"]["oldObject"]["metadata"]["annotations"]["sluice.dev/router"] =
        json!("gateway-api");
    let resp = validate(&review(&v), &without_httproutes(), SLUICE_USER);
    assert!(resp.allowed, "{}", resp.result.message);
}

#[test]
fn a_namespace_and_the_cluster_policy_cannot_choose_an_unserved_router_either() {
    let reviewed = |resource: &str, kind: &str, ns: Option<&str>, name: &str, new: Value| {
        let mut request = json!({
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": resource},
            "name": name, "operation": "UPDATE",
            "userInfo": {"username": "alice"},
            "object": new, "oldObject": {"metadata": {"name": name}},
        });
        if let Some(ns) = ns {
            request["namespace"] = json!(ns);
        }
        review(
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": request}),
        )
    };
    let namespace = reviewed(
        "namespaces",
        "Namespace",
        None,
        "shop",
        json!({"metadata": {"name": "shop", "annotations": {"sluice.dev/router": "gateway-api"}}}),
    );
    let resp = validate(&namespace, &without_httproutes(), SLUICE_USER);
    assert!(!resp.allowed);
    assert!(
        resp.result
            .message
            .contains("gateway.networking.k8s.io/v1 httproutes"),
        "{}",
        resp.result.message
    );
    let policy = reviewed(
        "configmaps",
        "ConfigMap",
        Some("sluice-system"),
        "sluice-policy",
        json!({"metadata": {"name": "sluice-policy"}, "data": {"router": "gateway-api"}}),
    );
    let resp = validate(&policy, &without_httproutes(), SLUICE_USER);
    assert!(!resp.allowed);
    assert!(
        resp.result.message.contains("router: gateway-api"),
        "{}",
        resp.result.message
    );
    let other = reviewed(
        "configmaps",
        "ConfigMap",
        Some("shop"),
        "sluice-policy",
        json!({"metadata": {"name": "sluice-policy"}, "data": {"router": "gateway-api"}}),
    );
    assert!(validate(&other, &without_httproutes(), SLUICE_USER).allowed);
}
