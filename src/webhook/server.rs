//! Transport only: TLS (rustls, ring), HTTP (axum), and turning bodies into [`Review`]s and
//! responses into JSON. The decisions are in [`admit`](super::admit).
//!
//! ```text
//! TCP (TCP_NODELAY) ─► rustls ─► axum ─┬─ POST /mutate   ─► Review ─► admit::mutate   ─► JSON
//!                                      ├─ POST /validate ─► Review ─► admit::validate ─► JSON
//!                                      └─ GET  /healthz  ─► "ok"
//!                          body that is not a review ─► 400 with the parse error
//!                          parse → decide → JSON is timed ─► Metrics (operation, verdict)
//! ```
//!
//! - Certificates are loaded before binding, so a bad one fails at start-up ([`load_tls`]).
//! - TLS only, 1.2 or 1.3 (rustls speaks nothing older); there is no plaintext port.
//! - Bodies up to 3 MiB are read ([`BODY_LIMIT`]): an update carries two objects of at most
//!   1.5 MiB each (etcd's limit), so anything larger is not from kube-apiserver and gets a 413.
//! - A client gets [`Limits::handshake`] to finish the TLS handshake and [`Limits::header_read`]
//!   to send a request's headers; a slow-loris connection is closed when either runs out.
//! - `TCP_NODELAY` is set on every connection: without it a response can wait for the
//!   client's delayed ACK, adding tens of milliseconds to an admission call.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper_util::rt::TokioTimer;
use kube::core::admission::AdmissionResponse;
use rustls::ServerConfig;
use tokio::task::JoinHandle;

use super::Error;
use super::admit::{self, SLUICE_USER};
use super::review::Review;
use super::view::ClusterView;
use crate::controller::run::Task;
use crate::metrics::{Metrics, Operation, Verdict};

/// Largest review body read; larger ones are answered 413.
pub const BODY_LIMIT: usize = 3 << 20;

/// How long a connection may take over its TLS handshake and over each request's headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From TCP accept to the end of the TLS handshake.
    pub handshake: Duration,
    /// For a request's headers to arrive (hyper's `header_read_timeout`).
    pub header_read: Duration,
}

impl Default for Limits {
    /// 10 s each: kube-apiserver sends a whole review at once, and waits at most 30 s
    /// (`timeoutSeconds`, 5 s in Sluice's registration) for the answer.
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
        }
    }
}

/// What the handlers share: the caches, the user whose requests pass untouched, and the
/// metrics every answer is timed into.
#[derive(Clone)]
pub struct WebhookState {
    pub view: Arc<dyn ClusterView>,
    pub sluice_user: Arc<str>,
    pub metrics: Metrics,
}

impl WebhookState {
    /// State over `view`, with Sluice's own service account ([`SLUICE_USER`]) and metrics of
    /// its own (see [`WebhookState::with_metrics`]).
    pub fn new(view: Arc<dyn ClusterView>) -> Self {
        Self {
            view,
            sluice_user: SLUICE_USER.into(),
            metrics: Metrics::new(),
        }
    }

    /// The same state, timing its answers into `metrics` (the registry `/metrics` serves).
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self { metrics, ..self }
    }
}

/// The webhook's routes.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn mutate(State(s): State<WebhookState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return unread_body(e),
    };
    timed(&s.metrics, Operation::Mutate, || {
        answer(&body, |r| admit::mutate(r, s.view.as_ref(), &s.sluice_user))
    })
}

async fn validate(State(s): State<WebhookState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return unread_body(e),
    };
    timed(&s.metrics, Operation::Validate, || {
        answer(&body, |r| {
            admit::validate(r, s.view.as_ref(), &s.sluice_user)
        })
    })
}

/// The answer to a body that could not be read: 413 past [`BODY_LIMIT`], else axum's own.
fn unread_body(e: BytesRejection) -> Response {
    if let BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) = e {
        tracing::warn!(limit = BODY_LIMIT, "admission review body too large");
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} MiB, more than kube-apiserver ever sends (two objects of at most 1.5 MiB); send an admission.k8s.io/v1 AdmissionReview",
                BODY_LIMIT >> 20
            ),
        )
            .into_response();
    }
    e.into_response()
}

/// Runs `answer` and observes how long it took, under the verdict it gave.
fn timed(
    metrics: &Metrics,
    operation: Operation,
    answer: impl FnOnce() -> (Response, Verdict),
) -> Response {
    let start = Instant::now();
    let (response, verdict) = answer();
    metrics.admission(operation, verdict, start.elapsed());
    response
}

/// Parses the review, decides, and encodes the answer; with the verdict for the metrics.
fn answer(body: &[u8], decide: impl FnOnce(&Review) -> AdmissionResponse) -> (Response, Verdict) {
    let review = match Review::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "malformed admission review");
            let response = (
                StatusCode::BAD_REQUEST,
                format!(
                    "the request body is not an AdmissionReview ({e}); send an admission.k8s.io/v1 AdmissionReview as JSON"
                ),
            )
                .into_response();
            return (response, Verdict::Error);
        }
    };
    let resp = decide(&review);
    if !resp.allowed {
        tracing::info!(uid = %resp.uid, message = %resp.result.message, "admission refused");
    }
    let verdict = Verdict::of(resp.allowed, resp.patch.is_some(), resp.result.code);
    let api_version = if review.api_version.starts_with("admission.k8s.io/") {
        review.api_version.as_str()
    } else {
        "admission.k8s.io/v1"
    };
    match encode_answer(&resp, api_version) {
        Ok(json) => (
            ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
            verdict,
        ),
        Err(e) => (
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the AdmissionReview response failed: {e}"),
            )
                .into_response(),
            Verdict::Error,
        ),
    }
}

/// The AdmissionReview answer as kube-apiserver reads it. Written here rather than through
/// kube's `AdmissionReview`, which encodes the patch as a JSON array of byte values (about
/// four characters per byte): the Kubernetes API's `[]byte` is a base64 string, a third of
/// that size and cheaper to write.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReview<'a> {
    api_version: &'a str,
    kind: &'static str,
    response: WireResponse<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    uid: &'a str,
    allowed: bool,
    status: &'a kube::core::Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    audit_annotations: &'a std::collections::HashMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a Vec<String>>,
}

/// The JSON body of the answer `resp`, for a review of `api_version`.
pub fn encode_answer(resp: &AdmissionResponse, api_version: &str) -> serde_json::Result<Vec<u8>> {
    use base64::Engine as _;
    let patch = resp
        .patch
        .as_ref()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
    serde_json::to_vec(&WireReview {
        api_version,
        kind: "AdmissionReview",
        response: WireResponse {
            uid: &resp.uid,
            allowed: resp.allowed,
            status: &resp.result,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            audit_annotations: &resp.audit_annotations,
            warnings: resp.warnings.as_ref(),
        },
    })
}

/// Loads the serving certificate chain and key (PEM) from files; the error names the file.
pub fn load_tls(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, Error> {
    let read = |what, path: &Path| {
        std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let cert = read("certificate", cert_path)?;
    let key = read("private key", key_path)?;
    let what = format!("webhook certificate {}", cert_path.display());
    crate::tls::server_config(&what, &cert, &key).map_err(|source| Error::Tls {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source: Box::new(source),
    })
}

/// A webhook server running in the background.
pub struct Running {
    addr: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    task: JoinHandle<Result<(), Error>>,
    tls: RustlsConfig,
}

impl Running {
    /// The address it listens on (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the server stops; an error if it failed.
    pub async fn wait(self) -> Result<(), Error> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(Error::Serve {
                addr: self.addr,
                source: std::io::Error::other(e),
            }),
        }
    }

    /// Re-reads `cert` and `key` every `every` and serves the new pair to new connections when
    /// they change ([`reload`](super::reload)); stops when the returned task is dropped.
    pub fn reload_tls_from(&self, cert: PathBuf, key: PathBuf, every: Duration) -> Task {
        super::reload::watch(self.tls.clone(), cert, key, every)
    }

    /// Stops at once, cutting requests in flight, as a killed process would.
    pub fn kill(self) {
        self.handle.shutdown();
        self.task.abort();
    }

    /// Stops accepting, lets requests in flight finish (up to [`IN_FLIGHT_GRACE`]), and waits.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.handle.graceful_shutdown(Some(IN_FLIGHT_GRACE));
        self.wait().await
    }
}

/// How long a stopping webhook lets admissions in flight finish: kube-apiserver gives up on a
/// call after the webhook's `timeoutSeconds` (5 in `deploy/`, which a test keeps at or below
/// this), so waiting longer would answer no one.
pub const IN_FLIGHT_GRACE: Duration = Duration::from_secs(5);

/// Binds `addr` and serves the webhook over TLS in the background, with the default [`Limits`].
pub async fn start(
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
    state: WebhookState,
) -> Result<Running, Error> {
    start_with(addr, tls, state, Limits::default()).await
}

/// [`start`], with the given time limits on slow clients.
pub async fn start_with(
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
    state: WebhookState,
    limits: Limits,
) -> Result<Running, Error> {
    let bind = |source| Error::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    let tls = RustlsConfig::from_config(tls);
    let acceptor = RustlsAcceptor::new(tls.clone())
        .handshake_timeout(limits.handshake)
        .acceptor(NoDelayAcceptor::new());
    let handle = axum_server::Handle::new();
    let mut server = axum_server::from_tcp(listener)
        .map_err(bind)?
        .acceptor(acceptor)
        .handle(handle.clone());
    server
        .http_builder()
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let app = router(state);
    let task = tokio::spawn(async move {
        server
            .serve(app.into_make_service())
            .await
            .map_err(|source| Error::Serve {
                addr: local,
                source,
            })
    });
    Ok(Running {
        addr: local,
        handle,
        task,
        tls,
    })
}

/// Serves the webhook on `addr` until the server fails.
pub async fn serve(
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
    state: WebhookState,
) -> Result<(), Error> {
    start(addr, tls, state).await?.wait().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_certificate_names_the_file_and_the_fix() {
        let err = load_tls(
            Path::new("/nonexistent/tls.crt"),
            Path::new("/nonexistent/tls.key"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/tls.crt"), "{msg}");
        assert!(msg.contains("tls.crt and tls.key"), "{msg}");
        assert_eq!(err.metric_label(), "read_file");
    }

    #[test]
    fn a_garbage_certificate_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let msg = load_tls(&cert, &key).unwrap_err().to_string();
        assert!(msg.contains("tls.crt"), "{msg}");
        assert!(msg.contains("no certificate found"), "{msg}");
    }

    #[test]
    fn a_body_that_is_not_a_review_is_a_400_that_says_so() {
        let (resp, verdict) = answer(b"{\"request\":", |_| unreachable!("never decided"));
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(verdict, Verdict::Error);
    }

    #[test]
    fn every_answer_is_timed_under_its_operation_and_verdict() {
        let metrics = Metrics::new();
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        let refuse = |code: u16| {
            move |_: &Review| {
                let mut resp = AdmissionResponse::invalid("refused");
                resp.result.code = code;
                resp
            }
        };
        timed(&metrics, Operation::Validate, || answer(body, refuse(403)));
        timed(&metrics, Operation::Mutate, || answer(body, refuse(503)));
        timed(&metrics, Operation::Mutate, || answer(b"nope", refuse(403)));
        let text = metrics.encode();
        for (labels, count) in [
            (r#"operation="validate",verdict="denied""#, 1),
            (r#"operation="mutate",verdict="error""#, 2),
        ] {
            let line =
                format!("sluice_webhook_admission_duration_seconds_count{{{labels}}} {count}");
            assert!(text.contains(&line), "{line} in {text}");
        }
    }
}
