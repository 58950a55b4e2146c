//! The AdmissionReview sent to a webhook and the reading of its answer, field for field as
//! kube-apiserver v1.36 builds and checks them; and the `Status` errors that follow
//! (denial, failed call, dry run refused), worded as kube-apiserver words them.
//!
//! Differences from kube-apiserver:
//! - `userInfo.extra` is never sent (the sandbox's identities have none).
//! - A response body that is not JSON, or an AdmissionReview of the wrong kind, is reported
//!   with close-to-Go wording (`couldn't get version/kind; json parse error: ...`), not the
//!   exact decoder text; a JSONPatch that does not apply reports json-patch's message, not
//!   Go's `evanphx/json-patch` one.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::{AdmissionAttributes, Operation, UserInfo};
use crate::sandbox::apiserver::status::ApiError;

/// `admission.k8s.io/v1` or `v1beta1`: the first of the webhook's `admissionReviewVersions`
/// that kube-apiserver speaks.
pub fn review_version(accepted: &[String]) -> Option<&'static str> {
    accepted.iter().find_map(|v| match v.as_str() {
        "v1" => Some("admission.k8s.io/v1"),
        "v1beta1" => Some("admission.k8s.io/v1beta1"),
        _ => None,
    })
}

fn user_info(user: &UserInfo) -> Value {
    let mut u = Map::new();
    u.insert("username".into(), json!(user.username));
    if !user.uid.is_empty() {
        u.insert("uid".into(), json!(user.uid));
    }
    if !user.groups.is_empty() {
        u.insert("groups".into(), json!(user.groups));
    }
    Value::Object(u)
}

/// The `options` of the review: always `CreateOptions`, `UpdateOptions` or `DeleteOptions`
/// (a PATCH reaches admission as an UPDATE or a CREATE, so its `PatchOptions` are converted and
/// lose `force`), with `apiVersion: meta.k8s.io/v1`.
pub fn review_options(operation: Operation, sent: Option<&Value>) -> Value {
    let kind = match operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
        Operation::Connect => return sent.cloned().unwrap_or(Value::Null),
    };
    let mut out = Map::new();
    out.insert("kind".into(), json!(kind));
    out.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
    if let Some(Value::Object(sent)) = sent {
        for (k, v) in sent {
            let keep = match operation {
                Operation::Delete => k != "kind" && k != "apiVersion",
                _ => matches!(k.as_str(), "dryRun" | "fieldManager" | "fieldValidation"),
            };
            if keep && !v.is_null() {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Builds the AdmissionReview kube-apiserver would send for `attrs`, with `object` as mutated
/// so far and `uid` as the request's identity.
pub fn build_review(
    api_version: &str,
    uid: &str,
    attrs: &AdmissionAttributes,
    object: Option<&Value>,
) -> Value {
    let (kg, kv, kk) = match &attrs.object_kind {
        Some((g, v, k)) => (g.as_str(), v.as_str(), k.as_str()),
        None => (attrs.kind.group, attrs.kind.version, attrs.kind.kind),
    };
    let kind = json!({ "group": kg, "version": kv, "kind": kk });
    let resource = json!({
        "group": attrs.kind.group,
        "version": attrs.kind.version,
        "resource": attrs.kind.plural,
    });
    let sub = attrs.sub_resource.as_deref().filter(|s| !s.is_empty());
    let mut r = Map::new();
    r.insert("uid".into(), json!(uid));
    r.insert("kind".into(), kind.clone());
    r.insert("resource".into(), resource.clone());
    if let Some(sub) = sub {
        r.insert("subResource".into(), json!(sub));
    }
    r.insert("requestKind".into(), kind);
    r.insert("requestResource".into(), resource);
    if let Some(sub) = sub {
        r.insert("requestSubResource".into(), json!(sub));
    }
    if !attrs.name.is_empty() {
        r.insert("name".into(), json!(attrs.name));
    }
    if let Some(ns) = attrs.namespace.as_deref().filter(|n| !n.is_empty()) {
        r.insert("namespace".into(), json!(ns));
    }
    r.insert("operation".into(), json!(attrs.operation.as_str()));
    r.insert("userInfo".into(), user_info(&attrs.user));
    r.insert("object".into(), object.cloned().unwrap_or(Value::Null));
    r.insert(
        "oldObject".into(),
        attrs.old_object.clone().unwrap_or(Value::Null),
    );
    r.insert("dryRun".into(), json!(attrs.dry_run));
    r.insert(
        "options".into(),
        review_options(attrs.operation, attrs.options.as_ref()),
    );
    json!({ "kind": "AdmissionReview", "apiVersion": api_version, "request": r })
}

/// Why a call to a webhook failed; kube-apiserver's `ErrCallingWebhook` reasons. With
/// `failurePolicy: Fail` these become a 500; with `Ignore` the webhook is skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("Webhook SideEffects is nil")]
    SideEffectsNil,
    #[error(
        "could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)"
    )]
    NoReviewVersion,
    #[error("could not get REST client: {0}")]
    Client(String),
    /// Transport failure or an unusable HTTP answer: `Post "URL": context deadline exceeded`.
    #[error("failed to call webhook: {0}")]
    Transport(String),
    #[error("received invalid webhook response: {0}")]
    InvalidResponse(String),
    #[error("received undecodable patch in webhook response: {0}")]
    UndecodablePatch(String),
    #[error("unsupported patch type {0:?}")]
    UnsupportedPatchType(String),
}

/// What a webhook's call came to when it did not simply allow the request.
#[derive(Clone, Debug, PartialEq)]
pub enum HookFailure {
    /// The call failed; `failurePolicy` decides.
    Calling(CallError),
    /// A final answer (denial, dry run refused, patch that does not apply), whatever the
    /// failure policy.
    Rejected(ApiError),
}

/// The 500 of a failed call under `failurePolicy: Fail`:
/// `Internal error occurred: failed calling webhook "NAME": REASON`.
pub fn call_failed(webhook: &str, err: &CallError) -> ApiError {
    let msg = format!("failed calling webhook {webhook:?}: {err}");
    ApiError::internal(msg.clone()).with_details(json!({ "causes": [{ "message": msg }] }))
}

/// kube-apiserver's refusal of a dry-run request for a webhook with side effects.
pub fn dry_run_unsupported(webhook: &str) -> ApiError {
    ApiError::bad_request(format!(
        "admission webhook {webhook:?} does not support dry run"
    ))
}

/// The error of a webhook's `allowed: false`: the webhook's code (403 when unset or below
/// 400), its reason (may be empty), `admission webhook "NAME" denied the request: MESSAGE`.
pub fn denial(webhook: &str, status: Option<&Value>) -> ApiError {
    let empty = Value::Null;
    let status = status.unwrap_or(&empty);
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .filter(|c| (400..=599).contains(c))
        .unwrap_or(403) as u16;
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let denied = format!("admission webhook {webhook:?} denied the request");
    let message = if !message.is_empty() {
        format!("{denied}: {message}")
    } else if !reason.is_empty() {
        format!("{denied}: {reason}")
    } else {
        format!("{denied} without explanation")
    };
    let mut err = ApiError::new(code, reason, message);
    if let Some(details) = status.get("details").filter(|d| d.is_object()) {
        err = err.with_details(details.clone());
    }
    err
}

/// A webhook's answer, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// `response.status`, if any.
    pub status: Option<Value>,
    /// The decoded JSONPatch (mutating webhooks only); `None` when there is none.
    pub patch: Option<json_patch::Patch>,
    /// `response.patchType` when a patch came with it.
    pub patch_type: Option<String>,
    pub warnings: Vec<String>,
}

/// The message Go's REST client gives a non-2xx answer that is not a `Status`.
pub fn unexpected_status(code: u16, text_body: Option<&str>) -> String {
    let server_message = text_body.map(str::trim).unwrap_or("unknown");
    match code {
        409 => "the server reported a conflict".into(),
        404 => "the server could not find the requested resource".into(),
        400 => "the server rejected our request for an unknown reason".into(),
        401 => "the server has asked for the client to provide credentials".into(),
        403 | 415 => server_message.into(),
        405 => "the server does not allow this method on the requested resource".into(),
        422 => "the server rejected our request due to an error in our request".into(),
        503 => "the server is currently unable to handle the request".into(),
        504 => "the server was unable to return a response in the time allotted, but may still be processing the request".into(),
        429 => "the server has received too many requests and has asked us to try again later".into(),
        c if c >= 500 => format!(
            "an error on the server ({server_message:?}) has prevented the request from succeeding"
        ),
        c => format!("the server responded with the status code {c} but did not return more information"),
    }
}

fn decode_patch_bytes(patch: &Value) -> Result<Vec<u8>, CallError> {
    match patch {
        // kube-apiserver's encoding of `[]byte`.
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| {
                let at = match e {
                    base64::DecodeError::InvalidByte(at, _)
                    | base64::DecodeError::InvalidLastSymbol(at, _) => at,
                    _ => s.len(),
                };
                CallError::Transport(format!(
                    "couldn't decode response.patch: illegal base64 data at input byte {at}"
                ))
            }),
        // kube-core's encoding (kube-rs#1781); Go's decoder accepts it too.
        Value::Array(items) => items
            .iter()
            .map(|n| n.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| {
                CallError::Transport(
                    "couldn't decode response.patch: json: cannot unmarshal number into Go struct field AdmissionResponse.response.patch of type uint8".into(),
                )
            }),
        _ => Err(CallError::Transport(
            "couldn't decode response.patch: expected a base64 string or an array of bytes".into(),
        )),
    }
}

/// Reads a webhook's HTTP body as kube-apiserver's `VerifyAdmissionResponse` does: a JSON
/// AdmissionReview of the version sent, with the same `uid`; patches only from mutating
/// webhooks, and always with their `patchType`.
pub fn read_response(
    api_version: &str,
    uid: &str,
    mutating: bool,
    body: &[u8],
) -> Result<Verdict, CallError> {
    let review: Value = serde_json::from_slice(body).map_err(|e| {
        CallError::Transport(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    let Some(response) = review.get("response").filter(|r| !r.is_null()) else {
        return Err(CallError::InvalidResponse(
            "webhook response was absent".into(),
        ));
    };
    let got_uid = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if got_uid != uid {
        return Err(CallError::InvalidResponse(format!(
            "expected response.uid={uid:?}, got {got_uid:?}"
        )));
    }
    let got_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let got_kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
    if got_version != api_version || got_kind != "AdmissionReview" {
        let gv = |v: &str| {
            if v.contains('/') {
                v.to_string()
            } else {
                format!("/{v}")
            }
        };
        return Err(CallError::InvalidResponse(format!(
            "expected webhook response of {}, Kind=AdmissionReview, got {}, Kind={got_kind}",
            gv(api_version),
            gv(got_version)
        )));
    }
    let patch = response.get("patch").filter(|p| !p.is_null());
    let patch_bytes = match patch {
        Some(p) => decode_patch_bytes(p)?,
        None => Vec::new(),
    };
    let patch_type = response.get("patchType").filter(|p| !p.is_null());
    let patch_type = match patch_type {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(CallError::Transport(format!(
                "couldn't decode response.patchType: {other} is not a string"
            )));
        }
    };
    if mutating {
        if !patch_bytes.is_empty() && patch_type.is_none() {
            return Err(CallError::InvalidResponse(
                "webhook returned response.patch but not response.patchType".into(),
            ));
        }
        if patch_bytes.is_empty() && patch_type.is_some() {
            return Err(CallError::InvalidResponse(
                "webhook returned response.patchType but not response.patch".into(),
            ));
        }
        if patch_type.as_deref() == Some("") {
            return Err(CallError::InvalidResponse(
                "webhook returned invalid response.patchType of \"\"".into(),
            ));
        }
    } else {
        if !patch_bytes.is_empty() {
            return Err(CallError::InvalidResponse(
                "validating webhook may not return response.patch".into(),
            ));
        }
        if patch_type.is_some() {
            return Err(CallError::InvalidResponse(
                "validating webhook may not return response.patchType".into(),
            ));
        }
    }
    let allowed = response
        .get("allowed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let warnings = response
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let status = response.get("status").filter(|s| s.is_object()).cloned();
    // Only an allowed answer's patch is ever applied; decode it the way kube-apiserver does,
    // after the allowed check.
    let patch = if allowed && !patch_bytes.is_empty() {
        Some(
            serde_json::from_slice::<json_patch::Patch>(&patch_bytes)
                .map_err(|e| CallError::UndecodablePatch(e.to_string()))?,
        )
    } else {
        None
    };
    Ok(Verdict {
        allowed,
        status,
        patch,
        patch_type,
        warnings,
    })
}

/// Applies a mutating webhook's verdict to `object`. Returns whether the object changed.
pub fn apply_patch(
    webhook: &str,
    verdict: &Verdict,
    object: &mut Option<Value>,
) -> Result<bool, HookFailure> {
    let Some(patch) = verdict.patch.as_ref().filter(|p| !p.0.is_empty()) else {
        return Ok(false);
    };
    let Some(doc) = object.as_mut() else {
        return Err(HookFailure::Rejected(ApiError::internal(format!(
            "admission webhook {webhook:?} attempted to modify the object, which is not supported for this operation"
        ))));
    };
    let patch_type = verdict.patch_type.as_deref().unwrap_or("");
    if patch_type != "JSONPatch" {
        return Err(HookFailure::Calling(CallError::UnsupportedPatchType(
            patch_type.to_string(),
        )));
    }
    let before = doc.clone();
    json_patch::patch(doc, &patch.0)
        .map_err(|e| HookFailure::Rejected(ApiError::internal(e.to_string())))?;
    Ok(*doc != before)
}

/// `?timeout=Ns` as Go's `time.Duration` prints whole seconds.
pub fn timeout_param(seconds: i64) -> String {
    let s = seconds.max(0);
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::apiserver::resources::{builtin_kinds, lookup};
    use std::collections::BTreeMap;

    /// The captures from a real kube-apiserver: `tests/fixtures/admission/` if the repository
    /// carries them, else the shared workspace beside the checkout.
    fn fixture(name: &str) -> Option<Value> {
        let root = env!("CARGO_MANIFEST_DIR");
        [
            format!("{root}/tests/fixtures/admission/{name}.json"),
            format!("{root}/../shared/fixtures/admission/{name}.json"),
            format!("{root}/../../shared/fixtures/admission/{name}.json"),
        ]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| serde_json::from_str(&s).unwrap())
    }

    fn attrs_from(request: &Value) -> AdmissionAttributes {
        let kinds = builtin_kinds();
        let r = &request["resource"];
        let kind = lookup(
            &kinds,
            r["group"].as_str().unwrap(),
            r["version"].as_str().unwrap(),
            r["resource"].as_str().unwrap(),
        )
        .unwrap()
        .clone();
        let k = &request["kind"];
        let object_kind = (k["kind"].as_str() != Some(kind.kind)).then(|| {
            (
                k["group"].as_str().unwrap().to_string(),
                k["version"].as_str().unwrap().to_string(),
                k["kind"].as_str().unwrap().to_string(),
            )
        });
        AdmissionAttributes {
            kind,
            sub_resource: request["subResource"].as_str().map(str::to_string),
            object_kind,
            operation: match request["operation"].as_str().unwrap() {
                "CREATE" => Operation::Create,
                "UPDATE" => Operation::Update,
                "DELETE" => Operation::Delete,
                _ => Operation::Connect,
            },
            name: request["name"].as_str().unwrap_or("").into(),
            namespace: request["namespace"].as_str().map(str::to_string),
            user: serde_json::from_value(request["userInfo"].clone()).unwrap(),
            dry_run: request["dryRun"].as_bool().unwrap(),
            // What a client sends: PATCH/PUT options without kind, and a field kube drops.
            options: {
                let mut o = request["options"].clone();
                let m = o.as_object_mut().unwrap();
                m.remove("kind");
                m.remove("apiVersion");
                m.insert("force".into(), json!(true));
                Some(o)
            },
            object: Some(request["object"].clone()).filter(|o| !o.is_null()),
            old_object: Some(request["oldObject"].clone()).filter(|o| !o.is_null()),
            namespace_labels: BTreeMap::new(),
        }
    }

    #[test]
    fn builds_the_same_review_as_kube_apiserver_for_every_capture() {
        let names = [
            "deployment-create",
            "deployment-update-image",
            "deployment-update-image-dryrun",
            "deployment-scale-subresource",
            "deployment-rollout-pause",
            "deployment-rollout-resume",
        ];
        let mut seen = 0;
        for name in names {
            let Some(captured) = fixture(name) else {
                continue;
            };
            seen += 1;
            let request = &captured["request"];
            let uid = request["uid"].as_str().unwrap();
            let attrs = attrs_from(request);
            let built = build_review("admission.k8s.io/v1", uid, &attrs, attrs.object.as_ref());
            // Same keys in the review and the request, and the same values field for field.
            assert_eq!(built["kind"], captured["kind"], "{name}");
            assert_eq!(built["apiVersion"], captured["apiVersion"], "{name}");
            let want: Vec<_> = request.as_object().unwrap().keys().collect();
            let got: Vec<_> = built["request"].as_object().unwrap().keys().collect();
            let (mut want_sorted, mut got_sorted) = (want.clone(), got.clone());
            want_sorted.sort();
            got_sorted.sort();
            assert_eq!(got_sorted, want_sorted, "{name}: field set");
            assert_eq!(&built["request"], request, "{name}: values");
        }
        assert!(seen > 0, "no admission capture found");
    }

    #[test]
    fn the_scale_subresource_review_carries_the_scale_kind_and_deployment_resource() {
        let attrs = AdmissionAttributes {
            sub_resource: Some("scale".into()),
            object_kind: Some(("autoscaling".into(), "v1".into(), "Scale".into())),
            object: Some(json!({ "kind": "Scale" })),
            ..super::super::mk_attrs("apps", "deployments", Operation::Update)
        };
        let r = &build_review("admission.k8s.io/v1", "u", &attrs, attrs.object.as_ref())["request"];
        assert_eq!(
            r["kind"],
            json!({ "group": "autoscaling", "version": "v1", "kind": "Scale" })
        );
        assert_eq!(r["requestKind"], r["kind"]);
        assert_eq!(
            r["resource"],
            json!({ "group": "apps", "version": "v1", "resource": "deployments" })
        );
        assert_eq!(r["subResource"], "scale");
        assert_eq!(r["requestSubResource"], "scale");
        assert_eq!(r["oldObject"], Value::Null);
        assert_eq!(
            r["options"],
            json!({ "kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1" })
        );
        assert_eq!(r["userInfo"], json!({ "username": "admin" }));
    }

    #[test]
    fn delete_options_are_kept_whole() {
        let o = review_options(
            Operation::Delete,
            Some(&json!({ "propagationPolicy": "Foreground", "dryRun": ["All"] })),
        );
        assert_eq!(
            o,
            json!({ "kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1",
                    "propagationPolicy": "Foreground", "dryRun": ["All"] })
        );
    }

    #[test]
    fn picks_the_first_review_version_kube_apiserver_speaks() {
        let v = |s: &[&str]| review_version(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            v(&["v2", "v1beta1", "v1"]),
            Some("admission.k8s.io/v1beta1")
        );
        assert_eq!(v(&["v1"]), Some("admission.k8s.io/v1"));
        assert_eq!(v(&["v2"]), None);
    }

    fn answer(response: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        }))
        .unwrap()
    }

    /// Reads `response`, wrapped in a v1 AdmissionReview, as the answer to request `uid`.
    fn read_v1(uid: &str, mutating: bool, response: Value) -> Result<Verdict, CallError> {
        read_response("admission.k8s.io/v1", uid, mutating, &answer(response))
    }

    const ADD_LABEL: &str = r#"[{"op":"add","path":"/metadata/labels/x","value":"y"}]"#;

    #[test]
    fn accepts_a_patch_as_base64_or_as_an_array_of_numbers() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(ADD_LABEL);
        let nums: Vec<u8> = ADD_LABEL.as_bytes().to_vec();
        for patch in [json!(b64), json!(nums)] {
            let v = read_v1(
                "u1",
                true,
                json!({ "uid": "u1", "allowed": true, "patchType": "JSONPatch", "patch": patch }),
            )
            .unwrap();
            let mut obj = Some(json!({ "metadata": { "labels": {} } }));
            assert_eq!(apply_patch("h", &v, &mut obj), Ok(true));
            assert_eq!(obj.unwrap()["metadata"]["labels"]["x"], "y");
        }
    }

    #[test]
    fn refuses_an_answer_for_another_request() {
        let err = read_v1("u1", false, json!({ "uid": "u2", "allowed": true })).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"received invalid webhook response: expected response.uid="u1", got "u2""#
        );
    }

    #[test]
    fn refuses_an_answer_without_a_response() {
        let body = serde_json::to_vec(
            &json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview" }),
        )
        .unwrap();
        let err = read_response("admission.k8s.io/v1", "u1", true, &body).unwrap_err();
        assert_eq!(
            err,
            CallError::InvalidResponse("webhook response was absent".into())
        );
    }

    #[test]
    fn refuses_an_answer_of_another_version() {
        let body = serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
            "response": { "uid": "u1", "allowed": true },
        }))
        .unwrap();
        let err = read_response("admission.k8s.io/v1", "u1", true, &body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "received invalid webhook response: expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, Kind=AdmissionReview"
        );
    }

    #[test]
    fn a_validating_webhook_may_not_patch() {
        let err = read_v1(
            "u1",
            false,
            json!({ "uid": "u1", "allowed": true, "patchType": "JSONPatch",
                            "patch": base64::engine::general_purpose::STANDARD.encode(ADD_LABEL) }),
        )
        .unwrap_err();
        assert_eq!(
            err,
            CallError::InvalidResponse("validating webhook may not return response.patch".into())
        );
    }

    #[test]
    fn a_patch_needs_its_patch_type_and_the_reverse() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(ADD_LABEL);
        let e = read_v1(
            "u",
            true,
            json!({ "uid": "u", "allowed": true, "patch": b64 }),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("webhook returned response.patch but not response.patchType")
        );
        let e = read_v1(
            "u",
            true,
            json!({ "uid": "u", "allowed": true, "patchType": "JSONPatch" }),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("webhook returned response.patchType but not response.patch")
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_a_failed_call() {
        let e = read_response("admission.k8s.io/v1", "u", true, b"<html>").unwrap_err();
        assert!(
            matches!(e, CallError::Transport(m) if m.starts_with("couldn't get version/kind; json parse error"))
        );
    }

    #[test]
    fn a_patch_that_is_not_a_json_patch_is_undecodable() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(r#"{"op":"add"}"#);
        let e = read_v1(
            "u",
            true,
            json!({ "uid": "u", "allowed": true, "patchType": "JSONPatch", "patch": b64 }),
        )
        .unwrap_err();
        assert!(matches!(e, CallError::UndecodablePatch(_)), "{e:?}");
    }

    #[test]
    fn a_patch_that_does_not_apply_is_an_internal_error() {
        let v = Verdict {
            allowed: true,
            patch: Some(serde_json::from_str(r#"[{"op":"remove","path":"/nope"}]"#).unwrap()),
            patch_type: Some("JSONPatch".into()),
            ..Default::default()
        };
        let mut obj = Some(json!({}));
        let Err(HookFailure::Rejected(e)) = apply_patch("h", &v, &mut obj) else {
            panic!("expected a rejection")
        };
        assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
        assert!(
            e.message.starts_with("Internal error occurred: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_patch_for_a_delete_is_refused() {
        let v = Verdict {
            allowed: true,
            patch: Some(serde_json::from_str(ADD_LABEL).unwrap()),
            patch_type: Some("JSONPatch".into()),
            ..Default::default()
        };
        let Err(HookFailure::Rejected(e)) = apply_patch("h.sluice.dev", &v, &mut None) else {
            panic!("expected a rejection")
        };
        assert_eq!(
            e.message,
            "Internal error occurred: admission webhook \"h.sluice.dev\" attempted to modify the object, which is not supported for this operation"
        );
    }

    #[test]
    fn a_denial_reads_like_the_captured_one() {
        let e = denial(
            "validate.sluice.dev",
            Some(
                &json!({ "code": 403, "message": "sluice.dev/step-weight: \"150\" is not a weight; use a whole number from 1 to 100" }),
            ),
        );
        let captured = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "admission webhook \"validate.sluice.dev\" denied the request: sluice.dev/step-weight: \"150\" is not a weight; use a whole number from 1 to 100",
            "code": 403
        });
        assert_eq!(e.to_status(), captured);
    }

    #[test]
    fn a_denial_without_message_falls_back_to_reason_then_to_without_explanation() {
        let e = denial("h", Some(&json!({ "reason": "NotReady", "code": 200 })));
        assert_eq!(
            e.message,
            "admission webhook \"h\" denied the request: NotReady"
        );
        assert_eq!((e.code, e.reason.as_str()), (403, "NotReady"));
        let e = denial("h", None);
        assert_eq!(
            e.message,
            "admission webhook \"h\" denied the request without explanation"
        );
        let e = denial("h", Some(&json!({ "code": 422, "message": "m" })));
        assert_eq!(e.code, 422);
    }

    #[test]
    fn a_failed_call_is_an_internal_error_naming_the_webhook() {
        let e = call_failed(
            "validate.sluice.dev",
            &CallError::Transport(
                "Post \"https://127.0.0.1:9557/slow?timeout=1s\": context deadline exceeded".into(),
            ),
        );
        assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
        assert_eq!(
            e.message,
            "Internal error occurred: failed calling webhook \"validate.sluice.dev\": failed to call webhook: Post \"https://127.0.0.1:9557/slow?timeout=1s\": context deadline exceeded"
        );
    }

    #[test]
    fn dry_run_refusal_is_a_bad_request() {
        let e = dry_run_unsupported("h.sluice.dev");
        assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
        assert_eq!(
            e.message,
            "admission webhook \"h.sluice.dev\" does not support dry run"
        );
    }

    #[test]
    fn timeouts_print_as_go_durations() {
        assert_eq!(timeout_param(1), "1s");
        assert_eq!(timeout_param(30), "30s");
        assert_eq!(timeout_param(90), "1m30s");
    }

    #[test]
    fn unexpected_statuses_are_worded_as_the_go_client_words_them() {
        assert_eq!(
            unexpected_status(500, Some("boom\n")),
            "an error on the server (\"boom\") has prevented the request from succeeding"
        );
        assert_eq!(
            unexpected_status(404, None),
            "the server could not find the requested resource"
        );
        assert_eq!(
            unexpected_status(302, None),
            "the server responded with the status code 302 but did not return more information"
        );
    }
}
