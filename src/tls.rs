//! TLS material and configuration, with ring as the one crypto provider.
//!
//! - [`install_crypto_provider`] is called once by `main` and by every test harness; every
//!   dependency (kube, reqwest, axum-server) uses the process-wide default it installs.
//! - [`Ca`] mints a private CA and serving certificates with rcgen. The sandbox uses it for its
//!   API server and for webhook servers in tests; `sluice certs` will use it for the real one.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// Errors building TLS material. The message says which certificate or file was at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("generating certificate {what}: {source}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error(
        "reading PEM for {what}: {detail}; expected a PEM certificate chain and a PKCS#8, PKCS#1 or SEC1 private key"
    )]
    Pem { what: String, detail: String },
    #[error("building TLS configuration for {what}: {source}")]
    Rustls {
        what: String,
        #[source]
        source: rustls::Error,
    },
}

/// Installs ring as the process-wide rustls provider. Idempotent.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is exactly what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A private certificate authority that signs serving certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    /// Creates a self-signed CA named `common_name`.
    pub fn new(common_name: &str) -> Result<Self, Error> {
        let what = || format!("CA {common_name:?}");
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|source| Error::Generate {
                what: what(),
                source,
            })?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(|source| Error::Generate {
            what: what(),
            source,
        })?;
        let cert = params.self_signed(&key).map_err(|source| Error::Generate {
            what: what(),
            source,
        })?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM; this is what a kubeconfig or a `caBundle` carries.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a serving certificate for the given DNS names and IP addresses.
    pub fn issue(&self, dns_names: &[&str], ips: &[IpAddr]) -> Result<Issued, Error> {
        let what = || format!("serving certificate for {dns_names:?} {ips:?}");
        let mut sans: Vec<String> = dns_names.iter().map(|s| s.to_string()).collect();
        sans.extend(ips.iter().map(|ip| ip.to_string()));
        let mut params = CertificateParams::new(sans).map_err(|source| Error::Generate {
            what: what(),
            source,
        })?;
        if let Some(first) = dns_names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        let key = KeyPair::generate().map_err(|source| Error::Generate {
            what: what(),
            source,
        })?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Generate {
                what: what(),
                source,
            })?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A rustls server configuration (HTTP/2 and HTTP/1.1) from PEM material.
pub fn server_config(
    what: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    install_crypto_provider();
    let pem_err = |detail: String| Error::Pem {
        what: what.to_string(),
        detail,
    };
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no certificate found".into()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| pem_err(e.to_string()))?
        .ok_or_else(|| pem_err("no private key found".into()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| Error::Rustls {
            what: what.to_string(),
            source,
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_build_a_server_config() {
        let ca = Ca::new("sluice test CA").unwrap();
        let issued = ca
            .issue(&["localhost"], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        server_config("test", &issued.cert_pem, &issued.key_pem).unwrap();
    }

    #[test]
    fn garbage_pem_is_a_clear_error() {
        let err = server_config("webhook", "not a pem", "nope").unwrap_err();
        assert!(err.to_string().contains("no certificate found"), "{err}");
    }
}
