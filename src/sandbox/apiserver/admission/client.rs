//! The HTTPS edge of admission: where a webhook is (`url` or `service`), one reqwest client
//! per `caBundle` (and service address) trusting only that bundle, the POST under
//! `timeoutSeconds`, and transport failures worded as Go's HTTP client words them
//! (`Post "URL": dial tcp 127.0.0.1:9599: connect: connection refused`).
//!
//! Differences from kube-apiserver:
//! - An empty `caBundle` trusts nothing (kube-apiserver would fall back to the system roots):
//!   the sandbox never talks to webhooks signed by public CAs.
//! - A `service` is resolved through the [`ServiceResolver`] the sandbox is given, not through
//!   the Service's ClusterIP or endpoints; an unresolvable service reads
//!   `service "NAME" not found`.
//! - TLS failures other than an unknown authority or a wrong name are reported with rustls'
//!   wording, and a hostname in a `url` is reported as written, not as the IP it dialled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::config::ClientConfig;
use super::review::{CallError, timeout_param, unexpected_status};
use super::{ServiceRef, ServiceResolver};

/// Where one call goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The URL as kube-apiserver prints it in errors: `https://hook.ns.svc:443/path?timeout=10s`.
    pub display: String,
    /// The URL the request is sent to. For a service the port is left out so that the address
    /// from the resolver is dialled as it is.
    pub request: String,
    /// For a service: its reference and the TLS server name `NAME.NAMESPACE.svc`.
    pub service: Option<(ServiceRef, String)>,
    /// `host:port` as the dial error names it (for a service, filled in once resolved).
    pub dial: String,
}

/// Where `client_config` points, with `?timeout=Ns` added.
pub fn target(cc: &ClientConfig, timeout_seconds: i64) -> Result<Target, CallError> {
    let query = if timeout_seconds > 0 {
        format!("?timeout={}", timeout_param(timeout_seconds))
    } else {
        String::new()
    };
    if let Some(url) = cc.url.as_deref() {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| CallError::Client(format!("parse {url:?}: {e}")))?;
        if parsed.scheme() != "https" {
            return Err(CallError::Client(format!(
                "webhook URL {url:?}: 'https' is the only allowed URL scheme; serve the webhook over TLS"
            )));
        }
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let display = format!("{}://{authority}{path}{query}", parsed.scheme());
        let port = parsed.port_or_known_default().unwrap_or(443);
        let host = parsed.host_str().unwrap_or_default();
        let dial = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        return Ok(Target {
            request: display.clone(),
            display,
            service: None,
            dial,
        });
    }
    if let Some(svc) = cc.service.as_ref() {
        let port = svc.port.unwrap_or(443);
        let port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| {
            CallError::Client(format!(
                "service {}/{} port {port} is not a valid port number",
                svc.namespace, svc.name
            ))
        })?;
        let host = format!("{}.{}.svc", svc.name, svc.namespace);
        let path = match svc.path.as_deref() {
            None | Some("") => "/",
            Some(p) => p,
        };
        return Ok(Target {
            display: format!("https://{host}:{port}{path}{query}"),
            request: format!("https://{host}{path}{query}"),
            service: Some((
                ServiceRef {
                    namespace: svc.namespace.clone(),
                    name: svc.name.clone(),
                    port,
                },
                host.clone(),
            )),
            dial: format!("{host}:{port}"),
        });
    }
    Err(CallError::Client(
        "webhook configuration must have either service or URL".into(),
    ))
}

/// The message Go gives a transport error, without the `Post "URL": ` prefix.
fn transport_message(err: &reqwest::Error, dial: &str, server_name: &str) -> String {
    if err.is_timeout() {
        return "context deadline exceeded".into();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut chain = Vec::new();
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return tls_message(tls, server_name);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return format!("dial tcp {dial}: connect: connection refused");
                }
                std::io::ErrorKind::TimedOut => return "context deadline exceeded".into(),
                _ => {}
            }
            // `io::Error::source` skips the error it wraps (often another io::Error around
            // the rustls error); descend into it instead.
            if let Some(inner) = io.get_ref() {
                source = Some(inner);
                continue;
            }
        }
        chain.push(e.to_string());
        source = e.source();
    }
    chain.dedup();
    chain.join(": ")
}

fn tls_message(err: &rustls::Error, server_name: &str) -> String {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
                .into()
        }
        rustls::Error::InvalidCertificate(C::NotValidForNameContext { presented, .. }) => {
            format!(
                "tls: failed to verify certificate: {}",
                hostname_error(presented, server_name)
            )
        }
        rustls::Error::InvalidCertificate(C::NotValidForName) => format!(
            "tls: failed to verify certificate: x509: certificate is not valid for {server_name}"
        ),
        rustls::Error::InvalidCertificate(other) => {
            format!("tls: failed to verify certificate: x509: {other}")
        }
        other => format!("remote error: tls: {other}"),
    }
}

/// A client's identity: the `caBundle` it trusts and the service name it resolves, if any.
type ClientKey = (String, Option<(String, SocketAddr)>);

/// Go's `x509.HostnameError`: the certificate's DNS names when a name was wanted, its IP
/// addresses when an IP was. `presented` is rustls' list (`DnsName("a")`, `IpAddress(1.2.3.4)`).
fn hostname_error(presented: &[String], wanted: &str) -> String {
    let wanted_ip = wanted.parse::<std::net::IpAddr>().is_ok();
    let valid: Vec<&str> = presented
        .iter()
        .filter_map(|p| {
            let (kind, rest) = p.split_once('(')?;
            let value = rest.strip_suffix(')')?.trim_matches('"');
            match (kind, wanted_ip) {
                ("DnsName", false) | ("IpAddress", true) => Some(value),
                _ => None,
            }
        })
        .collect();
    if valid.is_empty() {
        if wanted_ip {
            return format!(
                "x509: cannot validate certificate for {wanted} because it doesn't contain any IP SANs"
            );
        }
        return format!(
            "x509: certificate is not valid for any names, but wanted to match {wanted}"
        );
    }
    format!(
        "x509: certificate is valid for {}, not {wanted}",
        valid.join(", ")
    )
}

/// The reqwest clients, one per `caBundle` and service override, kept for reuse so that
/// connections stay alive between calls.
#[derive(Default)]
pub struct Clients {
    cache: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

impl Clients {
    fn get(
        &self,
        ca_bundle: &str,
        resolve: Option<(String, SocketAddr)>,
    ) -> Result<reqwest::Client, CallError> {
        let key = (ca_bundle.to_string(), resolve);
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let client = build_client(&key.0, key.1.as_ref())?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, client.clone());
        Ok(client)
    }
}

fn build_client(
    ca_bundle: &str,
    resolve: Option<&(String, SocketAddr)>,
) -> Result<reqwest::Client, CallError> {
    let no_pem = || {
        CallError::Client(
            "unable to load root certificates: unable to parse bytes as PEM block".into(),
        )
    };
    let certs = if ca_bundle.is_empty() {
        Vec::new()
    } else {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(ca_bundle.trim())
            .map_err(|_| no_pem())?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| no_pem())?;
        if certs.is_empty() {
            return Err(no_pem());
        }
        certs
    };
    let mut builder = reqwest::Client::builder()
        .tls_certs_only(certs)
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90));
    if let Some((host, addr)) = resolve {
        builder = builder.resolve(host, *addr);
    }
    builder
        .build()
        .map_err(|e| CallError::Client(format!("building the HTTPS client: {e}")))
}

/// POSTs `body` to `target` within `timeout_seconds` and returns the 2xx body; anything else
/// is a [`CallError::Transport`] worded as kube-apiserver's REST client words it.
pub async fn post(
    clients: &Clients,
    resolver: &ServiceResolver,
    cc: &ClientConfig,
    target: &Target,
    timeout_seconds: i64,
    body: Vec<u8>,
) -> Result<bytes::Bytes, CallError> {
    let prefix = |msg: String| CallError::Transport(format!("Post {:?}: {msg}", target.display));
    let (resolve, dial, server_name) = match &target.service {
        Some((svc, host)) => {
            let Some(addr) = resolver(svc) else {
                return Err(prefix(format!("service {:?} not found", svc.name)));
            };
            (Some((host.clone(), addr)), addr.to_string(), host.clone())
        }
        None => {
            let host = target.dial.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
            (
                None,
                target.dial.clone(),
                host.trim_matches(['[', ']']).to_string(),
            )
        }
    };
    let client = clients.get(cc.ca_bundle.as_deref().unwrap_or(""), resolve)?;
    if timeout_seconds <= 0 {
        return Err(prefix("context deadline exceeded".into()));
    }
    let timeout = Duration::from_secs(timeout_seconds as u64);
    let call = async {
        let resp = client
            .post(&target.request)
            .header("content-type", "application/json")
            .header("accept", "application/json, */*")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| prefix(transport_message(&e, &dial, &server_name)))?;
        let status = resp.status().as_u16();
        let text = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/plain"));
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| prefix(transport_message(&e, &dial, &server_name)))?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        // A Status body is taken at its word, as Go's REST client does.
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes)
            && v.get("kind").and_then(Value::as_str) == Some("Status")
            && let Some(msg) = v.get("message").and_then(Value::as_str)
        {
            return Err(CallError::Transport(msg.to_string()));
        }
        let body_text = text.then(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(CallError::Transport(unexpected_status(
            status,
            body_text.as_deref(),
        )))
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(prefix("context deadline exceeded".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::ServiceReference;
    use super::*;

    #[test]
    fn a_url_is_used_as_written_with_the_timeout_added() {
        let cc = ClientConfig {
            url: Some("https://127.0.0.1:9557/slow".into()),
            ..Default::default()
        };
        let t = target(&cc, 1).unwrap();
        assert_eq!(t.display, "https://127.0.0.1:9557/slow?timeout=1s");
        assert_eq!(t.request, t.display);
        assert_eq!(t.dial, "127.0.0.1:9557");
        assert!(t.service.is_none());
    }

    #[test]
    fn a_service_is_named_name_namespace_svc_on_port_443_by_default() {
        let cc = ClientConfig {
            service: Some(ServiceReference {
                namespace: "sluice-system".into(),
                name: "sluice".into(),
                path: Some("/mutate".into()),
                port: None,
            }),
            ..Default::default()
        };
        let t = target(&cc, 10).unwrap();
        assert_eq!(
            t.display,
            "https://sluice.sluice-system.svc:443/mutate?timeout=10s"
        );
        assert_eq!(
            t.request,
            "https://sluice.sluice-system.svc/mutate?timeout=10s"
        );
        let (svc, host) = t.service.unwrap();
        assert_eq!(host, "sluice.sluice-system.svc");
        assert_eq!(
            svc,
            ServiceRef {
                namespace: "sluice-system".into(),
                name: "sluice".into(),
                port: 443
            }
        );
    }

    #[test]
    fn a_plain_http_url_is_refused() {
        let cc = ClientConfig {
            url: Some("http://127.0.0.1:9557/x".into()),
            ..Default::default()
        };
        let e = target(&cc, 10).unwrap_err();
        assert!(
            e.to_string()
                .contains("'https' is the only allowed URL scheme"),
            "{e}"
        );
    }

    #[test]
    fn a_client_config_without_url_or_service_is_refused() {
        let e = target(&ClientConfig::default(), 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "could not get REST client: webhook configuration must have either service or URL"
        );
    }

    #[test]
    fn a_wrong_name_lists_the_certificate_names_as_go_does() {
        let presented = [
            "DnsName(\"localhost\")".to_string(),
            "DnsName(\"hooks.ns.svc\")".to_string(),
            "IpAddress(127.0.0.1)".to_string(),
        ];
        assert_eq!(
            hostname_error(&presented, "other.ns.svc"),
            "x509: certificate is valid for localhost, hooks.ns.svc, not other.ns.svc"
        );
        assert_eq!(
            hostname_error(&presented, "10.0.0.1"),
            "x509: certificate is valid for 127.0.0.1, not 10.0.0.1"
        );
        assert_eq!(
            hostname_error(&presented[..2], "10.0.0.1"),
            "x509: cannot validate certificate for 10.0.0.1 because it doesn't contain any IP SANs"
        );
    }

    #[test]
    fn a_ca_bundle_that_is_not_pem_cannot_make_a_client() {
        let e = build_client(
            &base64::engine::general_purpose::STANDARD.encode("nope"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "could not get REST client: unable to load root certificates: unable to parse bytes as PEM block"
        );
    }
}
