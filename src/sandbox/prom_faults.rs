//! A faulty Prometheus for the fault-injection tests: a small HTTP front that stands where
//! Sluice's `--prometheus-url` points and forwards `/api/v1/query` to the sandbox's real
//! Prometheus (or built-in endpoint), except for the namespaces it has been told to fail.
//!
//! ```text
//! Sluice ──POST /api/v1/query──► PrometheusFaults ── query names namespace="N"? ──┐
//!                                    │ N has no fault: forward ──► upstream Prometheus
//!                                    └ N has a fault: Slow (wait, then forward) | NaN | Garbage
//! ```
//!
//! - Faults are chosen per namespace, read from the query's `namespace="…"` matcher, so one
//!   Sluice can face a different fault in each of several namespaces at once. A query that names
//!   no namespace is forwarded.
//! - [`PromFault::Slow`] waits before forwarding, as an overloaded Prometheus does; beyond the
//!   client's timeout Sluice sees a timeout.
//! - [`PromFault::NaN`] answers a well-formed vector whose only sample is `NaN`, as Prometheus
//!   does for `0/0`.
//! - [`PromFault::Garbage`] answers `200 OK` with an HTML body, as a misconfigured proxy or a
//!   wrong port does.
//! - A stopped Prometheus is not simulated here: kill the real one
//!   ([`QueryBackend::kill`](super::prometheus::QueryBackend::kill)) and point Sluice at it
//!   directly, so that Sluice sees the refused connection itself.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;

use super::prometheus::serve_until_stopped;

/// How the front fails the queries of one namespace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PromFault {
    /// Wait this long, then forward.
    Slow(Duration),
    /// Answer one sample whose value is `NaN`.
    NaN,
    /// Answer `200 OK` with a body that is not a query response.
    Garbage,
}

/// The body [`PromFault::Garbage`] answers.
pub const GARBAGE: &str = "<html><body><h1>It works!</h1></body></html>\n";

/// Errors starting the front.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the faulty Prometheus front to 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("building the faulty Prometheus front's client for {upstream}: {source}")]
    Client {
        upstream: String,
        #[source]
        source: reqwest::Error,
    },
}

type Faults = Arc<Mutex<BTreeMap<String, PromFault>>>;

#[derive(Clone)]
struct Front {
    faults: Faults,
    http: reqwest::Client,
    upstream_query: String,
}

/// The running front. Dropping it stops it.
pub struct PrometheusFaults {
    url: String,
    faults: Faults,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl PrometheusFaults {
    /// Serves on a free 127.0.0.1 port, forwarding to the Prometheus at `upstream` (a base URL).
    pub async fn start(upstream: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|source| Error::Client {
                upstream: upstream.to_string(),
                source,
            })?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .map_err(Error::Bind)?;
        let local = listener.local_addr().map_err(Error::Bind)?;
        let faults = Faults::default();
        let front = Front {
            faults: faults.clone(),
            http,
            upstream_query: format!("{}/api/v1/query", upstream.trim_end_matches('/')),
        };
        let app = Router::new()
            .route("/api/v1/query", get(query_get).post(query_post))
            .with_state(front);
        let (stop, task) = serve_until_stopped(listener, app, "the faulty Prometheus front");
        Ok(Self {
            url: format!("http://{local}"),
            faults,
            stop: Some(stop),
            task,
        })
    }

    /// The base URL to give Sluice as its Prometheus.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fails the queries about `namespace` with `fault` from now on; `None` forwards them again.
    pub fn set(&self, namespace: &str, fault: Option<PromFault>) {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        match fault {
            Some(f) => faults.insert(namespace.to_string(), f),
            None => faults.remove(namespace),
        };
    }

    /// Stops serving.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for PrometheusFaults {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The namespace a PromQL query selects with `namespace="…"`, if any (the first one).
pub fn namespace_of(promql: &str) -> Option<&str> {
    let start = promql.find("namespace=\"")? + "namespace=\"".len();
    let len = promql[start..].find('"')?;
    Some(&promql[start..start + len])
}

/// What the front answers for `fault` without asking upstream, at Unix time `now`; `None` for
/// a fault that forwards ([`PromFault::Slow`]).
pub fn fault_answer(fault: PromFault, now: f64) -> Option<(StatusCode, &'static str, String)> {
    match fault {
        PromFault::Slow(_) => None,
        PromFault::NaN => Some((
            StatusCode::OK,
            "application/json",
            serde_json::json!({
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [now, "NaN"]}]},
            })
            .to_string(),
        )),
        PromFault::Garbage => Some((StatusCode::OK, "text/html", GARBAGE.to_string())),
    }
}

type Params = Vec<(String, String)>;

async fn query_get(State(front): State<Front>, Query(params): Query<Params>) -> Response {
    answer(front, params).await
}

async fn query_post(State(front): State<Front>, Form(params): Form<Params>) -> Response {
    answer(front, params).await
}

async fn answer(front: Front, params: Params) -> Response {
    let fault = params
        .iter()
        .find(|(k, _)| k == "query")
        .and_then(|(_, q)| namespace_of(q))
        .and_then(|ns| {
            let faults = front.faults.lock().unwrap_or_else(|e| e.into_inner());
            faults.get(ns).copied()
        });
    if let Some(fault) = fault {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        if let Some((status, content_type, body)) = fault_answer(fault, now) {
            return (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        }
        if let PromFault::Slow(delay) = fault {
            tokio::time::sleep(delay).await;
        }
    }
    forward(&front, &params).await
}

async fn forward(front: &Front, params: &Params) -> Response {
    let upstream = match front
        .http
        .post(&front.upstream_query)
        .form(params)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!(
                    "the faulty Prometheus front cannot reach {}: {e}",
                    front.upstream_query
                ),
            )
                .into_response();
        }
    };
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::OK);
    let content_type = upstream
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    match upstream.bytes().await {
        Ok(body) => (status, [(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("reading {}'s answer: {e}", front.upstream_query),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::prometheus::{PromError, decode_response};

    #[test]
    fn the_namespace_is_read_from_the_first_namespace_matcher() {
        let q = r#"sum(rate(response_total{namespace="shop-1",deployment="podinfo"}[3s]))"#;
        assert_eq!(namespace_of(q), Some("shop-1"));
        assert_eq!(namespace_of("sum(up)"), None);
        assert_eq!(namespace_of(r#"up{namespace="unterminated"#), None);
    }

    #[test]
    fn a_nan_answer_is_a_query_response_that_sluice_refuses_as_not_a_number() {
        let (status, _, body) = fault_answer(PromFault::NaN, 1.0).unwrap();
        let got = decode_response("u", "q", status.as_u16(), body.as_bytes());
        assert!(matches!(got, Err(PromError::NotFinite { .. })), "{got:?}");
    }

    #[test]
    fn a_garbage_answer_is_refused_as_not_a_query_response() {
        let (status, _, body) = fault_answer(PromFault::Garbage, 1.0).unwrap();
        let got = decode_response("u", "q", status.as_u16(), body.as_bytes());
        assert!(matches!(got, Err(PromError::Unparseable { .. })), "{got:?}");
    }

    #[test]
    fn a_slow_fault_forwards_after_its_delay() {
        assert_eq!(
            fault_answer(PromFault::Slow(Duration::from_secs(1)), 1.0),
            None
        );
    }
}
