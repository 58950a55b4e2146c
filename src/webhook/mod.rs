//! The admission webhook: TLS transport, `/mutate`, `/validate`, `/healthz`.
//!
//! ```text
//! kube-apiserver ──TLS──► axum (/mutate, /validate, /healthz)      server
//!                                │ Review::from_slice               review
//!                                ▼
//!                         mutate / validate (pure) ──► AdmissionResponse    admit
//!                                ▲
//!                         ClusterView (caches; never an API call here)      view
//! ```
//!
//! - [`revision`]: the template hash that names a revision.
//! - [`review`]: the lean parse of an AdmissionReview.
//! - [`view`]: what the webhook knows of the cluster, from the controller's caches.
//! - [`admit`]: the decisions (DESIGN §4 steps 2 and 7, §6, §7.4), with the enforcement checks
//!   in [`admit::enforce`] and the break-glass audit in [`admit::audit`].
//! - [`server`]: axum + rustls, certificates from files.

pub mod admit;
pub mod reload;
pub mod review;
pub mod revision;
pub mod server;
pub mod view;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use admit::{SLUICE_USER, mutate, validate, validate_at};
pub use review::Review;
pub use revision::revision;
pub use server::{Limits, Running, WebhookState, load_tls, serve, start, start_with};
pub use view::{ClusterView, NamespaceCache, POLICY_CONFIGMAP, StaticView};

/// Errors starting or running the webhook server. The message names the file or address and
/// says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "reading the webhook's {what} {path}: {source}; mount the Secret holding tls.crt and tls.key there (`sluice certs` writes one: a certificate for sluice.<namespace>.svc signed by the CA in the webhook configurations' caBundle)"
    )]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the webhook's certificate {cert} or key {key} is unusable: {source}")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: Box<crate::tls::Error>,
    },
    #[error("binding the webhook to {addr}: {source}; is another process listening there?")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving the webhook on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadFile { .. } => "read_file",
            Error::Tls { .. } => "tls",
            Error::Bind { .. } => "bind",
            Error::Serve { .. } => "serve",
        }
    }
}
