//! TLS material and configuration, with ring as the one crypto provider.
//!
//! - [`install_crypto_provider`] is called once by `main` and by every test harness; every
//!   dependency (kube, reqwest, axum-server) uses the process-wide default it installs.
//! - [`Ca`] mints a private CA and serving certificates with rcgen. The sandbox uses it for its
//!   API server and for webhook servers in tests; `sluice certs` will use it for the real one.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};

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

/// How long a CA from [`Ca::new`] is valid: rotating it means touching every `caBundle`.
pub const CA_YEARS: i32 = 10;
/// How long a serving certificate is valid; `sluice certs` issues a new one when run again.
pub const SERVING_YEARS: i32 = 1;

/// From the start of last year (so that a peer whose clock lags still accepts it) to the
/// first of this month `years` on (rcgen's default is 1975 to 4096).
fn set_validity(params: &mut CertificateParams, years: i32) {
    let (year, month) = this_year_and_month(std::time::SystemTime::now());
    params.not_before = date_time_ymd(year - 1, 1, 1);
    params.not_after = date_time_ymd(year + years, month, 1);
}

/// The UTC calendar year and month of `t`.
fn this_year_and_month(t: std::time::SystemTime) -> (i32, u8) {
    let stamp = humantime::format_rfc3339_seconds(t).to_string();
    let year = stamp[..4].parse().unwrap_or(2026);
    let month = stamp[5..7].parse().unwrap_or(1);
    (year, month)
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
        set_validity(&mut params, CA_YEARS);
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
        set_validity(&mut params, SERVING_YEARS);
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
    fn validity_is_read_from_the_utc_calendar() {
        let t = humantime::parse_rfc3339("2026-11-30T23:59:59Z").unwrap();
        assert_eq!(this_year_and_month(t), (2026, 11));
        let t = humantime::parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
        assert_eq!(this_year_and_month(t), (2027, 1));
    }

    #[test]
    fn garbage_pem_is_a_clear_error() {
        let err = server_config("webhook", "not a pem", "nope").unwrap_err();
        assert!(err.to_string().contains("no certificate found"), "{err}");
    }
}
