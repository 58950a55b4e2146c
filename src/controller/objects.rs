//! The objects Sluice generates for a managed Deployment `app` (DESIGN §3), as pure builders:
//! they take the user's objects and return the ones to write. No I/O here.
//!
//! ```text
//!   Deployment app ──selector {k: v}──────────────► Service app-canary  {k: v}
//!        │ stable template, labels {k: v-primary} ─► Deployment app-primary
//!        │                                         Service app-primary {k: v-primary}
//!        └── apex Service (setting `service`) ────► route app (routing::RouteTarget)
//!             selector while a rollout runs: {k: v-primary}, original saved in
//!             annotation sluice.dev/apex-selector and restored at the end
//! ```
//!
//! Every generated object carries `app.kubernetes.io/managed-by: sluice` and an owner
//! reference to `app` (controller, blockOwnerDeletion), so deleting `app` collects them.
//!
//! Choices where DESIGN.md is silent:
//! - Only `spec.selector.matchLabels` can be rewritten to `VALUE-primary`; a selector with
//!   `matchExpressions` is refused (an expression such as `app In (web)` would also select the
//!   primary's rewritten pods, or none of them).
//! - `app-primary` keeps `app`'s labels (selector keys rewritten, `sluice.dev/*` dropped) and
//!   adds `sluice.dev/canary: disabled`, so a namespace-wide opt-in never manages the primary
//!   itself. It copies `app`'s strategy, minReadySeconds, progressDeadlineSeconds and
//!   revisionHistoryLimit and is never paused. No annotations are copied (kubectl's
//!   last-applied configuration belongs to `app`).
//! - Linkerd's `linkerd.io/proxy-deployment` pod label is not rewritten: the proxy injector
//!   sets it from the pod's owner, so primary pods get `app-primary` by themselves.
//! - The generated Services copy the apex's ports (name, port, targetPort, protocol,
//!   appProtocol; not nodePort) and are plain ClusterIP Services.
//! - While a rollout runs the apex selects exactly the primary pods (the rewritten
//!   `matchLabels`), whatever it selected before. An apex Service without a selector (hand-made
//!   Endpoints) is refused: pointing it at pods would change what it is.
//! - The route's port is the apex's first port (HTTPRoute backendRefs need one; SMI ignores it).
//! - HPA (as Flagger does): while a rollout runs, a HorizontalPodAutoscaler (autoscaling/v2)
//!   that scales `app` gets a copy `app-primary` (same min, max, metrics and behavior,
//!   scaleTargetRef → `app-primary`), removed with `app-primary` at the end; `app` (the canary)
//!   keeps the user's HPA. Under an HPA, `app-primary` keeps the replicas it has (its HPA owns
//!   them), applied on condition of the resourceVersion they were read at, so an HPA scale
//!   between Sluice's read and its apply gets a retry, never an undo; it is created with the user's HPA's current replicas (else `app`'s), within the
//!   HPA's min and max. Several HPAs on `app`: the first by name is copied.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::{Value, json};

use crate::policy::keys::{APEX_SELECTOR_ANNOTATION, OPT_IN_LABEL, PREFIX};
use crate::policy::values::RouterKind;
use crate::routing::RouteTarget;

/// Label key every generated object carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on generated objects.
pub const MANAGED_BY: &str = "sluice";
/// Suffix of the primary Deployment and Service names, and of rewritten selector values.
pub const PRIMARY_SUFFIX: &str = "-primary";
/// Suffix of the canary Service name.
pub const CANARY_SUFFIX: &str = "-canary";

/// Why a generated object cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectsError {
    #[error(
        "Deployment {namespace}/{name} has no spec.selector.matchLabels; Sluice gives primary pods \
         the value VALUE-primary for every matchLabels entry, so give the Deployment a matchLabels \
         selector (e.g. `app: {name}`)"
    )]
    NoMatchLabels { namespace: String, name: String },
    #[error(
        "Deployment {namespace}/{name} selects its pods with matchExpressions, which Sluice cannot \
         rewrite for the primary pods; replace the matchExpressions with matchLabels"
    )]
    MatchExpressions { namespace: String, name: String },
    #[error(
        "apex Service {namespace}/{service} has no ports to copy to {app}-primary and {app}-canary; \
         add the ports it serves, or point sluice.dev/service at the Service that fronts {app}"
    )]
    ApexWithoutPorts {
        namespace: String,
        service: String,
        app: String,
    },
    #[error(
        "apex Service {namespace}/{service} has no selector (its endpoints are managed by hand), \
         so Sluice cannot point it at the primary pods of {app}; give it a selector for {app}'s \
         pods, or point sluice.dev/service at a Service that has one"
    )]
    ApexWithoutSelector {
        namespace: String,
        service: String,
        app: String,
    },
    #[error(
        "Deployment {namespace}/{name} has no metadata.uid, so nothing can be owned by it; \
         read it from the API server before building its objects"
    )]
    NotStored { namespace: String, name: String },
    #[error(
        "annotation {APEX_SELECTOR_ANNOTATION} on Service {namespace}/{service} is {value:?}, not a \
         JSON map of label values ({reason}); set it to the selector the Service had before the \
         rollout, e.g. {{\"app\":\"web\"}}"
    )]
    BadSavedSelector {
        namespace: String,
        service: String,
        value: String,
        reason: String,
    },
}

impl ObjectsError {
    /// Short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ObjectsError::NoMatchLabels { .. } => "no_match_labels",
            ObjectsError::MatchExpressions { .. } => "match_expressions",
            ObjectsError::ApexWithoutPorts { .. } => "apex_without_ports",
            ObjectsError::ApexWithoutSelector { .. } => "apex_without_selector",
            ObjectsError::NotStored { .. } => "not_stored",
            ObjectsError::BadSavedSelector { .. } => "bad_saved_selector",
        }
    }
}

/// `app-primary`.
pub fn primary_name(app: &str) -> String {
    format!("{app}{PRIMARY_SUFFIX}")
}

/// `app-canary`.
pub fn canary_name(app: &str) -> String {
    format!("{app}{CANARY_SUFFIX}")
}

fn name_of(app: &Deployment) -> String {
    app.metadata.name.clone().unwrap_or_default()
}

fn namespace_of(app: &Deployment) -> String {
    app.metadata.namespace.clone().unwrap_or_default()
}

/// Whether an object is one Sluice generated (it carries `app.kubernetes.io/managed-by: sluice`);
/// the validating webhook refuses edits to these by anyone but Sluice.
pub fn is_generated(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY)
}

/// `app`'s `spec.selector.matchLabels`; refuses selectors that cannot be rewritten.
pub fn app_selector(app: &Deployment) -> Result<BTreeMap<String, String>, ObjectsError> {
    let selector = app.spec.as_ref().map(|s| &s.selector);
    if selector
        .and_then(|s| s.match_expressions.as_ref())
        .is_some_and(|e| !e.is_empty())
    {
        return Err(ObjectsError::MatchExpressions {
            namespace: namespace_of(app),
            name: name_of(app),
        });
    }
    match selector.and_then(|s| s.match_labels.clone()) {
        Some(labels) if !labels.is_empty() => Ok(labels),
        _ => Err(ObjectsError::NoMatchLabels {
            namespace: namespace_of(app),
            name: name_of(app),
        }),
    }
}

/// The labels that select primary pods: every `matchLabels` value of `app` + `-primary`.
pub fn primary_selector(app: &Deployment) -> Result<BTreeMap<String, String>, ObjectsError> {
    Ok(app_selector(app)?
        .into_iter()
        .map(|(k, v)| (k, format!("{v}{PRIMARY_SUFFIX}")))
        .collect())
}

/// The owner reference every generated object carries: `app`, controller, blockOwnerDeletion.
pub fn owner_reference(app: &Deployment) -> Result<OwnerReference, ObjectsError> {
    let uid = app
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ObjectsError::NotStored {
            namespace: namespace_of(app),
            name: name_of(app),
        })?;
    Ok(OwnerReference {
        api_version: "apps/v1".to_string(),
        kind: "Deployment".to_string(),
        name: name_of(app),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

fn generated_meta(app: &Deployment, name: String) -> Result<ObjectMeta, ObjectsError> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: app.metadata.namespace.clone(),
        labels: Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_string(),
            MANAGED_BY.to_string(),
        )])),
        owner_references: Some(vec![owner_reference(app)?]),
        ..ObjectMeta::default()
    })
}

/// Deployment `app-primary`: the stable template at `app`'s replicas, with every selector label
/// rewritten to `VALUE-primary`, owned by `app`, never paused.
pub fn primary_deployment(
    app: &Deployment,
    stable_template: &PodTemplateSpec,
) -> Result<Deployment, ObjectsError> {
    let selector = app_selector(app)?;
    let primary = primary_selector(app)?;
    let mut meta = generated_meta(app, primary_name(&name_of(app)))?;
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in app.metadata.labels.iter().flatten() {
        if k.starts_with(PREFIX) {
            continue;
        }
        let value = if selector.contains_key(k) {
            format!("{v}{PRIMARY_SUFFIX}")
        } else {
            v.clone()
        };
        labels.insert(k.clone(), value);
    }
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    labels.insert(OPT_IN_LABEL.to_string(), "disabled".to_string());

    let mut template = stable_template.clone();
    let template_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    template_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(primary.clone());

    let spec = app.spec.clone().unwrap_or_default();
    Ok(Deployment {
        metadata: meta,
        spec: Some(DeploymentSpec {
            replicas: spec.replicas,
            selector: LabelSelector {
                match_labels: Some(primary),
                match_expressions: None,
            },
            template,
            strategy: spec.strategy,
            min_ready_seconds: spec.min_ready_seconds,
            progress_deadline_seconds: spec.progress_deadline_seconds,
            revision_history_limit: spec.revision_history_limit,
            paused: None,
        }),
        status: None,
    })
}

/// Whether `hpa` is the user's autoscaler of Deployment `app` (not one Sluice generated).
pub fn scales(hpa: &HorizontalPodAutoscaler, app: &str) -> bool {
    let target = hpa.spec.as_ref().map(|s| &s.scale_target_ref);
    !is_generated(&hpa.metadata)
        && target.is_some_and(|t| {
            t.kind == "Deployment"
                && t.name == app
                && t.api_version.as_deref().is_none_or(|v| v == "apps/v1")
        })
}

/// The user's HPA of `app` among `hpas` (the first by name when several target it).
pub fn app_hpa<'a>(
    hpas: impl IntoIterator<Item = &'a HorizontalPodAutoscaler>,
    app: &Deployment,
) -> Option<&'a HorizontalPodAutoscaler> {
    let name = name_of(app);
    hpas.into_iter()
        .filter(|h| scales(h, &name))
        .min_by_key(|h| h.metadata.name.clone())
}

/// HPA `app-primary`: the user's HPA of `app` (min, max, metrics, behavior) aimed at
/// `app-primary`, owned by `app`.
pub fn primary_hpa(
    app: &Deployment,
    hpa: &HorizontalPodAutoscaler,
) -> Result<HorizontalPodAutoscaler, ObjectsError> {
    let spec = hpa.spec.clone().unwrap_or_default();
    let mut target = spec.scale_target_ref.clone();
    target.name = primary_name(&name_of(app));
    Ok(HorizontalPodAutoscaler {
        metadata: generated_meta(app, primary_name(&name_of(app)))?,
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: target,
            ..spec
        }),
        status: None,
    })
}

/// Under the user's HPA `hpa`, the replicas `app-primary` is applied with: the ones it has once
/// it exists (its own HPA scales it from there), else the HPA's current replicas (else `app`'s),
/// within the HPA's min and max.
pub fn primary_replicas_under(
    app: &Deployment,
    hpa: &HorizontalPodAutoscaler,
    primary: Option<&Deployment>,
) -> Option<i32> {
    if let Some(current) = primary.and_then(|p| p.spec.as_ref()?.replicas) {
        return Some(current);
    }
    let spec = hpa.spec.as_ref()?;
    let min = spec.min_replicas.unwrap_or(1);
    let start = hpa
        .status
        .as_ref()
        .map(|s| s.current_replicas.unwrap_or(0))
        .filter(|r| *r > 0)
        .or(app.spec.as_ref()?.replicas)
        .unwrap_or(min);
    Some(start.clamp(min, spec.max_replicas.max(min)))
}

/// Under the user's HPA `hpa`, leaves the replicas of `primary` (as [`primary_deployment`]
/// built it) to the HPA: they become [`primary_replicas_under`]'s, and once `app-primary`
/// exists the apply is made conditional on the `current` object read (its resourceVersion).
/// An HPA scale that lands between that read and the apply then fails the apply with a 409
/// (retried with a fresh read) instead of being undone by the replicas read before it.
pub fn leave_replicas_to_hpa(
    primary: &mut Deployment,
    app: &Deployment,
    hpa: &HorizontalPodAutoscaler,
    current: Option<&Deployment>,
) {
    if let Some(spec) = primary.spec.as_mut() {
        spec.replicas = primary_replicas_under(app, hpa, current);
    }
    primary.metadata.resource_version = current.and_then(|c| c.metadata.resource_version.clone());
}

fn copied_ports(app: &Deployment, apex: &Service) -> Result<Vec<ServicePort>, ObjectsError> {
    let ports = apex
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    if ports.is_empty() {
        return Err(ObjectsError::ApexWithoutPorts {
            namespace: apex.metadata.namespace.clone().unwrap_or_default(),
            service: apex.metadata.name.clone().unwrap_or_default(),
            app: name_of(app),
        });
    }
    Ok(ports
        .into_iter()
        .map(|p| ServicePort {
            name: p.name,
            port: p.port,
            target_port: p.target_port,
            protocol: p.protocol,
            app_protocol: p.app_protocol,
            node_port: None,
        })
        .collect())
}

fn generated_service(
    app: &Deployment,
    apex: &Service,
    name: String,
    selector: BTreeMap<String, String>,
) -> Result<Service, ObjectsError> {
    let ports = copied_ports(app, apex)?;
    Ok(Service {
        metadata: generated_meta(app, name)?,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(selector),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// Service `app-canary`: selects `app`'s own pods, ports copied from the apex.
pub fn canary_service(app: &Deployment, apex: &Service) -> Result<Service, ObjectsError> {
    let selector = app_selector(app)?;
    generated_service(app, apex, canary_name(&name_of(app)), selector)
}

/// Service `app-primary`: selects the primary pods, ports copied from the apex.
pub fn primary_service(app: &Deployment, apex: &Service) -> Result<Service, ObjectsError> {
    let selector = primary_selector(app)?;
    generated_service(app, apex, primary_name(&name_of(app)), selector)
}

/// What the route for `app` splits: apex, backends, port, owner, and the router that writes it.
pub fn route_target(
    app: &Deployment,
    apex: &Service,
    router: RouterKind,
) -> Result<RouteTarget, ObjectsError> {
    let ports = copied_ports(app, apex)?;
    let name = name_of(app);
    Ok(RouteTarget {
        namespace: namespace_of(app),
        name: name.clone(),
        apex: apex.metadata.name.clone().unwrap_or_default(),
        primary_service: primary_name(&name),
        canary_service: canary_name(&name),
        port: ports.first().map(|p| p.port),
        router,
        ingress: name.clone(),
        matches: Vec::new(),
        owner: owner_reference(app)?,
    })
}

fn apex_selector(apex: &Service) -> Option<&BTreeMap<String, String>> {
    apex.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

fn saved_selector_raw(apex: &Service) -> Option<&String> {
    apex.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(APEX_SELECTOR_ANNOTATION))
}

/// The apex's selector while a rollout runs (the primary pods) and the JSON of the original to
/// keep in [`APEX_SELECTOR_ANNOTATION`]. Idempotent: when the annotation is already there, it is
/// returned unchanged, so the first saved original wins.
pub fn apex_selector_for_rollout(
    apex: &Service,
    app: &Deployment,
) -> Result<(BTreeMap<String, String>, String), ObjectsError> {
    let primary = primary_selector(app)?;
    if let Some(saved) = saved_selector_raw(apex) {
        parse_saved_selector(apex, saved)?;
        return Ok((primary, saved.clone()));
    }
    let original = apex_selector(apex).ok_or_else(|| ObjectsError::ApexWithoutSelector {
        namespace: apex.metadata.namespace.clone().unwrap_or_default(),
        service: apex.metadata.name.clone().unwrap_or_default(),
        app: name_of(app),
    })?;
    let saved = serde_json::to_string(original).expect("a string map serialises");
    Ok((primary, saved))
}

fn parse_saved_selector(
    apex: &Service,
    saved: &str,
) -> Result<BTreeMap<String, String>, ObjectsError> {
    serde_json::from_str::<BTreeMap<String, String>>(saved)
        .map_err(|e| e.to_string())
        .and_then(|m| {
            if m.is_empty() {
                Err("the map is empty".to_string())
            } else {
                Ok(m)
            }
        })
        .map_err(|reason| ObjectsError::BadSavedSelector {
            namespace: apex.metadata.namespace.clone().unwrap_or_default(),
            service: apex.metadata.name.clone().unwrap_or_default(),
            value: saved.to_string(),
            reason,
        })
}

/// The selector to restore on the apex at the end of a rollout: the saved original, or `None`
/// when nothing was saved (the apex was never re-pointed).
pub fn apex_selector_restore(
    apex: &Service,
) -> Result<Option<BTreeMap<String, String>>, ObjectsError> {
    saved_selector_raw(apex)
        .map(|saved| parse_saved_selector(apex, saved))
        .transpose()
}

/// A JSON merge patch that moves `current`'s selector to `desired` (keys it drops become null).
fn selector_patch(
    current: Option<&BTreeMap<String, String>>,
    desired: &BTreeMap<String, String>,
) -> serde_json::Map<String, Value> {
    let mut patch: serde_json::Map<String, Value> = desired
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    for k in current.into_iter().flat_map(|c| c.keys()) {
        if !desired.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    patch
}

/// The JSON merge patch that points the apex at the primary pods and saves its original
/// selector, or `None` when both are already in place (nothing to write).
pub fn apex_rollout_patch(apex: &Service, app: &Deployment) -> Result<Option<Value>, ObjectsError> {
    let (selector, saved) = apex_selector_for_rollout(apex, app)?;
    let current = apex_selector(apex);
    if current == Some(&selector) && saved_selector_raw(apex) == Some(&saved) {
        return Ok(None);
    }
    Ok(Some(json!({
        "metadata": {"annotations": {APEX_SELECTOR_ANNOTATION: saved}},
        "spec": {"selector": selector_patch(current, &selector)},
    })))
}

/// The JSON merge patch that restores the apex's saved selector and removes the annotation, or
/// `None` when there is nothing saved (nothing to write).
pub fn apex_restore_patch(apex: &Service) -> Result<Option<Value>, ObjectsError> {
    let Some(original) = apex_selector_restore(apex)? else {
        return Ok(None);
    };
    Ok(Some(json!({
        "metadata": {"annotations": {APEX_SELECTOR_ANNOTATION: null}},
        "spec": {"selector": selector_patch(apex_selector(apex), &original)},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn mk_template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels(&[("app", "web"), ("tier", "front"), ("team", "a")])),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    fn mk_app() -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("uid-web".into()),
                labels: Some(labels(&[
                    ("app", "web"),
                    ("owner", "team-a"),
                    ("sluice.dev/canary", "enabled"),
                    ("sluice.dev/phase", "Progressing"),
                ])),
                annotations: Some(labels(&[("sluice.dev/step-weight", "20")])),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                selector: LabelSelector {
                    match_labels: Some(labels(&[("app", "web"), ("tier", "front")])),
                    match_expressions: None,
                },
                template: mk_template("web:2"),
                paused: Some(true),
                min_ready_seconds: Some(5),
                ..DeploymentSpec::default()
            }),
            status: None,
        }
    }

    fn mk_apex() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(labels(&[("app", "web")])),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    node_port: Some(30080),
                    ..ServicePort::default()
                }]),
                type_: Some("NodePort".into()),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn primary_deployment_runs_the_stable_template_with_rewritten_selector_labels() {
        let primary = primary_deployment(&mk_app(), &mk_template("web:1")).unwrap();
        let meta = &primary.metadata;
        assert_eq!(meta.name.as_deref(), Some("web-primary"));
        assert_eq!(meta.namespace.as_deref(), Some("shop"));
        let spec = primary.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.paused, None);
        assert_eq!(spec.min_ready_seconds, Some(5));
        let rewritten = labels(&[("app", "web-primary"), ("tier", "front-primary")]);
        assert_eq!(spec.selector.match_labels, Some(rewritten));
        let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(
            pod_labels,
            labels(&[
                ("app", "web-primary"),
                ("tier", "front-primary"),
                ("team", "a")
            ])
        );
        let image = spec.template.spec.unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some("web:1"));
    }

    #[test]
    fn primary_deployment_is_owned_by_app_and_never_managed_itself() {
        let primary = primary_deployment(&mk_app(), &mk_template("web:1")).unwrap();
        let owner = &primary.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Deployment", "web", "uid-web")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        let l = primary.metadata.labels.unwrap();
        assert_eq!(l[MANAGED_BY_LABEL], "sluice");
        assert_eq!(l[OPT_IN_LABEL], "disabled");
        assert_eq!(l["app"], "web-primary");
        assert_eq!(l["owner"], "team-a");
        assert!(!l.contains_key("sluice.dev/phase"));
        assert_eq!(primary.metadata.annotations, None);
    }

    #[test]
    fn canary_selector_never_matches_primary_pods_nor_the_reverse() {
        let app = mk_app();
        let canary = app_selector(&app).unwrap();
        let primary_pods = primary_deployment(&app, &mk_template("web:1"))
            .unwrap()
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .labels
            .unwrap();
        let app_pods = app.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        let primary = primary_selector(&mk_app()).unwrap();
        let selects = |sel: &BTreeMap<String, String>, pod: &BTreeMap<String, String>| {
            sel.iter().all(|(k, v)| pod.get(k) == Some(v))
        };
        assert!(selects(&canary, &app_pods));
        assert!(selects(&primary, &primary_pods));
        assert!(!selects(&canary, &primary_pods));
        assert!(!selects(&primary, &app_pods));
    }

    #[test]
    fn every_generated_object_is_recognisable_as_generated() {
        let (app, apex) = (mk_app(), mk_apex());
        let primary = primary_deployment(&app, &mk_template("web:1")).unwrap();
        assert!(is_generated(&primary.metadata));
        assert!(is_generated(&canary_service(&app, &apex).unwrap().metadata));
        assert!(is_generated(
            &primary_service(&app, &apex).unwrap().metadata
        ));
        assert!(!is_generated(&app.metadata));
        assert!(!is_generated(&apex.metadata));
    }

    #[test]
    fn primary_template_gains_selector_labels_the_stable_template_lacked() {
        let mut stable = mk_template("web:1");
        stable.metadata = None;
        let primary = primary_deployment(&mk_app(), &stable).unwrap();
        let pod_labels = primary.spec.unwrap().template.metadata.unwrap().labels;
        assert_eq!(
            pod_labels,
            Some(labels(&[("app", "web-primary"), ("tier", "front-primary")]))
        );
    }

    #[test]
    fn canary_service_selects_the_apps_pods_with_the_apex_ports() {
        let svc = canary_service(&mk_app(), &mk_apex()).unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("web-canary"));
        assert_eq!(svc.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(svc.metadata.owner_references.unwrap()[0].name, "web");
        let spec = svc.spec.unwrap();
        assert_eq!(
            spec.selector,
            Some(labels(&[("app", "web"), ("tier", "front")]))
        );
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(port.port, 80);
        assert_eq!(port.name.as_deref(), Some("http"));
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
        assert_eq!(port.node_port, None);
    }

    #[test]
    fn primary_service_selects_only_primary_pods() {
        let svc = primary_service(&mk_app(), &mk_apex()).unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("web-primary"));
        assert_eq!(
            svc.spec.unwrap().selector,
            Some(labels(&[("app", "web-primary"), ("tier", "front-primary")]))
        );
    }

    #[test]
    fn refuses_an_app_selected_by_match_expressions() {
        let mut app = mk_app();
        let sel = &mut app.spec.as_mut().unwrap().selector;
        sel.match_labels = None;
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "app".into(),
            operator: "In".into(),
            values: Some(vec!["web".into()]),
        }]);
        let err = primary_deployment(&app, &mk_template("web:1")).unwrap_err();
        assert_eq!(err.metric_label(), "match_expressions");
        let msg = err.to_string();
        assert!(msg.contains("shop/web"), "{msg}");
        assert!(
            msg.contains("replace the matchExpressions with matchLabels"),
            "{msg}"
        );
    }

    #[test]
    fn refuses_an_app_without_match_labels() {
        let mut app = mk_app();
        app.spec.as_mut().unwrap().selector.match_labels = Some(BTreeMap::new());
        let err = canary_service(&app, &mk_apex()).unwrap_err();
        assert_eq!(
            err,
            ObjectsError::NoMatchLabels {
                namespace: "shop".into(),
                name: "web".into()
            }
        );
    }

    #[test]
    fn refuses_an_apex_without_ports() {
        let mut apex = mk_apex();
        apex.spec.as_mut().unwrap().ports = Some(vec![]);
        let err = primary_service(&mk_app(), &apex).unwrap_err();
        assert_eq!(err.metric_label(), "apex_without_ports");
        assert!(
            err.to_string()
                .contains("apex Service shop/web has no ports")
        );
        assert!(route_target(&mk_app(), &apex, RouterKind::Smi).is_err());
    }

    #[test]
    fn refuses_to_own_objects_for_an_app_that_was_never_stored() {
        let mut app = mk_app();
        app.metadata.uid = None;
        let err = primary_service(&app, &mk_apex()).unwrap_err();
        assert_eq!(err.metric_label(), "not_stored");
    }

    #[test]
    fn route_target_names_the_apex_the_backends_and_the_first_port() {
        let mut apex = mk_apex();
        apex.metadata.name = Some("storefront".into());
        let t = route_target(&mk_app(), &apex, RouterKind::Smi).unwrap();
        assert_eq!(t.namespace, "shop");
        assert_eq!(t.name, "web");
        assert_eq!(t.apex, "storefront");
        assert_eq!(t.primary_service, "web-primary");
        assert_eq!(t.canary_service, "web-canary");
        assert_eq!(t.port, Some(80));
        assert_eq!(t.owner.uid, "uid-web");
    }

    #[test]
    fn apex_points_at_primary_pods_and_saves_its_original_selector() {
        let (selector, saved) = apex_selector_for_rollout(&mk_apex(), &mk_app()).unwrap();
        assert_eq!(
            selector,
            labels(&[("app", "web-primary"), ("tier", "front-primary")])
        );
        assert_eq!(saved, r#"{"app":"web"}"#);
    }

    #[test]
    fn applying_the_rollout_selector_twice_keeps_the_first_saved_original() {
        let (app, mut apex) = (mk_app(), mk_apex());
        let (selector, saved) = apex_selector_for_rollout(&apex, &app).unwrap();
        apex.spec.as_mut().unwrap().selector = Some(selector.clone());
        apex.metadata.annotations = Some(labels(&[(APEX_SELECTOR_ANNOTATION, &saved)]));
        let again = apex_selector_for_rollout(&apex, &app).unwrap();
        assert_eq!(again, (selector, saved));
        assert_eq!(apex_rollout_patch(&apex, &app).unwrap(), None);
    }

    #[test]
    fn rollout_patch_replaces_the_selector_and_nulls_keys_it_drops() {
        let mut apex = mk_apex();
        apex.spec.as_mut().unwrap().selector = Some(labels(&[("app", "web"), ("zone", "eu")]));
        let patch = apex_rollout_patch(&apex, &mk_app()).unwrap().unwrap();
        assert_eq!(
            patch,
            json!({
                "metadata": {"annotations": {APEX_SELECTOR_ANNOTATION: r#"{"app":"web","zone":"eu"}"#}},
                "spec": {"selector": {"app": "web-primary", "tier": "front-primary", "zone": null}},
            })
        );
    }

    #[test]
    fn restore_patch_brings_back_the_saved_selector_and_drops_the_annotation() {
        let mut apex = mk_apex();
        apex.spec.as_mut().unwrap().selector =
            Some(labels(&[("app", "web-primary"), ("tier", "front-primary")]));
        apex.metadata.annotations = Some(labels(&[(APEX_SELECTOR_ANNOTATION, r#"{"app":"web"}"#)]));
        assert_eq!(
            apex_selector_restore(&apex).unwrap(),
            Some(labels(&[("app", "web")]))
        );
        assert_eq!(
            apex_restore_patch(&apex).unwrap(),
            Some(json!({
                "metadata": {"annotations": {APEX_SELECTOR_ANNOTATION: null}},
                "spec": {"selector": {"app": "web", "tier": null}},
            }))
        );
    }

    #[test]
    fn restoring_an_apex_that_was_never_repointed_writes_nothing() {
        assert_eq!(apex_selector_restore(&mk_apex()).unwrap(), None);
        assert_eq!(apex_restore_patch(&mk_apex()).unwrap(), None);
    }

    #[test]
    fn a_garbled_saved_selector_is_an_error_naming_the_service_and_value() {
        let mut apex = mk_apex();
        apex.metadata.annotations = Some(labels(&[(APEX_SELECTOR_ANNOTATION, "app=web")]));
        let err = apex_restore_patch(&apex).unwrap_err();
        assert_eq!(err.metric_label(), "bad_saved_selector");
        let msg = err.to_string();
        assert!(msg.contains("Service shop/web"), "{msg}");
        assert!(msg.contains("\"app=web\""), "{msg}");
        assert!(apex_selector_for_rollout(&apex, &mk_app()).is_err());
    }

    #[test]
    fn refuses_to_repoint_an_apex_without_a_selector() {
        let mut apex = mk_apex();
        apex.spec.as_mut().unwrap().selector = None;
        let err = apex_selector_for_rollout(&apex, &mk_app()).unwrap_err();
        assert_eq!(err.metric_label(), "apex_without_selector");
    }

    fn mk_hpa(name: &str, target: &str, current: Option<i32>) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": 2,
                "maxReplicas": 6,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}}
            },
            "status": current.map(|c| json!({"currentReplicas": c, "desiredReplicas": c}))
        }))
        .unwrap()
    }

    #[test]
    fn the_primary_hpa_copies_the_users_and_scales_app_primary() {
        let app = mk_app();
        let user = mk_hpa("web", "web", Some(4));
        let copy = primary_hpa(&app, &user).unwrap();
        assert_eq!(copy.metadata.name.as_deref(), Some("web-primary"));
        assert_eq!(copy.metadata.namespace.as_deref(), Some("shop"));
        assert!(is_generated(&copy.metadata));
        assert_eq!(copy.metadata.owner_references.unwrap()[0].name, "web");
        let mut want = user.spec.unwrap();
        want.scale_target_ref.name = "web-primary".into();
        assert_eq!(
            copy.spec.unwrap(),
            want,
            "min, max, metrics, behavior copied"
        );
        assert!(copy.status.is_none());
    }

    #[test]
    fn only_the_users_hpa_of_app_is_copied() {
        let app = mk_app();
        let generated = primary_hpa(&app, &mk_hpa("web", "web", None)).unwrap();
        let hpas = vec![
            mk_hpa("other", "api", None),
            generated,
            mk_hpa("web-z", "web", None),
            mk_hpa("web-a", "web", None),
        ];
        let found = app_hpa(&hpas, &app).unwrap();
        assert_eq!(found.metadata.name.as_deref(), Some("web-a"));
        assert!(app_hpa(&hpas[..2], &app).is_none());
    }

    #[test]
    fn the_primary_starts_at_the_hpas_replicas_and_then_keeps_its_own() {
        let app = mk_app(); // 3 replicas
        let scaled = mk_hpa("web", "web", Some(5));
        assert_eq!(primary_replicas_under(&app, &scaled, None), Some(5));
        // No status yet: app's replicas, within min and max.
        assert_eq!(
            primary_replicas_under(&app, &mk_hpa("web", "web", None), None),
            Some(3)
        );
        let mut small = app.clone();
        small.spec.as_mut().unwrap().replicas = Some(1);
        assert_eq!(
            primary_replicas_under(&small, &mk_hpa("web", "web", None), None),
            Some(2),
            "raised to minReplicas"
        );
        let mut primary = primary_deployment(&app, &mk_template("web:1")).unwrap();
        primary.spec.as_mut().unwrap().replicas = Some(6);
        assert_eq!(
            primary_replicas_under(&app, &scaled, Some(&primary)),
            Some(6),
            "its own HPA scaled it"
        );
    }

    #[test]
    fn under_an_hpa_the_primary_is_applied_only_over_the_object_whose_replicas_it_kept() {
        let app = mk_app();
        let hpa = mk_hpa("web", "web", Some(5));
        let mut first = primary_deployment(&app, &mk_template("web:1")).unwrap();
        leave_replicas_to_hpa(&mut first, &app, &hpa, None);
        assert_eq!(first.spec.as_ref().unwrap().replicas, Some(5));
        assert_eq!(
            first.metadata.resource_version, None,
            "created unconditionally"
        );

        let mut current = first.clone();
        current.spec.as_mut().unwrap().replicas = Some(6);
        current.metadata.resource_version = Some("41".into());
        let mut again = primary_deployment(&app, &mk_template("web:1")).unwrap();
        leave_replicas_to_hpa(&mut again, &app, &hpa, Some(&current));
        assert_eq!(again.spec.as_ref().unwrap().replicas, Some(6));
        assert_eq!(again.metadata.resource_version.as_deref(), Some("41"));
    }
}
