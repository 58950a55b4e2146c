//! `sluice certs`: the webhook's certificates without cert-manager.
//!
//! ```text
//! new CA (rcgen) ─► serving certificate for sluice.<ns>.svc
//!   ├─► Secret <ns>/sluice-tls (tls.crt, tls.key, ca.crt)        server-side apply
//!   └─► caBundle of both webhook configurations `sluice`         JSON patch, per webhook
//! --print: the Secret and the caBundle as YAML instead, nothing written
//! ```
//!
//! Rotation: running it again issues a new CA and certificate. The new `caBundle` keeps the
//! previous CA after the new one, because the pods see the new Secret only when the kubelet
//! syncs it (up to a minute or so) and reload it within 10 s after: until then they still
//! serve the old certificate, which the API server must go on trusting. The next run drops
//! the older CA.

use base64::Engine as _;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::tls::Ca;

/// The Secret the Deployment in `deploy/` mounts.
pub const SECRET: &str = "sluice-tls";
/// The webhook configurations' and the Service's name.
pub const NAME: &str = "sluice";

/// What `sluice certs` made.
pub struct Minted {
    pub ca_pem: String,
    pub secret: Value,
    /// The DNS names the serving certificate is valid for.
    pub names: Vec<String>,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A new CA and a serving certificate for the Service `sluice` in `namespace`, and the Secret
/// that carries them.
pub fn mint(namespace: &str) -> anyhow::Result<Minted> {
    let ca = Ca::new("sluice webhook CA")?;
    let names = vec![
        format!("{NAME}.{namespace}.svc"),
        format!("{NAME}.{namespace}.svc.cluster.local"),
        format!("{NAME}.{namespace}"),
    ];
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let issued = ca.issue(&refs, &[])?;
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace, "labels": {"app.kubernetes.io/name": "sluice"}},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": b64(&issued.cert_pem),
            "tls.key": b64(&issued.key_pem),
            "ca.crt": b64(ca.cert_pem()),
        },
    });
    Ok(Minted {
        ca_pem: ca.cert_pem().to_string(),
        secret,
        names,
    })
}

/// The PEM certificates in `bundle`, in order.
fn certificates(bundle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in bundle.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE-----") {
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END CERTIFICATE-----") {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

/// The caBundle after a rotation: the new CA, then the newest CA of the old bundle (so the
/// certificate still served until the pods reload stays trusted).
pub fn rotated_bundle(new_ca: &str, old_bundle: Option<&str>) -> String {
    let mut bundle = new_ca.to_string();
    if let Some(previous) = old_bundle
        .map(certificates)
        .and_then(|c| c.into_iter().next())
        .filter(|c| c.trim() != new_ca.trim())
    {
        bundle.push_str(&previous);
    }
    bundle
}

/// Applies the Secret and writes the new caBundle into both webhook configurations.
pub async fn install(
    client: &kube::Client,
    namespace: &str,
    minted: &Minted,
) -> anyhow::Result<()> {
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Secret")),
    );
    secrets
        .patch(
            SECRET,
            &PatchParams::apply("sluice-certs").force(),
            &Patch::Apply(&minted.secret),
        )
        .await
        .map_err(|e| anyhow::anyhow!("writing Secret {namespace}/{SECRET}: {e}"))?;
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let api: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::from_gvk(&GroupVersionKind::gvk(
                "admissionregistration.k8s.io",
                "v1",
                kind,
            )),
        );
        let config = api.get_opt(NAME).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "{kind} {NAME} does not exist; install Sluice first (kubectl apply -k deploy/), then run sluice certs"
            )
        })?;
        let hooks = config.data["webhooks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ops: Vec<Value> = hooks
            .iter()
            .enumerate()
            .map(|(i, hook)| {
                let old = hook["clientConfig"]["caBundle"]
                    .as_str()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|b| String::from_utf8(b).ok());
                json!({
                    "op": "add",
                    "path": format!("/webhooks/{i}/clientConfig/caBundle"),
                    "value": b64(&rotated_bundle(&minted.ca_pem, old.as_deref())),
                })
            })
            .collect();
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))?;
        api.patch(NAME, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .map_err(|e| anyhow::anyhow!("writing the caBundle of {kind} {NAME}: {e}"))?;
    }
    Ok(())
}

/// The Secret and the caBundle as YAML, for `--print`.
pub fn render(minted: &Minted) -> anyhow::Result<String> {
    let secret = serde_saphyr::to_string(&minted.secret)?;
    Ok(format!(
        "# Secret for the webhook (kubectl apply -f -); serving certificate for {}\n{secret}---\n\
         # caBundle for both webhook configurations named {NAME} (clientConfig.caBundle):\n# {}\n",
        minted.names.join(", "),
        b64(&minted.ca_pem)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_carries_a_certificate_for_the_service_signed_by_the_ca() {
        crate::tls::install_crypto_provider();
        let m = mint("sluice-system").unwrap();
        assert_eq!(m.secret["metadata"]["name"], SECRET);
        assert_eq!(m.secret["type"], "kubernetes.io/tls");
        assert_eq!(m.names[0], "sluice.sluice-system.svc");
        let decode = |k: &str| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(m.secret["data"][k].as_str().unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(decode("ca.crt"), m.ca_pem);
        // The pair loads as the webhook loads it.
        crate::tls::server_config("test", &decode("tls.crt"), &decode("tls.key")).unwrap();
    }

    #[test]
    fn a_rotated_bundle_keeps_the_previous_ca_and_drops_older_ones() {
        let (a, b, c) = (
            "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n",
        );
        assert_eq!(rotated_bundle(a, None), a);
        assert_eq!(rotated_bundle(b, Some(a)), format!("{b}{a}"));
        assert_eq!(
            rotated_bundle(c, Some(&format!("{b}{a}"))),
            format!("{c}{b}")
        );
        assert_eq!(rotated_bundle(a, Some(a)), a, "no duplicate");
    }
}
