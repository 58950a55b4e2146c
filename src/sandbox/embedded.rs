//! Sluice running inside the sandbox, exactly as `sluice serve` runs in a cluster: the TLS
//! webhook registered through Mutating/ValidatingWebhookConfigurations (with a `caBundle` from
//! a CA minted at start), and the controller acting as Sluice's service account.
//!
//! ```text
//! Sandbox ──admin──► deploy/base/webhooks.yaml (+ caBundle) ──► apiserver calls sluice.sluice-system.svc
//!                     Service sluice.sluice-system ──► 127.0.0.1:P (the webhook)
//!         ──sluice SA──► caches + controller (reconcile) ──► routes, primaries, status
//! ```

use std::net::SocketAddr;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::Sandbox;
use super::apiserver::Identity;
use crate::serve::{Config, Sluice};

/// Sluice's own namespace in the sandbox, as in `deploy/`.
pub const NAMESPACE: &str = "sluice-system";
/// The webhook names as kube-apiserver quotes them in denials.
pub const MUTATING_WEBHOOK: &str = "mutate.sluice.dev";
pub const VALIDATING_WEBHOOK: &str = "validate.sluice.dev";

/// Errors starting Sluice inside the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("starting Sluice in the sandbox: {0}")]
    Start(String),
}

fn start_err(what: &str) -> impl FnOnce(String) -> Error + '_ {
    move |e| Error::Start(format!("{what}: {e}"))
}

/// Sluice's webhook and controller, running against a sandbox.
pub struct Embedded {
    sluice: Sluice,
}

impl Embedded {
    /// Mints the webhook's certificate, starts Sluice as its service account (as `sluice serve`
    /// does) and registers the webhook with the sandbox API server.
    pub async fn start(sandbox: &Sandbox) -> Result<Embedded, Error> {
        Self::start_with_admin(sandbox, None).await
    }

    /// [`Embedded::start`], with the admin endpoint (`/healthz`, `/readyz`, `/metrics`) on
    /// `admin_addr` when given.
    pub async fn start_with_admin(
        sandbox: &Sandbox,
        admin_addr: Option<SocketAddr>,
    ) -> Result<Embedded, Error> {
        Self::start_with(sandbox, admin_addr, sandbox.metrics.url()).await
    }

    /// [`Embedded::start`], querying the Prometheus at `prometheus_url` instead of the
    /// sandbox's own (e.g. a [`PrometheusFaults`](super::prom_faults::PrometheusFaults) front).
    pub async fn start_with_prometheus(
        sandbox: &Sandbox,
        prometheus_url: &str,
    ) -> Result<Embedded, Error> {
        Self::start_with(sandbox, None, prometheus_url).await
    }

    async fn start_with(
        sandbox: &Sandbox,
        admin_addr: Option<SocketAddr>,
        prometheus_url: &str,
    ) -> Result<Embedded, Error> {
        let admin = sandbox
            .client(Identity::Admin)
            .await
            .map_err(|e| Error::Start(e.to_string()))?;
        let client = sandbox
            .client(Identity::Sluice)
            .await
            .map_err(|e| Error::Start(e.to_string()))?;
        ensure_namespace(&admin).await?;
        let ca = crate::tls::Ca::new("sluice sandbox webhook CA")
            .map_err(|e| start_err("webhook CA")(e.to_string()))?;
        let issued = ca
            .issue(
                &["sluice.sluice-system.svc", "localhost"],
                &["127.0.0.1".parse().expect("an address")],
            )
            .map_err(|e| start_err("webhook certificate")(e.to_string()))?;
        let tls = crate::tls::server_config("sluice webhook", &issued.cert_pem, &issued.key_pem)
            .map_err(|e| start_err("webhook TLS")(e.to_string()))?;
        let sluice = Sluice::start(Config {
            client,
            tls,
            tls_files: None,
            webhook_addr: "127.0.0.1:0".parse().expect("an address"),
            admin_addr,
            prometheus_url: prometheus_url.to_string(),
            namespace: NAMESPACE.to_string(),
            instance: "sandbox".to_string(),
            // A killed Sluice's Lease must expire before the next one leads: keep it short.
            lease_duration: std::time::Duration::from_secs(2),
            // The sandbox API server calls the webhook directly, with no endpoints to update.
            shutdown_delay: std::time::Duration::ZERO,
        })
        .await
        .map_err(|e| Error::Start(e.to_string()))?;
        register(sandbox, &admin, sluice.webhook_addr(), ca.cert_pem()).await?;
        Ok(Embedded { sluice })
    }

    /// The running Sluice (its addresses and metrics).
    pub fn sluice(&self) -> &Sluice {
        &self.sluice
    }

    /// Stops the controller and the webhook.
    pub async fn shutdown(self) {
        self.sluice.shutdown().await;
    }

    /// Kills the controller and the webhook at once ([`Sluice::kill`]).
    pub fn kill(self) {
        self.sluice.kill();
    }
}

/// Creates Sluice's namespace, for a Sluice that runs outside this process (`sluice serve`
/// against the sandbox's `sluice.kubeconfig`, as `sluice-scale` runs it).
pub async fn ensure_sluice_namespace(sandbox: &Sandbox) -> Result<(), Error> {
    let admin = sandbox
        .client(Identity::Admin)
        .await
        .map_err(|e| Error::Start(e.to_string()))?;
    ensure_namespace(&admin).await
}

/// Makes the sandbox call the webhook of a Sluice that runs outside this process, at `addr`,
/// whose serving certificate `ca_pem` signed (Sluice's namespace created if missing): how
/// `sluice-scale` and the crash tests install their `sluice serve` processes. Calling it
/// again re-registers.
pub async fn register_external(
    sandbox: &Sandbox,
    addr: SocketAddr,
    ca_pem: &str,
) -> Result<(), Error> {
    let admin = sandbox
        .client(Identity::Admin)
        .await
        .map_err(|e| Error::Start(e.to_string()))?;
    ensure_namespace(&admin).await?;
    register(sandbox, &admin, addr, ca_pem).await
}

async fn ensure_namespace(admin: &kube::Client) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(admin.clone());
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NAMESPACE } });
    api.patch(
        NAMESPACE,
        &PatchParams::apply("sluice-sandbox"),
        &Patch::Apply(&ns),
    )
    .await
    .map_err(|e| start_err("namespace sluice-system")(e.to_string()))?;
    Ok(())
}

/// `deploy/base/webhooks.yaml`, the webhook configurations a cluster installs.
pub const WEBHOOKS_YAML: &str = include_str!("../../deploy/base/webhooks.yaml");

/// The webhook configurations of `deploy/base/webhooks.yaml`, exactly, with `caBundle` filled in as
/// `sluice certs` or cert-manager's CA injector fills it in a cluster.
pub fn webhook_configurations(ca_pem: &str) -> Vec<serde_json::Value> {
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut configs: Vec<serde_json::Value> = serde_saphyr::from_multiple(WEBHOOKS_YAML)
        .expect("deploy/base/webhooks.yaml is valid YAML");
    for config in &mut configs {
        for hook in config["webhooks"].as_array_mut().into_iter().flatten() {
            hook["clientConfig"]["caBundle"] = json!(ca_bundle);
        }
    }
    configs
}

/// Points the `sluice.sluice-system` Service the configurations name at `addr`, and installs
/// them.
/// Points the sandbox's `sluice.sluice-system` Service at `addr` and (re-)registers the webhook
/// configurations with `ca_pem` as their `caBundle`.
async fn register(
    sandbox: &Sandbox,
    admin: &kube::Client,
    addr: SocketAddr,
    ca_pem: &str,
) -> Result<(), Error> {
    sandbox.api.register_service(NAMESPACE, "sluice", addr);
    for config in webhook_configurations(ca_pem) {
        let kind = config["kind"].as_str().unwrap_or_default().to_string();
        let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", &kind);
        let resource = ApiResource::from_gvk(&gvk);
        let api: Api<DynamicObject> = Api::all_with(admin.clone(), &resource);
        api.patch(
            "sluice",
            &PatchParams::apply("sluice-sandbox").force(),
            &Patch::Apply(&config),
        )
        .await
        .map_err(|e| start_err("registering the webhook")(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;
    use crate::sandbox::apiserver::admission::cel;

    /// Whether `deploy/base/webhooks.yaml`'s webhook `name` is called for this update.
    fn called(name: &str, user: &str, old: &Value, new: &Value) -> bool {
        let hook = webhook_configurations("ca")
            .into_iter()
            .flat_map(|c| c["webhooks"].as_array().cloned().unwrap_or_default())
            .find(|h| h["name"] == name)
            .expect("the webhook is in the file");
        let vars = BTreeMap::from([
            ("object", new.clone()),
            ("oldObject", old.clone()),
            (
                "request",
                json!({"operation": "UPDATE", "userInfo": {"username": user}}),
            ),
        ]);
        hook["matchConditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| cel::evaluate(c["expression"].as_str().unwrap(), &vars).unwrap())
    }

    fn deployment(image: &str, replicas: u32, phase: Option<&str>) -> Value {
        let mut d = json!({
            "metadata": {"name": "app", "labels": {"app": "app"}, "annotations": {"a": "b"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
        });
        if let Some(p) = phase {
            d["metadata"]["labels"]["sluice.dev/phase"] = json!(p);
        }
        d
    }

    const ALICE: &str = "alice";

    #[test]
    fn the_mutating_webhook_is_called_for_template_changes_and_running_rollouts_only() {
        let rest = deployment("v1", 2, Some("Succeeded"));
        let m = MUTATING_WEBHOOK;
        assert!(called(
            m,
            ALICE,
            &rest,
            &deployment("v2", 2, Some("Succeeded"))
        ));
        assert!(!called(
            m,
            ALICE,
            &rest,
            &deployment("v1", 5, Some("Succeeded"))
        ));
        let unlabelled = deployment("v1", 2, None);
        assert!(!called(m, ALICE, &unlabelled, &deployment("v1", 3, None)));
        let running = deployment("v1", 2, Some("Progressing"));
        assert!(called(
            m,
            ALICE,
            &running,
            &deployment("v1", 3, Some("Progressing"))
        ));
        let mut pending = deployment("v1", 2, None);
        pending["metadata"]["annotations"]["sluice.dev/stable-template"] = json!("{}");
        assert!(called(m, ALICE, &pending, &deployment("v1", 3, None)));
        assert!(!called(m, SLUICE_SA, &rest, &deployment("v2", 2, None)));
    }

    #[test]
    fn the_validating_webhook_skips_only_sluice_itself() {
        let rest = deployment("v1", 2, Some("Succeeded"));
        assert!(called(VALIDATING_WEBHOOK, ALICE, &rest, &rest));
        assert!(!called(
            VALIDATING_WEBHOOK,
            SLUICE_SA,
            &rest,
            &deployment("v2", 2, None)
        ));
    }

    const SLUICE_SA: &str = crate::webhook::SLUICE_USER;
}
