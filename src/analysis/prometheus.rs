//! A small client for Prometheus' HTTP API: instant queries that must come back as one number,
//! from a Prometheus that may require credentials and TLS with a private CA.
//!
//! ```text
//! PromClient::query ──POST /api/v1/query (query, time) + Authorization──► Prometheus
//!        ◄── Sample::Value(f64) | Sample::Empty | PromError        (each query ≤ timeout)
//!        └─► Metrics: query duration, errors by reason
//! ```
//!
//! Every way a query can go wrong is a [`PromError`] that names the URL or the query and says
//! what to do; the analysis turns it into a failed check with that reason, never a crash and never
//! a silent pass. Decoding the body is a pure function ([`decode_response`]), tested without a
//! server. A body that is not what Prometheus sends is an error, never a panic.
//!
//! # Prometheus in production (`sluice serve` flags, each with an env twin)
//! - `--prometheus-secret NAME` (`SLUICE_PROMETHEUS_SECRET`): a Secret in Sluice's own namespace
//!   with the keys of Flagger's MetricTemplate `secretRef`: `token` (sent as
//!   `Authorization: Bearer`), or `username` and `password` (basic auth). Both kinds, or half of
//!   basic auth, is a start error; so is a missing Secret or key, naming the Secret, the key and
//!   the `kubectl create secret` that fixes it ([`access::credentials_from_data`]). Sluice's
//!   Role may `get` only that Secret (`resourceNames` in deploy/base/rbac.yaml, which names
//!   `sluice-prometheus`; another name needs the Role changed too).
//! - Rotation: when Prometheus answers 401 or 403, the Secret is read again (at most once per
//!   [`access::RELOAD_EVERY`]), and if the credentials changed the query is tried once more, so
//!   a rotation costs no failed check. Otherwise the check fails with "Prometheus at URL refused
//!   the credentials (HTTP 401); check Secret NS/NAME". Credentials are never logged.
//! - `--prometheus-ca FILE` (`SLUICE_PROMETHEUS_CA`): a PEM bundle added to the system's trust
//!   roots, read at start (an unreadable file or one without a certificate stops the start).
//!   Mount it from a ConfigMap or Secret. The CA is a file, not a key of the credentials Secret:
//!   a CA is public, rarely rotates with the credentials, and is usually shared with other
//!   clients as a ConfigMap (as `kube-root-ca.crt`). A TLS failure (an untrusted certificate,
//!   or a server that does not speak TLS) fails the check with a reason naming
//!   `--prometheus-ca`.
//! - `--prometheus-timeout` (`SLUICE_PROMETHEUS_TIMEOUT`, humantime, default `10s`): bounds each
//!   query from connect to the last byte of the answer. A query beyond it fails the check with
//!   a reason naming the URL and the timeout.
//! - Credentials over plain `http://` are sent (as Flagger does) with a warning at start.
//! - With metrics attached ([`PromClient::with_metrics`]) each query is timed and each answer
//!   that gives no number counted by [`PromError::query_error_reason`] (see [`crate::metrics`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::metrics::Metrics;

pub mod access;

pub use access::{Access, AccessError, CaBundle, Credentials, SecretRef};

/// The answer to an instant query that was asked to aggregate to a single number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sample {
    /// One finite value.
    Value(f64),
    /// No series matched (e.g. no traffic at all in the window).
    Empty,
}

/// Errors querying Prometheus. Each message names the URL or the query at fault.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error(
        "Prometheus at {url} refused the credentials (HTTP {status}); {}",
        match secret {
            Some(secret) => format!("check Secret {secret}"),
            None => "it requires credentials: pass a Secret with --prometheus-secret".to_string(),
        }
    )]
    Unauthorized {
        url: String,
        status: u16,
        /// The Secret the credentials came from (`namespace/name`), if any.
        secret: Option<String>,
    },
    #[error(
        "TLS with Prometheus at {url} failed: {reason}; {}",
        match ca {
            Some(ca) => format!("check that --prometheus-ca {} holds the CA that signed Prometheus' certificate", ca.display()),
            None => "if a private CA signed Prometheus' certificate, pass it with --prometheus-ca".to_string(),
        }
    )]
    Tls {
        url: String,
        /// The TLS library's words (e.g. `invalid peer certificate: UnknownIssuer`).
        reason: String,
        /// The `--prometheus-ca` file in use, if any.
        ca: Option<PathBuf>,
    },
    #[error("Prometheus URL {url:?} is not a valid http(s) URL: {reason}; check --prometheus-url")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "cannot reach Prometheus at {url}: {reason}; check --prometheus-url and that Prometheus is running"
    )]
    Unreachable {
        url: String,
        /// The transport's causes, innermost last (e.g. `tcp connect error: Connection refused`).
        reason: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Prometheus at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("Prometheus at {url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Prometheus refused query `{query}` ({error_type}): {error}")]
    Api {
        query: String,
        error_type: String,
        error: String,
    },
    #[error("Prometheus at {url} sent a body that is not a query response ({reason}): {body}")]
    Unparseable {
        url: String,
        reason: String,
        body: String,
    },
    #[error("query `{query}` returned no data; is there traffic, and does the query select it?")]
    EmptyResult { query: String },
    #[error("query `{query}` returned {value}, not a number (e.g. 0/0 when there was no traffic)")]
    NotFinite { query: String, value: String },
    #[error(
        "query `{query}` returned {count} series; it must aggregate to one (wrap it in sum(...))"
    )]
    MultipleSeries { query: String, count: usize },
    #[error(
        "query `{query}` returned a {result_type}; it must return an instant vector or a scalar"
    )]
    UnexpectedResultType { query: String, result_type: String },
}

impl PromError {
    /// A short, stable label for metrics (as kube-rs controller-rs does).
    pub fn metric_label(&self) -> &'static str {
        match self {
            PromError::Unauthorized { .. } => "unauthorized",
            PromError::Tls { .. } => "tls",
            PromError::InvalidUrl { .. } => "invalid_url",
            PromError::Unreachable { .. } => "unreachable",
            PromError::Timeout { .. } => "timeout",
            PromError::Http { .. } => "http_error",
            PromError::Api { .. } => "api_error",
            PromError::Unparseable { .. } => "unparseable",
            PromError::EmptyResult { .. } => "empty_result",
            PromError::NotFinite { .. } => "not_finite",
            PromError::MultipleSeries { .. } => "multiple_series",
            PromError::UnexpectedResultType { .. } => "unexpected_result_type",
        }
    }

    /// The `reason` of `sluice_prometheus_query_errors_total`: a coarse class an operator can
    /// alert on (see [`crate::metrics`]).
    pub fn query_error_reason(&self) -> &'static str {
        match self {
            PromError::Timeout { .. } => "timeout",
            PromError::InvalidUrl { .. } | PromError::Unreachable { .. } => "unreachable",
            PromError::Tls { .. } => "tls",
            PromError::Unauthorized { .. } => "auth",
            PromError::Http { .. } | PromError::Api { .. } => "http",
            PromError::Unparseable { .. }
            | PromError::MultipleSeries { .. }
            | PromError::UnexpectedResultType { .. } => "bad_response",
            PromError::NotFinite { .. } => "nan",
            PromError::EmptyResult { .. } => "empty",
        }
    }
}

/// How to reach Prometheus beyond its URL: the per-query timeout, extra trust roots and the
/// credentials (see the module doc).
#[derive(Debug)]
pub struct Connection {
    /// Each query (connect, send, read the answer) is bounded by it.
    pub timeout: Duration,
    /// CA certificates added to the system's trust roots (`--prometheus-ca`).
    pub ca: Option<CaBundle>,
    /// The credentials sent with each query.
    pub access: Access,
}

impl Connection {
    /// A timeout and nothing else: the system's roots, no credentials.
    pub fn plain(timeout: Duration) -> Connection {
        Connection {
            timeout,
            ca: None,
            access: Access::none(),
        }
    }
}

/// A Prometheus HTTP API client for instant queries; cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct PromClient {
    http: reqwest::Client,
    query_url: String,
    timeout: Duration,
    ca: Option<PathBuf>,
    access: Arc<Access>,
    metrics: Option<Metrics>,
}

impl PromClient {
    /// A client for the Prometheus at `base_url` (e.g. `http://prometheus.linkerd-viz:9090`),
    /// giving up on each query after `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, PromError> {
        Self::connect(base_url, Connection::plain(timeout))
    }

    /// A client for the Prometheus at `base_url` with `connection`'s timeout, CA and
    /// credentials.
    pub fn connect(base_url: &str, connection: Connection) -> Result<Self, PromError> {
        let invalid = |reason: &str| PromError::InvalidUrl {
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let parsed = reqwest::Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder().timeout(connection.timeout);
        if let Some(ca) = &connection.ca {
            builder = builder.tls_certs_merge(ca.certs.iter().cloned());
        }
        let http = builder.build().map_err(|e| invalid(&causes(&e)))?;
        if parsed.scheme() == "http" && connection.access.current() != Credentials::None {
            let from = connection
                .access
                .secret()
                .map(|secret| format!(" of Secret {secret}"))
                .unwrap_or_default();
            tracing::warn!(
                "Prometheus URL {base_url} is plain http: the credentials{from} travel unencrypted; use https"
            );
        }
        Ok(Self {
            http,
            query_url: format!("{}/api/v1/query", base_url.trim_end_matches('/')),
            timeout: connection.timeout,
            ca: connection.ca.map(|ca| ca.path),
            access: Arc::new(connection.access),
            metrics: None,
        })
    }

    /// Records each query's duration and errors in `metrics` (`sluice_prometheus_query_*`).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs `promql` as an instant query at `at` (Prometheus' "now" if `None`). A result with
    /// several series, NaN or ±Inf is an error; no series at all is [`Sample::Empty`]. When
    /// Prometheus refuses the credentials and the Secret changed since it was read, the query
    /// is tried once more with the new ones.
    pub async fn query(&self, promql: &str, at: Option<SystemTime>) -> Result<Sample, PromError> {
        let started = Instant::now();
        let mut answer = self.query_once(promql, at).await;
        if matches!(answer, Err(PromError::Unauthorized { .. }))
            && self.access.reload_if_due().await
        {
            answer = self.query_once(promql, at).await;
        }
        if let Some(metrics) = &self.metrics {
            let error = match &answer {
                Ok(Sample::Value(_)) => None,
                Ok(Sample::Empty) => Some("empty"),
                Err(e) => Some(e.query_error_reason()),
            };
            metrics.prometheus_query(started.elapsed(), error);
        }
        answer
    }

    async fn query_once(&self, promql: &str, at: Option<SystemTime>) -> Result<Sample, PromError> {
        let mut form = vec![("query", promql.to_string())];
        if let Some(at) = at {
            form.push(("time", unix_seconds(at)));
        }
        let request = self.access.current().apply(self.http.post(&self.query_url));
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        if let Some(refused) = refused(
            &self.query_url,
            status,
            self.access.secret().map(ToString::to_string),
        ) {
            return Err(refused);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        decode_response(&self.query_url, promql, status, &body)
    }

    /// Like [`query`](Self::query), but no data is an error too: for checks that need a value.
    pub async fn query_value(
        &self,
        promql: &str,
        at: Option<SystemTime>,
    ) -> Result<f64, PromError> {
        match self.query(promql, at).await? {
            Sample::Value(v) => Ok(v),
            Sample::Empty => Err(PromError::EmptyResult {
                query: promql.to_string(),
            }),
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> PromError {
        classify_transport(&self.query_url, self.timeout, self.ca.as_deref(), e)
    }
}

/// The error of a 401 or 403 answer: Prometheus (or the proxy in front of it) refused the
/// credentials; `secret` names where they came from.
pub fn refused(url: &str, status: u16, secret: Option<String>) -> Option<PromError> {
    matches!(status, 401 | 403).then(|| PromError::Unauthorized {
        url: url.to_string(),
        status,
        secret,
    })
}

/// What a transport error means: the timeout, a TLS failure (certificate not trusted, not
/// TLS at all), or Prometheus unreachable.
fn classify_transport(
    url: &str,
    timeout: Duration,
    ca: Option<&Path>,
    e: reqwest::Error,
) -> PromError {
    if e.is_timeout() {
        return PromError::Timeout {
            url: url.to_string(),
            timeout,
        };
    }
    match tls_failure(&e) {
        Some(reason) => PromError::Tls {
            url: url.to_string(),
            reason,
            ca: ca.map(Path::to_path_buf),
        },
        None => PromError::Unreachable {
            url: url.to_string(),
            reason: causes(&e),
            source: e,
        },
    }
}

/// The rustls error under a transport error, in its own words, if TLS is what failed. An
/// `io::Error` wrapping another error reports its inner error's source, not the inner error
/// itself, so the walk steps into it (reqwest nests two: `Other` around `InvalidData`).
fn tls_failure(e: &reqwest::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(cause) = next {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        next = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    None
}

/// The causes under a transport error, joined: reqwest's own message only repeats the URL.
fn causes(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        parts.push(cause.to_string());
        next = cause.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// Decodes an `/api/v1/query` answer (HTTP `status`, `body`) to one sample.
pub fn decode_response(
    url: &str,
    query: &str,
    status: u16,
    body: &[u8],
) -> Result<Sample, PromError> {
    let text = || snippet(body);
    let unparseable = |reason: &str| PromError::Unparseable {
        url: url.to_string(),
        reason: reason.to_string(),
        body: text(),
    };
    if let Some(refused) = refused(url, status, None) {
        return Err(refused);
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    // Prometheus answers errors with 400/422/503 and a JSON body: its words are the best reason.
    if let Some(j) = &json
        && j["status"] == "error"
    {
        return Err(PromError::Api {
            query: query.to_string(),
            error_type: j["errorType"].as_str().unwrap_or("unknown").to_string(),
            error: j["error"].as_str().unwrap_or("(no message)").to_string(),
        });
    }
    if !(200..300).contains(&status) {
        return Err(PromError::Http {
            url: url.to_string(),
            status,
            body: text(),
        });
    }
    let json = json.ok_or_else(|| unparseable("not JSON"))?;
    if json["status"] != "success" {
        return Err(unparseable(
            "\"status\" is neither \"success\" nor \"error\"",
        ));
    }
    let data = &json["data"];
    let result_type = data["resultType"]
        .as_str()
        .ok_or_else(|| unparseable("no data.resultType"))?;
    let value = match result_type {
        "scalar" => &data["result"],
        "vector" => {
            let series = data["result"]
                .as_array()
                .ok_or_else(|| unparseable("data.result is not an array"))?;
            match series.as_slice() {
                [] => return Ok(Sample::Empty),
                [one] => &one["value"],
                many => {
                    return Err(PromError::MultipleSeries {
                        query: query.to_string(),
                        count: many.len(),
                    });
                }
            }
        }
        other => {
            return Err(PromError::UnexpectedResultType {
                query: query.to_string(),
                result_type: other.to_string(),
            });
        }
    };
    let raw = value[1]
        .as_str()
        .ok_or_else(|| unparseable("a sample is not [timestamp, \"value\"]"))?;
    let v = parse_prom_float(raw).ok_or_else(|| unparseable("a sample value is not a number"))?;
    if !v.is_finite() {
        return Err(PromError::NotFinite {
            query: query.to_string(),
            value: raw.to_string(),
        });
    }
    Ok(Sample::Value(v))
}

/// Parses a sample value as Prometheus writes it (`1.5`, `NaN`, `+Inf`, `-Inf`).
fn parse_prom_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        s if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// A Unix timestamp in seconds with millisecond precision, as Prometheus' `time` parameter.
fn unix_seconds(at: SystemTime) -> String {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => format!("{}.{:03}", d.as_secs(), d.subsec_millis()),
        // Before 1970: Prometheus accepts negative timestamps.
        Err(e) => format!("-{:.3}", e.duration().as_secs_f64()),
    }
}

/// At most 200 characters of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().nth(200).is_some() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://prom:9090/api/v1/query";

    fn decode(status: u16, body: &str) -> Result<Sample, PromError> {
        decode_response(URL, "q", status, body.as_bytes())
    }

    #[test]
    fn a_single_series_vector_is_its_value() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.5,"99.25"]}]}}"#;
        assert_eq!(decode(200, body).unwrap(), Sample::Value(99.25));
    }

    #[test]
    fn a_scalar_is_its_value() {
        let body =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        assert_eq!(decode(200, body).unwrap(), Sample::Value(3.0));
    }

    #[test]
    fn an_empty_vector_is_empty() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(decode(200, body).unwrap(), Sample::Empty);
    }

    #[test]
    fn several_series_are_refused_naming_the_count() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#;
        let err = decode(200, body).unwrap_err();
        assert!(
            matches!(err, PromError::MultipleSeries { count: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("2 series"), "{err}");
    }

    #[test]
    fn nan_and_infinities_are_not_values() {
        for v in ["NaN", "+Inf", "-Inf"] {
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{v}"]}}]}}}}"#
            );
            let err = decode(200, &body).unwrap_err();
            assert_eq!(err.metric_label(), "not_finite", "{v}: {err}");
        }
    }

    #[test]
    fn a_prometheus_error_keeps_its_type_and_words() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"1:1: parse error: unexpected end of input"}"#;
        match decode(400, body).unwrap_err() {
            PromError::Api {
                error_type, error, ..
            } => {
                assert_eq!(error_type, "bad_data");
                assert_eq!(error, "1:1: parse error: unexpected end of input");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_non_json_error_status_is_an_http_error() {
        let err = decode(502, "<html>Bad Gateway</html>").unwrap_err();
        assert!(matches!(err, PromError::Http { status: 502, .. }), "{err}");
        assert!(err.to_string().contains("Bad Gateway"), "{err}");
    }

    #[test]
    fn garbage_is_unparseable_never_a_panic() {
        let bodies = [
            "",
            "not json",
            "[]",
            "null",
            r#"{"status":"success"}"#,
            r#"{"status":"maybe","data":{}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":{}}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":7}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,2]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"abc"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"infinity"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"scalar","result":"x"}}"#,
        ];
        for body in bodies {
            let err = decode(200, body).unwrap_err();
            assert_eq!(err.metric_label(), "unparseable", "{body}: {err}");
        }
    }

    #[test]
    fn a_matrix_is_refused_as_the_wrong_result_type() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        let err = decode(200, body).unwrap_err();
        assert_eq!(err.metric_label(), "unexpected_result_type", "{err}");
    }

    #[test]
    fn refuses_a_url_that_is_not_http() {
        for url in ["prometheus:9090", "ftp://prom", "not a url"] {
            let err = PromClient::new(url, Duration::from_secs(1)).unwrap_err();
            assert_eq!(err.metric_label(), "invalid_url", "{url}");
            assert!(err.to_string().contains("--prometheus-url"), "{err}");
        }
    }

    #[test]
    fn a_401_or_403_is_a_refusal_naming_the_secret_and_other_statuses_are_not() {
        let err = refused(URL, 401, Some("sluice-system/prom-auth".into())).unwrap();
        assert_eq!(
            err.to_string(),
            "Prometheus at http://prom:9090/api/v1/query refused the credentials (HTTP 401); check Secret sluice-system/prom-auth"
        );
        assert_eq!(err.query_error_reason(), "auth");
        let err = refused(URL, 403, None).unwrap();
        assert!(err.to_string().contains("--prometheus-secret"), "{err}");
        for status in [200, 400, 404, 500] {
            assert!(refused(URL, status, None).is_none(), "{status}");
        }
        let decoded = decode(401, "Unauthorized\n").unwrap_err();
        assert!(
            matches!(decoded, PromError::Unauthorized { status: 401, .. }),
            "{decoded}"
        );
    }

    #[test]
    fn a_tls_failure_names_the_ca_flag_with_or_without_a_file() {
        let with = PromError::Tls {
            url: URL.into(),
            reason: "invalid peer certificate: UnknownIssuer".into(),
            ca: Some("/etc/prom-ca/ca.crt".into()),
        };
        assert!(
            with.to_string()
                .contains("check that --prometheus-ca /etc/prom-ca/ca.crt holds the CA"),
            "{with}"
        );
        let without = PromError::Tls {
            url: URL.into(),
            reason: "invalid peer certificate: UnknownIssuer".into(),
            ca: None,
        };
        assert!(
            without.to_string().contains("pass it with --prometheus-ca"),
            "{without}"
        );
        assert_eq!(without.query_error_reason(), "tls");
    }

    #[test]
    fn a_timeout_names_the_url_and_the_timeout() {
        let err = PromError::Timeout {
            url: URL.into(),
            timeout: Duration::from_millis(500),
        };
        let msg = err.to_string();
        assert!(msg.contains(URL) && msg.contains("500ms"), "{msg}");
        assert_eq!(err.query_error_reason(), "timeout");
    }

    #[test]
    fn every_answer_without_a_number_has_a_coarse_reason() {
        let answers = [
            (502, "Bad Gateway", "http"),
            (
                400,
                r#"{"status":"error","errorType":"bad_data","error":"x"}"#,
                "http",
            ),
            (200, "garbage", "bad_response"),
            (
                200,
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
                "bad_response",
            ),
            (
                200,
                r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#,
                "nan",
            ),
        ];
        for (status, body, reason) in answers {
            let err = decode(status, body).unwrap_err();
            assert_eq!(err.query_error_reason(), reason, "{body}: {err}");
        }
        let bad_url = PromClient::new("ftp://prom", Duration::from_secs(1)).unwrap_err();
        assert_eq!(bad_url.query_error_reason(), "unreachable");
        let empty = PromError::EmptyResult { query: "q".into() };
        assert_eq!(empty.query_error_reason(), "empty");
    }

    #[test]
    fn renders_the_time_in_unix_seconds_with_milliseconds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        assert_eq!(unix_seconds(at), "1700000000.250");
    }
}
