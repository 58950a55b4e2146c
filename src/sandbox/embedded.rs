//! Sluice running inside the sandbox, exactly as `sluice serve` runs in a cluster: the TLS
//! webhook registered through Mutating/ValidatingWebhookConfigurations (with a `caBundle` from
//! a CA minted at start), and the controller acting as Sluice's service account.
//!
//! ```text
//! Sandbox ──admin──► register webhook configurations ──► apiserver calls https://127.0.0.1:P/mutate
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
            webhook_addr: "127.0.0.1:0".parse().expect("an address"),
            admin_addr,
            prometheus_url: sandbox.metrics.url().to_string(),
            namespace: NAMESPACE.to_string(),
            instance: "sandbox".to_string(),
        })
        .await
        .map_err(|e| Error::Start(e.to_string()))?;
        register(&admin, sluice.webhook_addr(), ca.cert_pem()).await?;
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

/// The two webhook configurations, as `deploy/` installs them, pointing at `addr`.
pub fn webhook_configurations(addr: SocketAddr, ca_pem: &str) -> [serde_json::Value; 2] {
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let hook = |name: &str, path: &str, operations: serde_json::Value| {
        json!({
            "name": name,
            "clientConfig": { "url": format!("https://{addr}{path}"), "caBundle": ca_bundle },
            "rules": [{ "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": operations, "resources": ["deployments"], "scope": "Namespaced" }],
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
        })
    };
    let mut mutate = hook(MUTATING_WEBHOOK, "/mutate", json!(["UPDATE"]));
    mutate["reinvocationPolicy"] = json!("IfNeeded");
    [
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": { "name": "sluice" },
            "webhooks": [mutate],
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": { "name": "sluice" },
            "webhooks": [hook(VALIDATING_WEBHOOK, "/validate", json!(["CREATE", "UPDATE"]))],
        }),
    ]
}

async fn register(admin: &kube::Client, addr: SocketAddr, ca_pem: &str) -> Result<(), Error> {
    for config in webhook_configurations(addr, ca_pem) {
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
