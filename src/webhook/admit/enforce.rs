//! Apply-time enforcement (DESIGN §6), pure: what the validating webhook refuses besides a
//! failed revision. Each check takes the review's objects (and, where it must, the
//! [`ClusterView`]) and returns a [`Verdict`]; [`super::validate`] turns it into the answer.
//!
//! ```text
//! generated object (managed-by: sluice + controlling Deployment)? ── UPDATE/DELETE ─► Forbid
//! apex Service while sluice.dev/apex-selector is kept: selector or annotation changed ─► Forbid
//! Deployment / Namespace / sluice-policy: sluice.dev settings changed ─► policy::settings ─► Forbid
//!                  router set to one whose route API is not served (routing::served) ─► Forbid
//! managed Deployment: spec.paused true ─► false while held ─► Forbid
//! managed Deployment: template changed in a freeze window ─┬─ new break-glass ─► BreakGlass
//!                                                          └─ otherwise ─────► Forbid
//!                    cache cold / policy unreadable ─────────────────────────► Retry (503)
//! ```
//!
//! Choices where DESIGN.md is silent:
//! - Settings are judged only when the update changes them (or on CREATE), so a replica change
//!   of an object carrying a value from before Sluice was installed is not blocked by it.
//! - A Deployment's settings are checked alone first (no cache needed); for a managed one they
//!   are then resolved with its Namespace and the cluster policy, and contradictions blamed on
//!   the Deployment's keys (an A/B `match` under a namespace-wide `smi` router) are refused.
//! - Generated: the label `app.kubernetes.io/managed-by: sluice` *and* a controlling owner
//!   reference to a Deployment, as Sluice writes them (`controller::objects`). Updates and
//!   deletions are refused to everyone but Sluice and Kubernetes' own controllers
//!   (`system:serviceaccount:kube-system:*`: garbage collection, the Deployment controller).
//! - The apex Service is held while it carries `sluice.dev/apex-selector` (Sluice sets it when a
//!   rollout starts and removes it when the rollout ends): its selector and that annotation
//!   are refused to change; its ports, labels and other annotations stay the user's.
//! - Un-pausing: only an explicit `spec.paused: false` is refused; an update that merely omits
//!   `paused` (kubectl replace) is paused again by the mutating webhook.
//! - Router: a `router` that a Deployment, Namespace or `sluice-policy` sets (or changes to)
//!   is refused when its route API is not served, judged from the cached discovery
//!   ([`ClusterView::route_discovery`]) with the same words as phase `Blocked`
//!   ([`crate::routing::served`]). A value already there is not judged again, so an API that
//!   goes away blocks the rollout (phase `Blocked`) rather than every later edit; an unknown
//!   discovery refuses nothing (the controller still blocks), and an unmanaged Deployment's
//!   value is not judged.
//! - Freeze: windows resolve like every setting (Namespace over cluster). `break-glass` must
//!   carry a non-empty reason that is new in this update, so a reason left on the Deployment
//!   does not open every later freeze.

use std::collections::BTreeMap;
use std::time::SystemTime;

use kube::core::admission::Operation;

use super::audit::BreakGlass;
use crate::controller::objects::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::controller::status::RolloutStatus;
use crate::policy::freeze::frozen_until;
use crate::policy::keys::{APEX_SELECTOR_ANNOTATION, Control, STABLE_TEMPLATE_ANNOTATION};
use crate::policy::settings::{self, Layers, Level, PolicyError, Source};
use crate::policy::values::RouterKind;
use crate::routing::{Discovery, served};
use crate::webhook::review::{Object, Request};
use crate::webhook::view::{ClusterView, POLICY_CONFIGMAP};

/// Users whose writes to generated objects are Kubernetes' own upkeep.
const KUBE_CONTROLLERS: &str = "system:serviceaccount:kube-system:";

/// What one check decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Allow,
    /// Refused for good (403), with the message for the user.
    Forbid(String),
    /// Refused until the caches can tell (503), with the reason.
    Retry(String),
    /// Let through a freeze by `sluice.dev/break-glass`; to be logged and recorded.
    BreakGlass(BreakGlass),
}

/// The resources the validating webhook judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Deployment,
    Namespace,
    ConfigMap,
    Service,
    /// A TrafficSplit, an HTTPRoute, or an Ingress (the canary Ingress is Sluice's; the user's
    /// carries no managed-by label and is not judged).
    Route,
}

impl Resource {
    /// The main resource a request addresses (subresources are not judged).
    pub fn of(req: &Request) -> Option<Resource> {
        if req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
            return None;
        }
        let r = &req.resource;
        match (r.group.as_str(), r.resource.as_str()) {
            ("apps", "deployments") => Some(Resource::Deployment),
            ("", "namespaces") => Some(Resource::Namespace),
            ("", "configmaps") => Some(Resource::ConfigMap),
            ("", "services") => Some(Resource::Service),
            ("split.smi-spec.io", "trafficsplits")
            | ("gateway.networking.k8s.io", "httproutes")
            | ("networking.k8s.io", "ingresses") => Some(Resource::Route),
            _ => None,
        }
    }
}

/// `KIND NAMESPACE/NAME`, for messages.
fn subject(req: &Request) -> String {
    format!("{} {}", req.kind.kind, req.object_ref())
}

/// The namespace Sluice runs in, from its service account (`system:serviceaccount:NS:NAME`).
pub fn sluice_namespace(sluice_user: &str) -> Option<&str> {
    sluice_user
        .strip_prefix("system:serviceaccount:")?
        .split(':')
        .next()
}

/// One message for every error in `errors`, naming the object.
fn settings_message(req: &Request, errors: &[PolicyError]) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("{}: {}", subject(req), all.join("; "))
}

/// A refusal of an update or deletion of an object Sluice generated.
pub fn generated(req: &Request, old: Option<&Object>) -> Verdict {
    let Some(old) = old else {
        return Verdict::Allow;
    };
    if !matches!(req.operation, Operation::Update | Operation::Delete)
        || req.user_info.username.starts_with(KUBE_CONTROLLERS)
        || old.labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY)
    {
        return Verdict::Allow;
    }
    let Some(app) = &old.controller_deployment else {
        return Verdict::Allow;
    };
    let ns = req.namespace.as_deref().unwrap_or("default");
    let verb = if req.operation == Operation::Delete {
        "deleted"
    } else {
        "edited"
    };
    Verdict::Forbid(format!(
        "{} is generated by Sluice for Deployment {ns}/{app} and cannot be {verb} by hand; \
         change Deployment {app} instead (Sluice keeps this object in step with it), or steer \
         the rollout with `kubectl -n {ns} annotate deploy/{app} sluice.dev/abort=true` \
         (or pause, promote)",
        subject(req)
    ))
}

/// A refusal of a change to the apex Service's selector while Sluice points it at the primary.
pub fn apex(req: &Request, new: Option<&Object>, old: Option<&Object>) -> Verdict {
    let (Some(new), Some(old)) = (new, old) else {
        return Verdict::Allow;
    };
    let Some(saved) = old.annotations.get(APEX_SELECTOR_ANNOTATION) else {
        return Verdict::Allow;
    };
    if new.selector == old.selector && new.annotations.get(APEX_SELECTOR_ANNOTATION) == Some(saved)
    {
        return Verdict::Allow;
    }
    let selector = old
        .selector
        .as_ref()
        .map_or_else(|| "none".to_string(), ToString::to_string);
    Verdict::Forbid(format!(
        "{}: spec.selector and {APEX_SELECTOR_ANNOTATION} are Sluice's while a rollout runs \
         (the selector {selector} points at the primary pods; your selector {saved} comes back \
         when the rollout ends); keep both as they are, and re-apply once \
         `kubectl get deploy -n {} -L sluice.dev/phase` shows the rollout at rest",
        subject(req),
        req.namespace.as_deref().unwrap_or("default"),
    ))
}

/// Whether the request addresses the `sluice-policy` ConfigMap in Sluice's namespace.
pub fn is_policy(req: &Request, sluice_ns: Option<&str>) -> bool {
    req.name == POLICY_CONFIGMAP && req.namespace.as_deref() == sluice_ns
}

/// A refusal of router `key` (`sluice.dev/router`, or `router` in `sluice-policy`) in `new`
/// when CREATE sets it or the update changes it to a router whose route API `discovery`
/// says is not served. `discovery` is read only then, so an update that leaves the router
/// alone (nearly all of them) costs no discovery read on the admission path.
pub fn router_served(
    req: &Request,
    key: &str,
    new: &BTreeMap<String, String>,
    old: Option<&BTreeMap<String, String>>,
    discovery: impl FnOnce() -> Option<Discovery>,
) -> Verdict {
    let Some(value) = new.get(key) else {
        return Verdict::Allow;
    };
    if old.and_then(|o| o.get(key)) == Some(value) {
        return Verdict::Allow;
    }
    let Some(discovery) = discovery() else {
        return Verdict::Allow;
    };
    // An invalid value is refused by the settings checks, with their message.
    let Ok(kind) = value.trim().parse::<RouterKind>() else {
        return Verdict::Allow;
    };
    match served(kind, &discovery) {
        Ok(()) => Verdict::Allow,
        Err(reason) => Verdict::Forbid(format!(
            "{}: {key}: {value} cannot route here: {reason}",
            subject(req)
        )),
    }
}

/// Invalid `sluice.dev/*` annotations of a Namespace, when the update changes them.
pub fn namespace_settings(req: &Request, new: Option<&Object>, old: Option<&Object>) -> Verdict {
    let Some(new) = new else {
        return Verdict::Allow;
    };
    if old.is_some_and(|o| o.annotations == new.annotations) {
        return Verdict::Allow;
    }
    forbid_errors(
        req,
        settings::validate_annotations(&new.annotations, Level::Namespace),
    )
}

/// Invalid data of the `sluice-policy` ConfigMap in Sluice's namespace, when the update
/// changes it; other ConfigMaps pass.
pub fn policy_settings(
    req: &Request,
    new: Option<&Object>,
    old: Option<&Object>,
    sluice_ns: Option<&str>,
) -> Verdict {
    let Some(new) = new else {
        return Verdict::Allow;
    };
    if !is_policy(req, sluice_ns) {
        return Verdict::Allow;
    }
    if old.is_some_and(|o| o.data == new.data) {
        return Verdict::Allow;
    }
    forbid_errors(
        req,
        settings::validate_annotations(&new.data, Level::Cluster),
    )
}

fn forbid_errors(req: &Request, errors: Vec<PolicyError>) -> Verdict {
    if errors.is_empty() {
        Verdict::Allow
    } else {
        Verdict::Forbid(settings_message(req, &errors))
    }
}

/// Invalid `sluice.dev/*` annotations of a Deployment, alone, when CREATE sets them or the
/// update changes them. Needs no cache.
pub fn deployment_settings(req: &Request, new: &Object, old: Option<&Object>) -> Verdict {
    if !settings_changed(new, old) {
        return Verdict::Allow;
    }
    forbid_errors(
        req,
        settings::validate_annotations(&new.annotations, Level::Deployment),
    )
}

/// Whether CREATE sets, or the update changes, the Deployment's `sluice.dev/*` annotations.
pub fn settings_changed(new: &Object, old: Option<&Object>) -> bool {
    match old {
        Some(o) => o.annotations != new.annotations,
        None => !new.annotations.is_empty(),
    }
}

/// The policy layers above a Deployment in namespace `ns`, from the caches; a retryable reason
/// when they are not known yet.
pub struct Above {
    pub namespace: BTreeMap<String, String>,
    pub cluster: Option<BTreeMap<String, String>>,
}

impl Above {
    /// Reads the Namespace's annotations and the cluster policy from `view`.
    pub fn read(view: &dyn ClusterView, ns: &str) -> Result<Above, String> {
        if !view.synced() {
            return Err(super::CACHE_COLD.to_string());
        }
        let namespace = view.namespace_annotations(ns).ok_or_else(|| {
            format!(
                "{} (namespace {ns:?} is not in them yet)",
                super::CACHE_COLD
            )
        })?;
        Ok(Above {
            namespace,
            cluster: view.cluster_policy(),
        })
    }
}

/// A managed Deployment's settings resolved with the layers above it: contradictions blamed on
/// the Deployment's own keys are refused (the layers above were judged when they were written).
pub fn resolved_settings(req: &Request, new: &Object, above: &Above) -> Verdict {
    let errors = match settings::resolve(&Layers {
        deployment: Some(&new.annotations),
        namespace: Some(&above.namespace),
        cluster: above.cluster.as_ref(),
    }) {
        Ok(_) => return Verdict::Allow,
        Err(errors) => errors,
    };
    forbid_errors(
        req,
        errors
            .into_iter()
            .filter(|e| e.level() == Level::Deployment)
            .collect(),
    )
}

/// Whether a rollout holds the Deployment, from its old object: the status phase is not at
/// rest, or an intercepted update waits paused with its stable template recorded. A status
/// that cannot be read counts as held, and the second value says so for the user.
pub fn held(old: &Object) -> (bool, Option<String>) {
    let (by_status, warning) = match RolloutStatus::from_annotations(Some(&old.annotations)) {
        Ok(status) => (status.is_some_and(|s| !s.phase.is_at_rest()), None),
        Err(e) => (
            true,
            Some(format!("Sluice holds this Deployment paused: {e}")),
        ),
    };
    // An intercepted update waits paused with its stable template recorded until the
    // controller starts the rollout. A recorded template on an unpaused Deployment at rest is a
    // leftover the controller is about to clear.
    let pending =
        old.paused == Some(true) && old.annotations.contains_key(STABLE_TEMPLATE_ANNOTATION);
    (by_status || pending, warning)
}

/// Whether the update explicitly un-pauses (`spec.paused: true → false`) a Deployment a
/// rollout holds.
pub fn unpauses_held(new: &Object, old: &Object) -> bool {
    old.paused == Some(true) && new.paused == Some(false) && held(old).0
}

/// A refusal of `spec.paused: true → false` while Sluice holds the Deployment; the caller
/// checks that the Deployment is managed.
pub fn unpause(req: &Request, new: &Object, old: &Object) -> Verdict {
    if !unpauses_held(new, old) {
        return Verdict::Allow;
    }
    let ns = req.namespace.as_deref().unwrap_or("default");
    Verdict::Forbid(format!(
        "{}: spec.paused: false is refused while Sluice holds the Deployment for a rollout (it \
         un-pauses it itself once the primary serves); leave spec.paused out of your change, \
         and steer the rollout with `kubectl -n {ns} annotate deploy/{} sluice.dev/resume=true` \
         (or promote, abort)",
        subject(req),
        req.name,
    ))
}

/// The freeze check of a managed Deployment whose pod template changes, at `now`.
pub fn freeze(
    req: &Request,
    new: &Object,
    old: &Object,
    above: &Above,
    now: SystemTime,
) -> Verdict {
    let resolved = match settings::resolve(&Layers {
        deployment: None,
        namespace: Some(&above.namespace),
        cluster: above.cluster.as_ref(),
    }) {
        Ok(r) => r,
        Err(errors) => {
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Verdict::Retry(format!(
                "the policy above it cannot be read ({}); fix the Namespace's sluice.dev/ \
                 annotations or the {POLICY_CONFIGMAP} ConfigMap, then retry",
                all.join("; ")
            ));
        }
    };
    let windows = &resolved.settings.freeze;
    let Some(window) = windows.iter().find(|w| w.contains(now)) else {
        return Verdict::Allow;
    };
    let key = Control::BreakGlass.annotation();
    let reason = new.annotations.get(&key).map(|r| r.trim()).unwrap_or("");
    let ns = req.namespace.as_deref().unwrap_or("default");
    if !reason.is_empty() && old.annotations.get(&key).map(|r| r.trim()) != Some(reason) {
        return Verdict::BreakGlass(BreakGlass {
            namespace: ns.to_string(),
            deployment: req.name.clone(),
            user: req.user_info.username.clone(),
            reason: reason.to_string(),
            window: window.to_string(),
        });
    }
    let source = match resolved.source(crate::policy::keys::Setting::Freeze) {
        Source::Namespace => format!("sluice.dev/freeze on Namespace {ns}"),
        _ => format!("freeze in the {POLICY_CONFIGMAP} ConfigMap"),
    };
    let until = frozen_until(windows, now).map_or_else(
        || "for more than two weeks".to_string(),
        |t| format!("until {}", humantime::format_rfc3339_seconds(t)),
    );
    let reused = if reason.is_empty() {
        String::new()
    } else {
        format!(" (the reason {reason:?} was already used; give a new one)")
    };
    Verdict::Forbid(format!(
        "{}: pod template changes are frozen {until} by the window {window} ({source}){reused}; \
         re-apply after the freeze, or, for an emergency, add the annotation \
         {key}: \"<reason>\" to this change (it is logged and recorded as an Event)",
        subject(req),
    ))
}

#[cfg(test)]
mod tests;
