//! The kubeconfig files the sandbox writes: JSON (a YAML subset kubectl and kube read), one per
//! [`Identity`], with the CA inline and a bearer token.

use base64::Engine;
use serde_json::{Value, json};

use super::Identity;

/// The context and cluster name in every sandbox kubeconfig.
pub const CONTEXT: &str = "sluice-sandbox";

/// A kubeconfig for `who` against `server` (`https://127.0.0.1:PORT`) trusting `ca_pem`.
pub fn render(server: &str, ca_pem: &str, who: Identity) -> Value {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": who.username(), "user": {"token": who.token()}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": who.username(), "namespace": "default"}}],
        "current-context": CONTEXT,
        "preferences": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_reads_the_rendered_kubeconfig() {
        let doc = render("https://127.0.0.1:1234", "PEM", Identity::Sluice);
        let parsed = kube::config::Kubeconfig::from_yaml(&doc.to_string()).unwrap();
        assert_eq!(parsed.current_context.as_deref(), Some(CONTEXT));
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
        assert_eq!(
            parsed.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some("https://127.0.0.1:1234")
        );
    }
}
