//! The enforcement checks through [`validate_at`]: a table of bad settings at each level (read
//! from `tests/fixtures/enforce/bad-settings.json`, which `tests/enforce.rs` also applies
//! through kubectl), then generated objects, the held apex, un-pausing, freezes and
//! break-glass, and fail-closed.

use std::collections::BTreeMap;
use std::time::SystemTime;

use kube::core::admission::AdmissionResponse;
use serde_json::{Value, json};

use crate::controller::status::{Phase, RolloutStatus};
use crate::policy::keys::{OPT_IN_LABEL, STABLE_TEMPLATE_ANNOTATION, STATUS_ANNOTATION};
use crate::webhook::admit::{SLUICE_USER, mutate, validate_at};
use crate::webhook::review::Review;
use crate::webhook::view::StaticView;

const ALICE: &str = "alice";
const SLUICE_NS: &str = "sluice-system";

/// 2026-12-25T12:00:00Z, inside the Christmas freeze below.
fn christmas() -> SystemTime {
    humantime::parse_rfc3339("2026-12-25T12:00:00Z").unwrap()
}
const CHRISTMAS_FREEZE: &str = "2026-12-24T00:00:00Z/2026-12-27T00:00:00Z";

struct Req {
    group: &'static str,
    resource: &'static str,
    kind: &'static str,
    op: &'static str,
    ns: Option<&'static str>,
    name: &'static str,
    user: &'static str,
    object: Option<Value>,
    old: Option<Value>,
    dry_run: bool,
}

impl Req {
    fn deployment(op: &'static str, object: Option<Value>, old: Option<Value>) -> Req {
        Req {
            group: "apps",
            resource: "deployments",
            kind: "Deployment",
            op,
            ns: Some("shop"),
            name: "web",
            user: ALICE,
            object,
            old,
            dry_run: false,
        }
    }

    fn review(&self) -> Review {
        let v = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": self.group, "version": "v1", "kind": self.kind},
                "resource": {"group": self.group, "version": "v1", "resource": self.resource},
                "name": self.name,
                "namespace": self.ns,
                "operation": self.op,
                "userInfo": {"username": self.user},
                "object": self.object,
                "oldObject": self.old,
                "dryRun": self.dry_run,
            }
        });
        Review::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn validate(&self, view: &StaticView) -> AdmissionResponse {
        validate_at(&self.review(), view, SLUICE_USER, christmas())
    }
}

fn map(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    )
}

/// Deployment `web`, opted in by its own label, with `annotations` and `image`.
fn web(annotations: &[(&str, &str)], image: &str) -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "shop",
            "labels": {"app": "web", OPT_IN_LABEL: "enabled"}, "annotations": map(annotations)},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}
    })
}

/// Namespace `shop` with annotations (and the Christmas freeze when `frozen`).
fn shop_view(annotations: &[(&str, &str)]) -> StaticView {
    let mut view = StaticView::with_namespace("shop", &[]);
    view.namespace_annotations.insert(
        "shop".into(),
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    view
}

fn frozen_shop() -> StaticView {
    shop_view(&[("sluice.dev/freeze", CHRISTMAS_FREEZE)])
}

fn message(resp: &AdmissionResponse) -> &str {
    &resp.result.message
}

fn assert_refused(resp: &AdmissionResponse, code: u16, fragment: &str) {
    assert!(!resp.allowed, "expected a refusal containing {fragment:?}");
    assert_eq!(resp.result.code, code, "{}", message(resp));
    assert!(
        message(resp).contains(fragment),
        "{:?}\n  does not contain {fragment:?}",
        message(resp)
    );
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum At {
    Deployment,
    Namespace,
    Cluster,
}

/// One row of `tests/fixtures/enforce/bad-settings.json`: where, the keys and values (as
/// written at that level), and the exact refusal after `KIND NAMESPACE/NAME: `. The same file
/// drives `tests/enforce.rs` through kubectl.
#[derive(Debug, serde::Deserialize)]
struct Row {
    at: At,
    settings: BTreeMap<String, String>,
    message: String,
}

/// The table of bad settings, shared with the kubectl test.
fn bad_table() -> Vec<Row> {
    serde_json::from_str(include_str!(
        "../../../../tests/fixtures/enforce/bad-settings.json"
    ))
    .expect("tests/fixtures/enforce/bad-settings.json is a list of rows")
}

/// The review that writes `pairs` at `at`, created or updated from an object without them.
fn bad_review(at: At, pairs: &[(&str, &str)]) -> Req {
    match at {
        At::Deployment => Req::deployment("CREATE", Some(web(pairs, "web:1")), None),
        At::Namespace => Req {
            group: "",
            resource: "namespaces",
            kind: "Namespace",
            op: "UPDATE",
            ns: None,
            name: "shop",
            user: ALICE,
            object: Some(json!({"metadata": {"name": "shop", "annotations": map(pairs)}})),
            old: Some(json!({"metadata": {"name": "shop"}})),
            dry_run: false,
        },
        At::Cluster => Req {
            group: "",
            resource: "configmaps",
            kind: "ConfigMap",
            op: "UPDATE",
            ns: Some(SLUICE_NS),
            name: "sluice-policy",
            user: ALICE,
            object: Some(json!({"metadata": {"name": "sluice-policy"}, "data": map(pairs)})),
            old: Some(json!({"metadata": {"name": "sluice-policy"}, "data": {}})),
            dry_run: false,
        },
    }
}

#[test]
fn every_bad_setting_in_the_table_is_refused_naming_the_object_key_value_and_fix() {
    let table = bad_table();
    assert!(table.len() >= 40, "the table holds {} rows", table.len());
    let view = shop_view(&[]);
    for Row {
        at,
        settings,
        message: expected,
    } in &table
    {
        let pairs: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resp = bad_review(*at, &pairs).validate(&view);
        let object = match at {
            At::Deployment => "Deployment shop/web: ",
            At::Namespace => "Namespace shop: ",
            At::Cluster => "ConfigMap sluice-system/sluice-policy: ",
        };
        assert!(!resp.allowed, "{at:?} {pairs:?} was admitted");
        assert_eq!(
            resp.result.code,
            403,
            "{at:?} {pairs:?}: {}",
            message(&resp)
        );
        assert_eq!(
            message(&resp),
            format!("{object}{expected}"),
            "{at:?} {pairs:?}"
        );
    }
}

#[test]
fn good_settings_at_every_level_pass() {
    let view = shop_view(&[]);
    let good = [
        (
            At::Deployment,
            &[
                ("sluice.dev/step-weights", "5,10,25,50"),
                ("sluice.dev/interval", "30s"),
            ][..],
        ),
        (
            At::Namespace,
            &[
                ("sluice.dev/freeze", "Sat 00:00-Mon 06:00 UTC"),
                ("sluice.dev/router", "gateway-api"),
            ][..],
        ),
        (
            At::Cluster,
            &[
                ("interval", "2m"),
                ("notify", "{url: 'https://hooks.example/x', type: slack}"),
            ][..],
        ),
    ];
    for (at, pairs) in good {
        let resp = bad_review(at, pairs).validate(&view);
        assert!(resp.allowed, "{at:?}: {}", message(&resp));
    }
}

#[test]
fn other_configmaps_and_the_policy_in_another_namespace_are_not_judged() {
    let view = shop_view(&[]);
    let mut other = bad_review(At::Cluster, &[("intervl", "1m")]);
    other.name = "app-config";
    assert!(other.validate(&view).allowed);
    let mut elsewhere = bad_review(At::Cluster, &[("intervl", "1m")]);
    elsewhere.ns = Some("shop");
    assert!(elsewhere.validate(&view).allowed);
}

#[test]
fn settings_the_update_leaves_unchanged_are_not_judged_again() {
    let bad = [("sluice.dev/intervall", "1m")];
    let mut scaled = web(&bad, "web:1");
    scaled["spec"]["replicas"] = json!(5);
    let req = Req::deployment("UPDATE", Some(scaled), Some(web(&bad, "web:1")));
    assert!(req.validate(&shop_view(&[])).allowed);
}

#[test]
fn a_match_under_the_default_smi_router_is_refused_for_a_managed_deployment() {
    let m = [(
        "sluice.dev/match",
        "[{headers: [{name: x-canary, value: insider}]}]",
    )];
    let req = Req::deployment("CREATE", Some(web(&m, "web:1")), None);
    assert_refused(&req.validate(&shop_view(&[])), 403, "SMI TrafficSplit");
    // The Namespace's router makes it valid.
    let gateway = shop_view(&[("sluice.dev/router", "gateway-api")]);
    assert!(req.validate(&gateway).allowed);
}

#[test]
fn every_error_of_one_object_is_in_one_message() {
    let req = bad_review(
        At::Deployment,
        &[
            ("sluice.dev/step-weight", "0"),
            ("sluice.dev/interval", "soon"),
        ],
    );
    let resp = req.validate(&shop_view(&[]));
    assert!(message(&resp).contains("sluice.dev/step-weight: \"0\""));
    assert!(message(&resp).contains("sluice.dev/interval: \"soon\""));
}

// ---------------------------------------------------------------------------------------------
// Generated objects and the apex
// ---------------------------------------------------------------------------------------------

fn generated_object(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "shop",
        "labels": {"app.kubernetes.io/managed-by": "sluice"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
            "uid": "u", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"selector": {"app": "web-primary"}}})
}

fn generated_req(
    kind: &'static str,
    name: &'static str,
    op: &'static str,
    user: &'static str,
) -> Req {
    let (group, resource) = match kind {
        "Deployment" => ("apps", "deployments"),
        "Service" => ("", "services"),
        "TrafficSplit" => ("split.smi-spec.io", "trafficsplits"),
        "Ingress" => ("networking.k8s.io", "ingresses"),
        _ => ("gateway.networking.k8s.io", "httproutes"),
    };
    let mut edited = generated_object(name);
    edited["metadata"]["labels"]["hand"] = json!("edit");
    Req {
        group,
        resource,
        kind,
        op,
        ns: Some("shop"),
        name,
        user,
        object: (op == "UPDATE").then_some(edited),
        old: Some(generated_object(name)),
        dry_run: false,
    }
}

#[test]
fn hand_edits_and_deletions_of_every_generated_object_are_refused() {
    let view = shop_view(&[]);
    for (kind, name) in [
        ("Deployment", "web-primary"),
        ("Service", "web-primary"),
        ("Service", "web-canary"),
        ("TrafficSplit", "web"),
        ("HTTPRoute", "web"),
        ("Ingress", "web-canary"),
    ] {
        for op in ["UPDATE", "DELETE"] {
            let resp = generated_req(kind, name, op, ALICE).validate(&view);
            assert_refused(
                &resp,
                403,
                &format!("{kind} shop/{name} is generated by Sluice for Deployment shop/web"),
            );
        }
    }
}

#[test]
fn sluice_and_kubernetes_controllers_may_change_generated_objects() {
    let view = shop_view(&[]);
    let gc = "system:serviceaccount:kube-system:generic-garbage-collector";
    assert!(
        generated_req("Service", "web-canary", "DELETE", gc)
            .validate(&view)
            .allowed
    );
    assert!(
        generated_req("Service", "web-canary", "UPDATE", SLUICE_USER)
            .validate(&view)
            .allowed
    );
}

#[test]
fn an_object_labelled_managed_by_sluice_without_its_owner_is_the_users() {
    let mut req = generated_req("Service", "web-canary", "UPDATE", ALICE);
    let old = req.old.as_mut().unwrap();
    old["metadata"]["ownerReferences"] = json!([]);
    assert!(req.validate(&shop_view(&[])).allowed);
}

fn apex(selector: Value, saved: Option<&str>, label: &str) -> Value {
    let mut v = json!({"metadata": {"name": "web", "namespace": "shop", "labels": {"tier": label}},
        "spec": {"selector": selector}});
    if let Some(saved) = saved {
        v["metadata"]["annotations"] = json!({"sluice.dev/apex-selector": saved});
    }
    v
}

fn apex_req(new: Value, old: Value) -> Req {
    Req {
        group: "",
        resource: "services",
        kind: "Service",
        op: "UPDATE",
        ns: Some("shop"),
        name: "web",
        user: ALICE,
        object: Some(new),
        old: Some(old),
        dry_run: false,
    }
}

#[test]
fn the_apex_selector_is_sluices_while_a_rollout_runs() {
    let view = shop_view(&[]);
    let saved = Some(r#"{"app":"web"}"#);
    let held = apex(json!({"app": "web-primary"}), saved, "a");
    let resp = apex_req(apex(json!({"app": "web"}), saved, "a"), held.clone()).validate(&view);
    assert_refused(
        &resp,
        403,
        "Service shop/web: spec.selector and sluice.dev/apex-selector are Sluice's while a rollout runs",
    );
    let dropped = apex(json!({"app": "web-primary"}), None, "a");
    assert!(!apex_req(dropped, held.clone()).validate(&view).allowed);
    // Labels stay the user's; at rest the selector is too.
    let relabelled = apex(json!({"app": "web-primary"}), saved, "b");
    assert!(apex_req(relabelled, held).validate(&view).allowed);
    let rest = apex(json!({"app": "web"}), None, "a");
    assert!(
        apex_req(apex(json!({"app": "v2"}), None, "a"), rest)
            .validate(&view)
            .allowed
    );
}

// ---------------------------------------------------------------------------------------------
// Un-pausing
// ---------------------------------------------------------------------------------------------

fn with(mut v: Value, f: impl FnOnce(&mut Value)) -> Value {
    f(&mut v);
    v
}

fn held_web(paused: Option<bool>) -> Value {
    let status = RolloutStatus::new(Phase::Preparing, christmas()).to_annotation();
    with(web(&[], "web:2"), |v| {
        v["metadata"]["annotations"][STATUS_ANNOTATION] = json!(status);
        v["metadata"]["annotations"][STABLE_TEMPLATE_ANNOTATION] = json!("{}");
        if let Some(p) = paused {
            v["spec"]["paused"] = json!(p);
        }
    })
}

#[test]
fn un_pausing_a_held_deployment_by_hand_is_refused_and_not_paused_again() {
    let req = Req::deployment(
        "UPDATE",
        Some(held_web(Some(false))),
        Some(held_web(Some(true))),
    );
    assert_refused(
        &req.validate(&shop_view(&[])),
        403,
        "Deployment shop/web: spec.paused: false is refused while Sluice holds the Deployment",
    );
    let m = mutate(&req.review(), &shop_view(&[]), SLUICE_USER);
    let patch = String::from_utf8(m.patch.unwrap_or_default()).unwrap();
    assert!(!patch.contains("/spec/paused"), "{patch}");
}

#[test]
fn un_pausing_at_rest_or_omitting_paused_passes_validation() {
    let view = shop_view(&[]);
    let rest = |p: bool| with(web(&[], "web:1"), |v| v["spec"]["paused"] = json!(p));
    assert!(
        Req::deployment("UPDATE", Some(rest(false)), Some(rest(true)))
            .validate(&view)
            .allowed
    );
    let omitted = Req::deployment("UPDATE", Some(held_web(None)), Some(held_web(Some(true))));
    assert!(omitted.validate(&view).allowed);
}

// ---------------------------------------------------------------------------------------------
// Freeze, break-glass, fail closed
// ---------------------------------------------------------------------------------------------

fn image_update(annotations: &[(&str, &str)], old_annotations: &[(&str, &str)]) -> Req {
    Req::deployment(
        "UPDATE",
        Some(web(annotations, "web:2")),
        Some(web(old_annotations, "web:1")),
    )
}

#[test]
fn a_namespace_freeze_refuses_template_changes_and_says_until_when() {
    let resp = image_update(&[], &[]).validate(&frozen_shop());
    assert_refused(
        &resp,
        403,
        "Deployment shop/web: pod template changes are frozen until 2026-12-27T00:00:00Z by the window 2026-12-24T00:00:00Z/2026-12-27T00:00:00Z (sluice.dev/freeze on Namespace shop)",
    );
    assert!(message(&resp).contains("sluice.dev/break-glass: \"<reason>\""));
}

#[test]
fn a_cluster_freeze_refuses_and_a_replica_change_passes_it() {
    let mut view = shop_view(&[]);
    view.policy = Some(BTreeMap::from([(
        "freeze".to_string(),
        "Fri 00:00-Sat 00:00 UTC".to_string(),
    )]));
    assert_refused(
        &image_update(&[], &[]).validate(&view),
        403,
        "(freeze in the sluice-policy ConfigMap)",
    );
    let scaled = with(web(&[], "web:1"), |v| v["spec"]["replicas"] = json!(9));
    assert!(
        Req::deployment("UPDATE", Some(scaled), Some(web(&[], "web:1")))
            .validate(&view)
            .allowed
    );
}

#[test]
fn outside_the_window_or_unmanaged_a_template_change_passes() {
    let req = image_update(&[], &[]);
    let after = humantime::parse_rfc3339("2026-12-28T00:00:00Z").unwrap();
    assert!(validate_at(&req.review(), &frozen_shop(), SLUICE_USER, after).allowed);
    let unmanaged = |img| {
        with(web(&[], img), |v| {
            v["metadata"]["labels"] = json!({"app": "web"})
        })
    };
    let req = Req::deployment("UPDATE", Some(unmanaged("web:2")), Some(unmanaged("web:1")));
    assert!(req.validate(&frozen_shop()).allowed);
}

#[test]
fn break_glass_lets_a_change_through_once_and_records_who_and_why() {
    let view = frozen_shop();
    let glass = [("sluice.dev/break-glass", "INC-42 payment outage")];
    let resp = image_update(&glass, &[]).validate(&view);
    assert!(resp.allowed, "{}", message(&resp));
    assert!(resp.warnings.unwrap()[0].contains("INC-42 payment outage"));
    let recorded = view.recorded();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (
            recorded[0].user.as_str(),
            recorded[0].reason.as_str(),
            recorded[0].deployment.as_str()
        ),
        (ALICE, "INC-42 payment outage", "web")
    );
    // The same reason left on the Deployment does not open the next change.
    assert_refused(
        &image_update(&glass, &glass).validate(&view),
        403,
        "was already used; give a new one",
    );
}

#[test]
fn a_dry_run_break_glass_is_answered_the_same_and_recorded_nowhere() {
    let view = frozen_shop();
    let mut req = image_update(&[("sluice.dev/break-glass", "drill")], &[]);
    req.dry_run = true;
    assert!(req.validate(&view).allowed);
    assert!(view.recorded().is_empty());
}

#[test]
fn cold_caches_or_an_unreadable_policy_refuse_a_managed_template_change_with_a_503() {
    let mut cold = frozen_shop();
    cold.synced = false;
    assert_refused(
        &image_update(&[], &[]).validate(&cold),
        503,
        "Deployment shop/web cannot be judged yet: Sluice's caches are still syncing",
    );
    let mut unknown_ns = StaticView {
        synced: true,
        ..StaticView::default()
    };
    unknown_ns.policy = None;
    assert_refused(
        &image_update(&[], &[]).validate(&unknown_ns),
        503,
        "namespace \"shop\" is not in them yet",
    );
    let mut broken = shop_view(&[]);
    broken.policy = Some(BTreeMap::from([(
        "freeze".to_string(),
        "whenever".to_string(),
    )]));
    assert_refused(
        &image_update(&[], &[]).validate(&broken),
        503,
        "the policy above it cannot be read (freeze: \"whenever\"",
    );
}

#[test]
fn sluices_own_updates_are_never_judged() {
    let mut req = image_update(&[], &[]);
    req.user = SLUICE_USER;
    assert!(req.validate(&frozen_shop()).allowed);
}
