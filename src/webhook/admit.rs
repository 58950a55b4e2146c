//! The admission decisions, pure: a [`Review`] and a [`ClusterView`] in, an
//! [`AdmissionResponse`] out. [`mutate`] pauses intercepted updates; [`validate`] runs the
//! failed-revision refusal here and the rest of DESIGN §6 in [`enforce`] (break-glass records
//! in [`audit`]).
//!
//! ```text
//! review ─► apps/v1 Deployment, main resource, UPDATE, not Sluice's own user? ──no──► allow
//!              │ yes                                          (mutate; validate also judges
//!              ▼                                               CREATE, Namespaces, sluice-policy,
//!           what a managed Deployment would need               Services and routes: enforce)
//!           (template changed? held by a rollout? un-paused? settings changed?)
//!              │ nothing ─────────────────────────────────────────────────────────► allow
//!              ▼ a pause / a refusal / a freeze to check
//!           managed? (labels of new and old object, else the Namespace from the cache)
//!              │ no ──► allow     │ cache cold or namespace unknown ──► refuse, retryable (503)
//!              ▼ yes
//!           patch (mutate) / deny or allow (validate)
//! ```
//!
//! Choices where DESIGN.md is silent:
//! - The cache is consulted only when the answer depends on it, so a cold cache refuses only
//!   updates that would be intercepted or refused if the Deployment were managed.
//! - A Deployment is managed when its new *or* its old object is (as an `objectSelector` matches),
//!   so an update that opts out and changes the template in one go is still intercepted.
//! - "Held by a rollout": the old object's status phase is not at rest, or a stable template
//!   is already recorded. A status annotation Sluice cannot read counts as held (the safe side)
//!   and the response carries a warning.
//! - While held, a `sluice.dev/stable-template` that the update drops (`kubectl replace`) is
//!   put back, as Argo Rollouts keeps its own annotations.
//! - Validation refuses a failed revision only when the update changes the template to it;
//!   `sluice.dev/retry` lets it through with any value but `false`.
//! - Templates are compared and hashed from their JSON text ([`TemplateChange`]); one that must
//!   be read but is nested beyond serde_json's 128 levels is refused with a 400 for a managed
//!   (or possibly managed) Deployment and let through otherwise.

use std::collections::BTreeMap;
use std::time::SystemTime;

use json_patch::{AddOperation, Patch, PatchOperation};
use kube::core::Status;
use kube::core::admission::{AdmissionResponse, Operation};
use serde_json::Value;

use super::review::{Object, Request, Review};
use super::revision::TemplateChange;
use super::view::ClusterView;
use crate::controller::status::{CheckResult, RolloutStatus};
use crate::policy::keys::{Control, OPT_IN_LABEL, STABLE_TEMPLATE_ANNOTATION, Setting};
use crate::policy::optin;

pub mod audit;
pub mod enforce;

use enforce::{Above, Resource, Verdict};

/// The service account Sluice's controller writes as; its requests pass untouched.
pub const SLUICE_USER: &str = "system:serviceaccount:sluice-system:sluice";

/// The message of a refusal because the caches are cold (DESIGN §7.4).
pub const CACHE_COLD: &str = "Sluice's caches are still syncing; retry in a few seconds";

/// The mutating webhook's answer: pause a managed Deployment whose pod template changed and
/// record its stable template; keep it paused while a rollout holds it.
pub fn mutate(review: &Review, view: &dyn ClusterView, sluice_user: &str) -> AdmissionResponse {
    let Some(req) = &review.request else {
        return no_request();
    };
    let Some((new, old)) = deployment_update(req, sluice_user) else {
        return allow(req);
    };
    let (ops, warnings) = match pause_ops(new, old) {
        Ok(found) => found,
        Err(e) => return unreadable_template(req, new, old, view, &e),
    };
    if ops.is_empty() {
        return with_warnings(allow(req), warnings);
    }
    match managed(req, new, old, view) {
        Managed::No => allow(req),
        Managed::Unknown(why) => refuse_retryable(req, &why),
        Managed::Yes => match allow(req).with_patch(Patch(ops)) {
            Ok(resp) => with_warnings(resp, warnings),
            // A patch of strings and booleans always serialises; refuse rather than let it by.
            Err(e) => refuse_retryable(req, &format!("building the patch failed: {e}")),
        },
    }
}

/// The validating webhook's answer, at the current time: see [`validate_at`].
pub fn validate(review: &Review, view: &dyn ClusterView, sluice_user: &str) -> AdmissionResponse {
    validate_at(review, view, sluice_user, SystemTime::now())
}

/// The validating webhook's answer at `now` (DESIGN §6): generated objects and the held apex
/// selector are Sluice's; `sluice.dev/*` settings on Deployments, Namespaces and the
/// `sluice-policy` ConfigMap must be valid; a managed Deployment is not un-paused by hand, does
/// not re-apply a failed revision without `sluice.dev/retry`, and does not change its template
/// in a freeze window without `sluice.dev/break-glass` ([`enforce`]).
pub fn validate_at(
    review: &Review,
    view: &dyn ClusterView,
    sluice_user: &str,
    now: SystemTime,
) -> AdmissionResponse {
    let Some(req) = &review.request else {
        return no_request();
    };
    if req.user_info.username == sluice_user {
        return allow(req);
    }
    let Some(resource) = Resource::of(req) else {
        return allow(req);
    };
    let (new, old) = (req.object.as_ref(), req.old_object.as_ref());
    let generated = enforce::generated(req, old);
    if generated != Verdict::Allow {
        return answer(req, view, generated);
    }
    let verdict = match resource {
        Resource::Route => Verdict::Allow,
        Resource::Service => enforce::apex(req, new, old),
        Resource::Namespace => match enforce::namespace_settings(req, new, old) {
            Verdict::Allow => {
                new.map_or(Verdict::Allow, |new| annotated_router(req, new, old, view))
            }
            refused => refused,
        },
        Resource::ConfigMap => {
            let sluice_ns = enforce::sluice_namespace(sluice_user);
            match enforce::policy_settings(req, new, old, sluice_ns) {
                Verdict::Allow if enforce::is_policy(req, sluice_ns) => {
                    new.map_or(Verdict::Allow, |new| {
                        let old = old.map(|o| &o.data);
                        router(req, Setting::Router.as_str(), &new.data, old, view)
                    })
                }
                verdict => verdict,
            }
        }
        Resource::Deployment => match (req.operation.clone(), new, old) {
            (Operation::Create, Some(new), _) => validate_deployment_create(req, new, view),
            (Operation::Update, Some(new), Some(old)) => {
                return validate_deployment_update(req, new, old, view, now);
            }
            _ => Verdict::Allow,
        },
    };
    answer(req, view, verdict)
}

/// A new Deployment's settings, alone and, when it is managed, under its Namespace and the
/// cluster policy.
fn validate_deployment_create(req: &Request, new: &Object, view: &dyn ClusterView) -> Verdict {
    let alone = enforce::deployment_settings(req, new, None);
    if alone != Verdict::Allow || !enforce::settings_changed(new, None) {
        return alone;
    }
    match managed(req, new, new, view) {
        Managed::No => Verdict::Allow,
        Managed::Unknown(why) => Verdict::Retry(why),
        Managed::Yes => match Above::read(view, req.namespace.as_deref().unwrap_or_default()) {
            Ok(above) => match enforce::resolved_settings(req, new, &above) {
                Verdict::Allow => annotated_router(req, new, None, view),
                refused => refused,
            },
            Err(why) => Verdict::Retry(why),
        },
    }
}

/// `sluice.dev/router` on a managed Deployment or a Namespace, when set or changed, against the
/// route APIs served.
fn annotated_router(
    req: &Request,
    new: &Object,
    old: Option<&Object>,
    view: &dyn ClusterView,
) -> Verdict {
    let old = old.map(|o| &o.annotations);
    router(
        req,
        &Setting::Router.annotation(),
        &new.annotations,
        old,
        view,
    )
}

/// Router setting `key` in `new` (annotations, or the policy ConfigMap's data) against the route
/// APIs the view's cached discovery serves; the discovery is read only when the value changed.
fn router(
    req: &Request,
    key: &str,
    new: &std::collections::BTreeMap<String, String>,
    old: Option<&std::collections::BTreeMap<String, String>>,
    view: &dyn ClusterView,
) -> Verdict {
    enforce::router_served(req, key, new, old, || view.route_discovery())
}

/// Every check of a Deployment update, cheapest first; the caches are read only when a
/// managed Deployment's answer depends on them.
fn validate_deployment_update(
    req: &Request,
    new: &Object,
    old: &Object,
    view: &dyn ClusterView,
    now: SystemTime,
) -> AdmissionResponse {
    let alone = enforce::deployment_settings(req, new, Some(old));
    if alone != Verdict::Allow {
        return answer(req, view, alone);
    }
    let failed = match failed_revision_refusal(req, new, old) {
        Ok(refusal) => refusal,
        Err(e) => return unreadable_template(req, new, old, view, &e),
    };
    let unpause = enforce::unpause(req, new, old);
    let settings_changed = enforce::settings_changed(new, Some(old));
    // Byte-equal templates are unchanged; others are parsed only for a managed Deployment.
    let text_differs =
        old.template.as_ref().map(|t| t.as_str()) != new.template.as_ref().map(|t| t.as_str());
    if failed.is_none() && unpause == Verdict::Allow && !text_differs && !settings_changed {
        return allow(req);
    }
    match managed(req, new, old, view) {
        Managed::No => return allow(req),
        Managed::Unknown(why) => return refuse_retryable(req, &why),
        Managed::Yes => {}
    }
    let change = match TemplateChange::between(old.template.as_ref(), new.template.as_ref()) {
        Ok(change) => change.changed(),
        Err(e) => return unreadable_template(req, new, old, view, &e),
    };
    if unpause != Verdict::Allow {
        return answer(req, view, unpause);
    }
    if let Some(refusal) = failed {
        return answer(req, view, Verdict::Forbid(refusal));
    }
    let above = match Above::read(view, req.namespace.as_deref().unwrap_or_default()) {
        Ok(above) => above,
        Err(why) => return refuse_retryable(req, &why),
    };
    if settings_changed {
        let resolved = enforce::resolved_settings(req, new, &above);
        if resolved != Verdict::Allow {
            return answer(req, view, resolved);
        }
        let router = annotated_router(req, new, Some(old), view);
        if router != Verdict::Allow {
            return answer(req, view, router);
        }
    }
    if !change {
        return allow(req);
    }
    answer(req, view, enforce::freeze(req, new, old, &above, now))
}

/// The response for a verdict. A break-glass is logged here with its reason and user, and
/// handed to the view to become an Event (never for a dry run).
fn answer(req: &Request, view: &dyn ClusterView, verdict: Verdict) -> AdmissionResponse {
    match verdict {
        Verdict::Allow => allow(req),
        Verdict::Forbid(message) => {
            let mut resp = allow(req).deny(message);
            resp.result.code = 403;
            resp.result.reason = "Forbidden".into();
            resp
        }
        Verdict::Retry(why) => refuse_retryable(req, &why),
        Verdict::BreakGlass(record) => {
            tracing::warn!(
                deployment = %req.object_ref(),
                user = %record.user,
                reason = %record.reason,
                window = %record.window,
                dry_run = req.dry_run == Some(true),
                "break-glass: a pod template change passes a freeze window"
            );
            let warning = format!(
                "the freeze window {} was bypassed with {}: {:?}; this is recorded",
                record.window,
                Control::BreakGlass.annotation(),
                record.reason
            );
            if req.dry_run != Some(true) {
                view.record_break_glass(record);
            }
            with_warnings(allow(req), vec![warning])
        }
    }
}

/// The new and old Deployment of an update that Sluice judges; `None` lets the request pass.
fn deployment_update<'a>(req: &'a Request, sluice_user: &str) -> Option<(&'a Object, &'a Object)> {
    if !req.is_deployment() || req.operation != Operation::Update {
        return None;
    }
    if req.user_info.username == sluice_user {
        return None;
    }
    Some((req.object.as_ref()?, req.old_object.as_ref()?))
}

/// The JSON patch a managed Deployment needs, and warnings for the user; an error when a
/// changed template cannot be read.
fn pause_ops(
    new: &Object,
    old: &Object,
) -> Result<(Vec<PatchOperation>, Vec<String>), serde_json::Error> {
    let (held, warning) = enforce::held(old);
    let warnings = Vec::from_iter(warning);
    // Without a rollout holding it, the stable version is the old template.
    let recorded = if held {
        new.annotations
            .get(STABLE_TEMPLATE_ANNOTATION)
            .or_else(|| old.annotations.get(STABLE_TEMPLATE_ANNOTATION))
    } else {
        None
    };
    let change = TemplateChange::between(old.template.as_ref(), new.template.as_ref())?;

    let mut ops = Vec::new();
    if !(change.changed() || held) {
        return Ok((ops, warnings));
    }
    // An explicit `paused: false` on a held Deployment is left for validation to refuse.
    if new.paused != Some(true) && !enforce::unpauses_held(new, old) {
        ops.push(add("/spec/paused", Value::Bool(true)));
    }
    let stable = match (recorded, change) {
        (Some(s), _) => Some(s.clone()),
        (None, TemplateChange::Changed { old_canonical }) => Some(old_canonical),
        (None, TemplateChange::Unchanged) => None,
    };
    if let Some(stable) = stable
        && new.annotations.get(STABLE_TEMPLATE_ANNOTATION) != Some(&stable)
    {
        if new.has_annotations {
            let path = format!(
                "/metadata/annotations/{}",
                pointer_escape(STABLE_TEMPLATE_ANNOTATION)
            );
            ops.push(add(&path, Value::String(stable)));
        } else {
            let map = serde_json::Map::from_iter([(
                STABLE_TEMPLATE_ANNOTATION.to_string(),
                Value::String(stable),
            )]);
            ops.push(add("/metadata/annotations", Value::Object(map)));
        }
    }
    Ok((ops, warnings))
}

/// The denial message when the update re-applies the failed revision without `retry`; an
/// error when the changed template cannot be read.
fn failed_revision_refusal(
    req: &Request,
    new: &Object,
    old: &Object,
) -> Result<Option<String>, serde_json::Error> {
    let Ok(Some(status)) = RolloutStatus::from_annotations(Some(&old.annotations)) else {
        return Ok(None);
    };
    let (Some(failed), Some(template)) = (status.failed_revision.as_deref(), &new.template) else {
        return Ok(None);
    };
    let change = TemplateChange::between(old.template.as_ref(), Some(template))?;
    if !change.changed() || template.revision()? != failed {
        return Ok(None);
    }
    let retry = Control::Retry.annotation();
    if new.annotations.get(&retry).is_some_and(|v| v != "false") {
        return Ok(None);
    }
    let checks: Vec<String> = status
        .last_verdicts
        .iter()
        .filter(|v| v.result == CheckResult::Fail)
        .map(|v| format!("{}: {}", v.name, v.detail))
        .collect();
    let why = match (checks.is_empty(), status.message.is_empty()) {
        (false, _) => format!("failed checks: {}", checks.join("; ")),
        (true, false) => status.message.clone(),
        (true, true) => "its analysis failed".to_string(),
    };
    let ns = req.namespace.as_deref().unwrap_or("default");
    Ok(Some(format!(
        "Deployment {}: revision {failed} was rolled back ({why}); to deploy it again anyway, run `kubectl -n {ns} annotate deploy/{} {retry}=true` and re-apply",
        req.object_ref(),
        req.name,
    )))
}

enum Managed {
    Yes,
    No,
    /// Cannot tell from the caches; the reason, for the user.
    Unknown(String),
}

/// DESIGN §2 ([`optin::managed`], the rule the controller uses), on the new or the old object.
/// The namespace cache is consulted only when the Deployment's own labels leave the answer
/// open, so a cold cache refuses only what it has to.
fn managed(req: &Request, new: &Object, old: &Object, view: &dyn ClusterView) -> Managed {
    let with_ns =
        |o: &Object, ns: &BTreeMap<String, String>| optin::managed(&o.labels, ns).is_managed();
    let no_ns = BTreeMap::new();
    let ns_opted_in = BTreeMap::from([(OPT_IN_LABEL.to_string(), "enabled".to_string())]);
    if with_ns(new, &no_ns) || with_ns(old, &no_ns) {
        return Managed::Yes;
    }
    if !with_ns(new, &ns_opted_in) && !with_ns(old, &ns_opted_in) {
        return Managed::No;
    }
    if !view.synced() {
        return Managed::Unknown(CACHE_COLD.to_string());
    }
    let ns = req.namespace.as_deref().unwrap_or_default();
    let Some(labels) = view.namespace_labels(ns) else {
        return Managed::Unknown(format!(
            "{CACHE_COLD} (namespace {ns:?} is not in them yet)"
        ));
    };
    if with_ns(new, &labels) || with_ns(old, &labels) {
        Managed::Yes
    } else {
        Managed::No
    }
}

fn add(path: &str, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: path
            .parse()
            .expect("Sluice's patch paths are valid JSON pointers"),
        value,
    })
}

/// RFC 6901: `~` becomes `~0`, `/` becomes `~1`.
fn pointer_escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// An allowing response that echoes the request's uid.
fn allow(req: &Request) -> AdmissionResponse {
    // kube builds responses from its own request type only; start from `invalid` (which sets
    // the v1 type meta) and make it an allowing answer for this uid.
    let mut resp = AdmissionResponse::invalid("");
    resp.uid = req.uid.clone();
    resp.allowed = true;
    resp.result = Status::default();
    resp
}

fn with_warnings(mut resp: AdmissionResponse, warnings: Vec<String>) -> AdmissionResponse {
    if !warnings.is_empty() {
        resp.warnings = Some(warnings);
    }
    resp
}

fn refuse_retryable(req: &Request, why: &str) -> AdmissionResponse {
    let mut resp = allow(req).deny(format!(
        "{} {} cannot be judged yet: {why}",
        req.kind.kind,
        req.object_ref()
    ));
    resp.result.code = 503;
    resp.result.reason = "ServiceUnavailable".into();
    resp
}

/// A refusal because a changed `spec.template` cannot be read (nested beyond serde_json's
/// limit), for a Deployment that is or may be managed; others pass.
fn unreadable_template(
    req: &Request,
    new: &Object,
    old: &Object,
    view: &dyn ClusterView,
    e: &serde_json::Error,
) -> AdmissionResponse {
    if let Managed::No = managed(req, new, old, view) {
        return allow(req);
    }
    let mut resp = allow(req).deny(format!(
        "Deployment {}: spec.template cannot be read ({e}); send a template that is valid JSON nested at most 128 deep",
        req.object_ref()
    ));
    resp.result.code = 400;
    resp.result.reason = "BadRequest".into();
    resp
}

/// The answer to a review without a `request`: refused as a bad request (400). kube's
/// `invalid` leaves the code at 0, which no caller can tell from success (found by the
/// `admission` fuzz target).
fn no_request() -> AdmissionResponse {
    let mut resp = AdmissionResponse::invalid(
        "the AdmissionReview has no `request`; kube-apiserver always sends one, so check what is calling this webhook",
    );
    resp.result.code = 400;
    resp.result.reason = "BadRequest".into();
    resp
}

#[cfg(test)]
mod tests;
