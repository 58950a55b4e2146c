//! `sluice explain deploy/NAME`: every effective setting with its value and where it came
//! from, why the Deployment is or is not managed, and every invalid value at each level.
//!
//! ```text
//! Deployment ─┐  labels ──────────────► optin::managed ─────────────► "managed: ..."
//! Namespace ──┤
//! ConfigMap ──┘  annotations / data ──► settings::resolve ──► rows: SETTING VALUE SOURCE
//!                                         │ errors: dropped from their layer, resolved again
//!                                         └──────────────► "invalid values": level + parser's message
//! ```
//!
//! Everything is decided by the one typed parser ([`settings::resolve`]) and the opt-in rule
//! ([`optin::managed`]); this module only fetches the three objects and lays the answer out.
//! An invalid value is shown with the parser's message and left out of the table, which then
//! shows what applies once it is fixed or removed (the controller marks the Deployment
//! `Blocked` until then). Under `warnings`, it shows what Sluice warns about with Events and
//! no setting shows: with `router: gateway-api`, a Linkerd ServiceProfile of the apex Service,
//! which silently overrides the HTTPRoute.
//!
//! `-o json|yaml` prints the same answer as a [`Report`]: `managed` and its `reason`, the
//! `settings` rows (`value` null when unset), the `invalid` values with their level and
//! the parser's message, and the `warnings`.

use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::policy::keys::Setting;
use serde::Serialize;

use crate::policy::optin;
use crate::policy::settings::{self, Layers, Level, PolicyError, Resolved};
use crate::policy::values::RouterKind;
use crate::routing::gateway;

/// The name of the cluster policy ConfigMap (DESIGN §2).
pub const POLICY_CONFIGMAP: &str = "sluice-policy";

/// What `explain` reads: the Deployment, its Namespace and the cluster policy.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub namespace: String,
    pub name: String,
    pub deployment_labels: BTreeMap<String, String>,
    pub deployment_annotations: BTreeMap<String, String>,
    /// The Namespace's labels and annotations; `None` when it could not be found.
    pub namespace_labels: Option<BTreeMap<String, String>>,
    pub namespace_annotations: Option<BTreeMap<String, String>>,
    /// Sluice's own namespace, where the policy ConfigMap lives.
    pub sluice_namespace: String,
    /// The ConfigMap's data; `None` when there is no such ConfigMap.
    pub cluster: Option<BTreeMap<String, String>>,
    /// Problems found around the Deployment that no setting shows (a Linkerd ServiceProfile
    /// that overrides its HTTPRoute), worded as Sluice's Warning Events word them.
    pub warnings: Vec<String>,
}

/// Resolves as the controller does, but never gives up: every error is kept and its key is
/// dropped from the layer it is on, until the rest resolves.
pub fn resolve_reporting(layers: &Layers) -> (Resolved, Vec<PolicyError>) {
    let mut maps: [Option<BTreeMap<String, String>>; 3] = [
        layers.deployment.cloned(),
        layers.namespace.cloned(),
        layers.cluster.cloned(),
    ];
    let slot = |level: Level| match level {
        Level::Deployment => 0,
        Level::Namespace => 1,
        Level::Cluster => 2,
    };
    let mut errors: Vec<PolicyError> = Vec::new();
    let keys: usize = maps.iter().flatten().map(BTreeMap::len).sum();
    for _ in 0..=keys {
        let found = settings::resolve(&Layers {
            deployment: maps[0].as_ref(),
            namespace: maps[1].as_ref(),
            cluster: maps[2].as_ref(),
        });
        match found {
            Ok(resolved) => return (resolved, errors),
            Err(errs) => {
                let mut dropped = false;
                for e in errs {
                    if let Some(map) = maps[slot(e.level())].as_mut() {
                        dropped |= map.remove(e.key()).is_some();
                    }
                    if !errors.contains(&e) {
                        errors.push(e);
                    }
                }
                if !dropped {
                    break;
                }
            }
        }
    }
    let defaults = settings::resolve(&Layers::default()).expect("the defaults are valid");
    (defaults, errors)
}

/// The opt-in decision, the settings and every invalid value, as the controller sees them.
fn decide(inputs: &Inputs) -> (optin::Managed, Resolved, Vec<PolicyError>) {
    let empty = BTreeMap::new();
    let managed = optin::managed(
        &inputs.deployment_labels,
        inputs.namespace_labels.as_ref().unwrap_or(&empty),
    );
    let (resolved, errors) = resolve_reporting(&Layers {
        deployment: Some(&inputs.deployment_annotations),
        namespace: inputs.namespace_annotations.as_ref(),
        cluster: inputs.cluster.as_ref(),
    });
    (managed, resolved, errors)
}

/// `sluice explain -o json|yaml`: the answer [`render`] lays out as text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub namespace: String,
    pub name: String,
    pub managed: bool,
    /// Why it is or is not managed (which label on which object).
    pub reason: String,
    /// False when the Namespace was not found (no namespace level).
    pub namespace_found: bool,
    /// False when the `sluice-policy` ConfigMap was not found (no cluster level).
    pub policy_found: bool,
    pub settings: Vec<ReportRow>,
    pub invalid: Vec<Invalid>,
    /// What Sluice warns about with Events (see the module doc).
    pub warnings: Vec<String>,
}

/// One effective setting.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportRow {
    pub setting: String,
    /// `None`: unset (names then default to the Deployment's).
    pub value: Option<String>,
    /// `deployment`, `namespace`, `cluster` or `default`.
    pub source: String,
}

/// One invalid value, left out of `settings`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Invalid {
    /// `deployment`, `namespace` or `cluster`.
    pub level: String,
    pub key: String,
    /// The parser's message.
    pub message: String,
}

/// The explanation as data.
pub fn report(inputs: &Inputs) -> Report {
    let (managed, resolved, errors) = decide(inputs);
    Report {
        namespace: inputs.namespace.clone(),
        name: inputs.name.clone(),
        managed: managed.is_managed(),
        reason: managed.reason().to_string(),
        namespace_found: inputs.namespace_labels.is_some(),
        policy_found: inputs.cluster.is_some(),
        settings: resolved
            .explain()
            .into_iter()
            .map(|row| ReportRow {
                setting: row.setting.as_str().to_string(),
                value: row.value,
                source: row.source.as_str().to_string(),
            })
            .collect(),
        invalid: errors
            .iter()
            .map(|e| Invalid {
                level: e.level().as_str().to_string(),
                key: e.key().to_string(),
                message: e.to_string(),
            })
            .collect(),
        warnings: inputs.warnings.clone(),
    }
}

/// The text `sluice explain` prints.
pub fn render(inputs: &Inputs) -> String {
    let (managed, resolved, errors) = decide(inputs);
    let (ns, sluice_ns) = (&inputs.namespace, &inputs.sluice_namespace);
    let mut out = String::new();
    out.push_str(&format!("Deployment {ns}/{}\n", inputs.name));
    out.push_str(&format!("  {}\n", managed.reason()));
    if !managed.is_managed() {
        out.push_str("  (the settings below apply once it opts in)\n");
    }
    if inputs.namespace_labels.is_none() {
        out.push_str(&format!("  Namespace {ns} not found: no namespace level\n"));
    }
    if inputs.cluster.is_none() {
        out.push_str(&format!(
            "  ConfigMap {sluice_ns}/{POLICY_CONFIGMAP} not found: no cluster level\n"
        ));
    }
    out.push('\n');

    let mut rows = vec![["SETTING".to_string(), "VALUE".into(), "SOURCE".into()]];
    for row in resolved.explain() {
        rows.push([
            row.setting.as_str().to_string(),
            row.value.unwrap_or_else(|| match row.setting {
                // Unset names default to the Deployment's own.
                Setting::Service | Setting::Ingress => {
                    format!("{} (the Deployment's name)", inputs.name)
                }
                _ => "-".into(),
            }),
            row.source.as_str().to_string(),
        ]);
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1) = (width(0), width(1));
    for [setting, value, source] in &rows {
        out.push_str(&format!("{setting:<w0$}  {value:<w1$}  {source}\n"));
    }
    out.push('\n');

    if errors.is_empty() {
        out.push_str("invalid values: none\n");
    } else {
        out.push_str(
            "invalid values (left out above; the controller marks the Deployment Blocked until they are fixed):\n",
        );
        for e in &errors {
            let on = match e.level() {
                Level::Deployment => format!("Deployment {ns}/{}", inputs.name),
                Level::Namespace => format!("Namespace {ns}"),
                Level::Cluster => format!("ConfigMap {sluice_ns}/{POLICY_CONFIGMAP}"),
            };
            out.push_str(&format!("  {:<10}  {on}: {e}\n", e.level().as_str()));
        }
    }
    if !inputs.warnings.is_empty() {
        out.push_str("\nwarnings:\n");
        for w in &inputs.warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    out
}

/// The warnings about `namespace/name` routed by `router` through apex Service `apex`, given
/// the names of the ServiceProfiles in its namespace: with `gateway-api`, a profile of the
/// apex overrides the HTTPRoute (the same words as the Event `ServiceProfileOverridesRoute`).
pub fn route_warnings(
    router: RouterKind,
    namespace: &str,
    name: &str,
    apex: &str,
    profile_names: &[String],
) -> Vec<String> {
    if router != RouterKind::GatewayApi {
        return Vec::new();
    }
    gateway::stray_profile(apex, namespace, profile_names.iter().map(String::as_str))
        .map(|profile| gateway::profile_warning(namespace, apex, name, profile))
        .into_iter()
        .collect()
}

/// Reads the Deployment, its Namespace and the cluster policy, and renders the explanation.
pub async fn explain(
    client: &Client,
    namespace: &str,
    name: &str,
    sluice_namespace: &str,
) -> anyhow::Result<String> {
    Ok(render(
        &read_inputs(client, namespace, name, sluice_namespace).await?,
    ))
}

/// Reads the Deployment, its Namespace and the cluster policy.
pub async fn read_inputs(
    client: &Client,
    namespace: &str,
    name: &str,
    sluice_namespace: &str,
) -> anyhow::Result<Inputs> {
    let (deploy, ns) = super::read_target(client, namespace, name).await?;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), sluice_namespace)
        .get_opt(POLICY_CONFIGMAP)
        .await
        .with_context(|| {
            format!(
                "reading ConfigMap {sluice_namespace}/{POLICY_CONFIGMAP} (pass --sluice-namespace if Sluice runs elsewhere)"
            )
        })?;
    let (resolved, _) = resolve_reporting(&Layers {
        deployment: Some(deploy.annotations()),
        namespace: ns.as_ref().map(|n| n.annotations()),
        cluster: cm.as_ref().and_then(|c| c.data.as_ref()),
    });
    let router = resolved.settings.router;
    let apex = resolved.settings.service.as_deref().unwrap_or(name);
    let warnings = match router {
        RouterKind::GatewayApi => match gateway::profile_names(client, namespace).await {
            Ok(profiles) => route_warnings(router, namespace, name, apex, &profiles),
            Err(e) => vec![format!(
                "could not look for a ServiceProfile of the apex Service {namespace}/{apex}, \
                 which would override the HTTPRoute: {e}"
            )],
        },
        _ => Vec::new(),
    };
    Ok(Inputs {
        namespace: namespace.to_string(),
        name: name.to_string(),
        deployment_labels: deploy.labels().clone(),
        deployment_annotations: deploy.annotations().clone(),
        namespace_labels: ns.as_ref().map(|n| n.labels().clone()),
        namespace_annotations: ns.as_ref().map(|n| n.annotations().clone()),
        sluice_namespace: sluice_namespace.to_string(),
        cluster: cm.map(|c| c.data.unwrap_or_default()),
        warnings,
    })
}

#[cfg(test)]
mod tests;
