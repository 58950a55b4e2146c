//! Prometheus harness: a real `prometheus` binary, or the built-in query endpoint.
//!
//! ```text
//! locate_binary() ─► Installed(path) ─► Prometheus::start ── scrapes ──► mesh simulator /metrics
//!                 └► NotInstalled ────► BuiltinQueryEndpoint::start ─── reads ─► CounterSource
//!                 └► Err (CI=true)      (a simulation answering only BuiltinQuery)
//! ```
//!
//! - [`Prometheus`] runs the real binary on a free loopback port with a throw-away TSDB, scraping
//!   each target's `/metrics` with `honor_labels: true`, so the `namespace`/`deployment`/`pod`
//!   labels the simulator exports are kept as linkerd-viz's relabelling would have produced them.
//! - [`BuiltinQueryEndpoint`] is a **simulation, not Prometheus**: it serves `/api/v1/query` for
//!   exactly the queries [`BuiltinQuery::parse`] recognises and refuses every other query with
//!   `400 bad_data`. It computes from the simulator's exact counters. Where it knowingly differs
//!   from Prometheus:
//!   - `rate`/`increase` are `counters_at(t) - counters_at(t - interval)` (divided by the interval
//!     for `rate`), with no extrapolation to the window edges and no need for two samples in the
//!     window; a series that did not exist at `t - interval` counts from zero; a counter that went
//!     down counts as a reset (its new value is the increase).
//!   - Series are per Deployment, never per pod or status code: whatever the simulator counts for
//!     the Deployment is one series. A Deployment with no data at `t` gives an empty result; one
//!     with data but no failures answers `Failures` with 0, where a real Prometheus scraping
//!     Linkerd (which creates a `classification="failure"` series only on the first failure) would
//!     answer with an empty result.
//!   - `histogram_quantile` follows Prometheus' bucket interpolation (same NaN rules); 0/0 is NaN.
//!   - `time` accepts Unix seconds or RFC 3339 in UTC (`…Z`) only; no `timeout`, no `stats`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::analysis::prometheus::{PromClient, PromError};
use crate::analysis::queries::{BuiltinQuery, prom_duration};

/// Cumulative counters of one Deployment's inbound traffic, as the mesh simulator counts them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Responses, all classifications.
    pub requests: u64,
    /// Responses classified `failure`.
    pub failures: u64,
    /// Cumulative latency histogram: `(le in ms, count)`, ascending, ending with `f64::INFINITY`.
    pub latency_buckets: Vec<(f64, u64)>,
}

/// Where the built-in query endpoint reads exact counters from (the mesh simulator).
pub trait CounterSource: Send + Sync {
    /// The counters of `deployment` in `namespace` as they stood at `at` (the latest sample
    /// not after `at`), or `None` if the simulator had no traffic for it by then.
    fn counters_at(&self, namespace: &str, deployment: &str, at: SystemTime) -> Option<Counters>;
}

/// The install hint every "not installed" message carries.
pub const INSTALL_HINT: &str = "install it: apt-get install -y prometheus";

/// The message the built-in query endpoint answers any query it does not simulate with.
pub const NOT_A_PROMQL_ENGINE: &str = "the sandbox's built-in query endpoint is a simulation, not a PromQL engine: it answers only Sluice's built-in checks; install prometheus (apt-get install -y prometheus) for custom queries";

/// What the built-in query endpoint answers on `/-/ready` and `/-/healthy`.
const READY: &str = "Sluice's built-in query endpoint (a simulation, not Prometheus) is Ready.\n";

/// Errors starting or using the Prometheus harness.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no prometheus binary on PATH and CI=true requires the real one: {INSTALL_HINT} (or set PROMETHEUS_BIN)"
    )]
    NotInstalledInCi,
    #[error("PROMETHEUS_BIN={path:?} is not a file; point it at a prometheus binary or unset it")]
    BinaryNotFound { path: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting {binary:?}: {source}; {INSTALL_HINT}, or set PROMETHEUS_BIN")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "prometheus ({binary:?}) exited during start-up ({status}); last lines of its log:\n{log_tail}"
    )]
    Exited {
        binary: PathBuf,
        status: String,
        log_tail: String,
    },
    #[error(
        "prometheus at {url} was not ready after {waited:?}; last lines of its log:\n{log_tail}"
    )]
    NotReady {
        url: String,
        waited: Duration,
        log_tail: String,
    },
    #[error("query `{query}` had no value after {waited:?}; last answer: {last}")]
    NoData {
        query: String,
        waited: Duration,
        last: String,
    },
    #[error("building the HTTP client that polls prometheus: {0}")]
    Client(#[source] reqwest::Error),
    #[error(transparent)]
    Query(#[from] PromError),
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NotInstalledInCi => "not_installed_in_ci",
            Error::BinaryNotFound { .. } => "binary_not_found",
            Error::Io { .. } => "io",
            Error::Spawn { .. } => "spawn",
            Error::Exited { .. } => "exited",
            Error::NotReady { .. } => "not_ready",
            Error::NoData { .. } => "no_data",
            Error::Client(_) => "client",
            Error::Query(e) => e.metric_label(),
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

// ---------------------------------------------------------------------------------------------
// Locating the binary

/// Whether a real Prometheus can be used. Outside CI a missing binary is not an error, but it is
/// not a path either: callers must choose the built-in endpoint or print a skip notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrometheusBinary {
    /// The binary to run.
    Installed(PathBuf),
    /// None found (and not in CI): use [`BuiltinQueryEndpoint`], or skip a test that needs it.
    NotInstalled,
}

/// Finds Prometheus: `$PROMETHEUS_BIN` if set, else `prometheus` on `PATH`. With `CI=true` a
/// missing binary is an error whose message says how to install it.
pub fn locate_binary() -> Result<PrometheusBinary, Error> {
    let explicit = std::env::var_os("PROMETHEUS_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let found = match &explicit {
        Some(path) => path.is_file().then(|| path.clone()),
        None => std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("prometheus"))
                .find(|candidate| candidate.is_file())
        }),
    };
    decide_binary(
        std::env::var("CI").ok().as_deref(),
        explicit.as_deref(),
        found,
    )
}

/// The decision behind [`locate_binary`], over the environment it read: the value of `CI`, the
/// value of `PROMETHEUS_BIN`, and the binary found (at that path, or on `PATH`).
pub fn decide_binary(
    ci: Option<&str>,
    explicit: Option<&Path>,
    found: Option<PathBuf>,
) -> Result<PrometheusBinary, Error> {
    match (found, explicit) {
        (Some(path), _) => Ok(PrometheusBinary::Installed(path)),
        (None, Some(path)) => Err(Error::BinaryNotFound {
            path: path.to_path_buf(),
        }),
        (None, None) if is_ci(ci) => Err(Error::NotInstalledInCi),
        (None, None) => Ok(PrometheusBinary::NotInstalled),
    }
}

fn is_ci(ci: Option<&str>) -> bool {
    ci.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

// ---------------------------------------------------------------------------------------------
// The real Prometheus

/// How to run the real Prometheus.
#[derive(Clone, Debug)]
pub struct PrometheusOptions {
    /// The binary (from [`locate_binary`]).
    pub binary: PathBuf,
    /// Addresses whose `/metrics` to scrape.
    pub targets: Vec<SocketAddr>,
    /// How often to scrape (and evaluate). 1 s in the sandbox.
    pub scrape_interval: Duration,
    /// How long to wait for `/-/ready`.
    pub ready_timeout: Duration,
}

impl PrometheusOptions {
    /// Scrapes `targets` every second with `binary`, waiting up to 20 s for readiness.
    pub fn new(binary: PathBuf, targets: Vec<SocketAddr>) -> Self {
        Self {
            binary,
            targets,
            scrape_interval: Duration::from_secs(1),
            ready_timeout: Duration::from_secs(20),
        }
    }
}

/// A running Prometheus process with its own TSDB in a temporary directory. Dropping it kills
/// the process and removes the directory.
#[derive(Debug)]
pub struct Prometheus {
    /// Behind a lock so that [`Prometheus::kill`] works through a shared sandbox.
    child: std::sync::Mutex<Child>,
    url: String,
    client: PromClient,
    // Dropped after `child` (fields drop in order), so the process dies before its files go.
    dir: tempfile::TempDir,
}

/// Renders the scrape configuration for `targets`.
pub fn render_config(targets: &[SocketAddr], scrape_interval: Duration) -> String {
    let interval = prom_duration(scrape_interval);
    let targets = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\n\
         scrape_configs:\n  - job_name: sluice-sandbox-mesh\n    honor_labels: true\n    metrics_path: /metrics\n    \
         static_configs:\n      - targets: [{targets}]\n"
    )
}

impl Prometheus {
    /// Starts Prometheus on a free 127.0.0.1 port and waits until it reports ready.
    pub async fn start(opts: PrometheusOptions) -> Result<Prometheus, Error> {
        crate::tls::install_crypto_provider();
        let dir = tempfile::Builder::new()
            .prefix("sluice-prometheus-")
            .tempdir()
            .map_err(io("creating a temporary directory for prometheus"))?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, render_config(&opts.targets, opts.scrape_interval))
            .map_err(io(format!("writing {}", config.display())))?;
        // Another process may grab the free port between our probe and Prometheus' bind.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::spawn_and_wait(&opts, dir.path(), &config).await {
                Ok((child, url)) => {
                    let client = PromClient::new(&url, Duration::from_secs(10))?;
                    return Ok(Prometheus {
                        child: std::sync::Mutex::new(child),
                        url,
                        client,
                        dir,
                    });
                }
                Err(Error::Exited { log_tail, .. })
                    if attempt < 3 && log_tail.contains("address already in use") => {}
                Err(e) => return Err(e),
            }
        }
    }

    async fn spawn_and_wait(
        opts: &PrometheusOptions,
        dir: &Path,
        config: &Path,
    ) -> Result<(Child, String), Error> {
        let port = free_port()?;
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path)
            .map_err(io(format!("creating {}", log_path.display())))?;
        let tsdb = dir.join("data").display().to_string();
        let mut child = Command::new(&opts.binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={tsdb}"))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=1d")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn {
                binary: opts.binary.clone(),
                source,
            })?;
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/-/ready");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(Error::Client)?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(io("waiting for prometheus"))? {
                return Err(Error::Exited {
                    binary: opts.binary.clone(),
                    status: status.to_string(),
                    log_tail: log_tail(&log_path),
                });
            }
            if let Ok(r) = http.get(&ready).send().await
                && r.status().is_success()
                && serves_tsdb(&http, &url, &tsdb).await
            {
                return Ok((child, url));
            }
            if started.elapsed() > opts.ready_timeout {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(Error::NotReady {
                    url,
                    waited: started.elapsed(),
                    log_tail: log_tail(&log_path),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (what `--prometheus-url` takes).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client for this Prometheus.
    pub fn client(&self) -> &PromClient {
        &self.client
    }

    /// The last lines Prometheus logged.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("prometheus.log"))
    }

    /// Polls `promql` until it has a finite value (e.g. until the exporter has been scraped),
    /// giving up after `timeout`.
    pub async fn wait_for_value(&self, promql: &str, timeout: Duration) -> Result<f64, Error> {
        let started = Instant::now();
        loop {
            let last = match self.client.query_value(promql, None).await {
                Ok(v) => return Ok(v),
                Err(e) => e.to_string(),
            };
            if started.elapsed() > timeout {
                return Err(Error::NoData {
                    query: promql.to_string(),
                    waited: started.elapsed(),
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Kills the process with SIGKILL, as an OOM kill or a node failure would, leaving its
    /// data for [`shutdown`](Self::shutdown) to remove. Queries then find nobody listening.
    pub fn kill(&self) -> Result<(), Error> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if child
            .try_wait()
            .map_err(io("checking on prometheus"))?
            .is_none()
        {
            child.start_kill().map_err(io("killing prometheus"))?;
        }
        Ok(())
    }

    /// Stops Prometheus and removes its data.
    pub async fn shutdown(self) -> Result<(), Error> {
        let mut child = self.child.into_inner().unwrap_or_else(|e| e.into_inner());
        if child
            .try_wait()
            .map_err(io("checking on prometheus"))?
            .is_none()
        {
            child.kill().await.map_err(io("stopping prometheus"))?;
        }
        Ok(())
    }
}

/// Whether the Prometheus at `url` is ours (runs on our TSDB) and not another process that took
/// the port between our probe and Prometheus' bind.
async fn serves_tsdb(http: &reqwest::Client, url: &str, tsdb: &str) -> bool {
    let Ok(r) = http.get(format!("{url}/api/v1/status/flags")).send().await else {
        return false;
    };
    let Ok(flags) = r.json::<serde_json::Value>().await else {
        return false;
    };
    flags["data"]["storage.tsdb.path"] == tsdb
}

fn free_port() -> Result<u16, Error> {
    let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io("finding a free port on 127.0.0.1"))?;
    Ok(listener
        .local_addr()
        .map_err(io("finding a free port on 127.0.0.1"))?
        .port())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// The built-in query endpoint (a simulation)

/// A plain-HTTP `/api/v1/query` that answers the built-in checks from exact counters. It is a
/// simulation for machines without Prometheus; see the module doc for how it differs.
pub struct BuiltinQueryEndpoint {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for BuiltinQueryEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinQueryEndpoint")
            .field("url", &self.url)
            .finish()
    }
}

impl BuiltinQueryEndpoint {
    /// Serves on a free 127.0.0.1 port.
    pub async fn start(source: Arc<dyn CounterSource>) -> Result<Self, Error> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), source).await
    }

    /// Serves on `addr` (port 0 for a free one).
    pub async fn start_on(addr: SocketAddr, source: Arc<dyn CounterSource>) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(io(format!("binding the built-in query endpoint to {addr}")))?;
        let local = listener
            .local_addr()
            .map_err(io("reading the built-in query endpoint's address"))?;
        let app = Router::new()
            .route("/api/v1/query", get(query_get).post(query_post))
            // Same paths and status codes as Prometheus, but words that do not pretend to be it.
            .route("/-/ready", get(|| async { READY }))
            .route("/-/healthy", get(|| async { READY }))
            .with_state(source);
        let (stop, task) = serve_until_stopped(listener, app, "the built-in query endpoint");
        Ok(Self {
            url: format!("http://{local}"),
            stop: Some(stop),
            task,
        })
    }

    /// The base URL (what `--prometheus-url` takes).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops serving.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Serves `app` on `listener` in a task until the returned sender fires (or is dropped);
/// `what` names the server in the log if serving fails.
pub(super) fn serve_until_stopped(
    listener: tokio::net::TcpListener,
    app: Router,
    what: &'static str,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "{what} stopped");
        }
    });
    (stop, task)
}

impl Drop for BuiltinQueryEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Default, Deserialize)]
struct QueryParams {
    query: Option<String>,
    time: Option<String>,
}

type Source = State<Arc<dyn CounterSource>>;

async fn query_get(
    State(source): Source,
    params: Result<Query<QueryParams>, QueryRejection>,
) -> Response {
    match params {
        Ok(Query(p)) => answer(source.as_ref(), p, SystemTime::now()),
        Err(e) => api_error(StatusCode::BAD_REQUEST, "bad_data", &e.body_text()),
    }
}

async fn query_post(
    State(source): Source,
    url_params: Result<Query<QueryParams>, QueryRejection>,
    form: Result<Form<QueryParams>, FormRejection>,
) -> Response {
    let url_params = match url_params {
        Ok(Query(p)) => p,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad_data", &e.body_text()),
    };
    // Body parameters take precedence over URL ones, as in Go's net/http (and so Prometheus).
    let params = match form {
        Ok(Form(body)) => QueryParams {
            query: body.query.or(url_params.query),
            time: body.time.or(url_params.time),
        },
        Err(FormRejection::InvalidFormContentType(_)) => url_params,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad_data", &e.body_text()),
    };
    answer(source.as_ref(), params, SystemTime::now())
}

/// Answers one query request: the HTTP response Prometheus would give (for the queries it
/// simulates) or a `bad_data` refusal.
fn answer(source: &dyn CounterSource, params: QueryParams, now: SystemTime) -> Response {
    let at = match params.time.as_deref() {
        None | Some("") => now,
        Some(t) => match parse_time(t) {
            Some(at) => at,
            None => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "bad_data",
                    &format!(
                        "invalid parameter \"time\": cannot parse \"{t}\" to a valid timestamp"
                    ),
                );
            }
        },
    };
    let Some(query) = params.query.as_deref().and_then(BuiltinQuery::parse) else {
        return api_error(StatusCode::BAD_REQUEST, "bad_data", NOT_A_PROMQL_ENGINE);
    };
    let result = match evaluate(&query, source, at) {
        None => json!([]),
        Some(v) => json!([{ "metric": {}, "value": [unix_seconds(at), format_prom_float(v)] }]),
    };
    let body = json!({
        "status": "success",
        "data": { "resultType": "vector", "result": result },
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn api_error(status: StatusCode, error_type: &str, error: &str) -> Response {
    let body = json!({ "status": "error", "errorType": error_type, "error": error });
    (status, axum::Json(body)).into_response()
}

/// Unix seconds (`1700000000.5`) or RFC 3339 in UTC (`2026-11-27T10:00:00Z`).
fn parse_time(t: &str) -> Option<SystemTime> {
    if let Ok(secs) = t.parse::<f64>() {
        let d = Duration::try_from_secs_f64(secs).ok()?;
        return UNIX_EPOCH.checked_add(d);
    }
    humantime::parse_rfc3339(t).ok()
}

/// A sample's timestamp as Prometheus writes it: Unix seconds, with milliseconds if any.
fn unix_seconds(at: SystemTime) -> serde_json::Value {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    if ms.is_multiple_of(1000) {
        json!((ms / 1000) as u64)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// A sample value as Prometheus writes it.
fn format_prom_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// The value of `query` at `at`, computed from `source`'s counters; `None` when the Deployment
/// had no data by `at` (an empty result). May be NaN (0/0, or a histogram with no observations).
pub fn evaluate(query: &BuiltinQuery, source: &dyn CounterSource, at: SystemTime) -> Option<f64> {
    let (ns, dep, interval) = (query.namespace(), query.deployment(), query.interval());
    let end = source.counters_at(ns, dep, at)?;
    let start = at
        .checked_sub(interval)
        .and_then(|from| source.counters_at(ns, dep, from))
        .unwrap_or_default();
    let requests = increase(start.requests, end.requests);
    let failures = increase(start.failures, end.failures);
    Some(match query {
        BuiltinQuery::Requests { .. } => requests,
        BuiltinQuery::Failures { .. } => failures,
        // Same order of operations as the PromQL: 100 * (1 - failures / requests).
        BuiltinQuery::SuccessRate { .. } => 100.0 * (1.0 - failures / requests),
        BuiltinQuery::LatencyP99 { .. } => {
            if end.latency_buckets.is_empty() {
                return None;
            }
            let rates: Vec<(f64, f64)> = end
                .latency_buckets
                .iter()
                .map(|&(le, count)| {
                    let before = start
                        .latency_buckets
                        .iter()
                        .find(|(l, _)| *l == le)
                        .map_or(0, |&(_, c)| c);
                    (le, increase(before, count))
                })
                .collect();
            histogram_quantile(0.99, rates)
        }
    })
}

/// A counter's increase from `before` to `after`; a decrease is a reset, counting `after`.
fn increase(before: u64, after: u64) -> f64 {
    if after >= before {
        (after - before) as f64
    } else {
        after as f64
    }
}

/// Prometheus' `histogram_quantile` over `(upper bound, cumulative count)` buckets: linear
/// interpolation within the bucket holding the rank, the lower bound of the first bucket taken
/// as 0, the `+Inf` bucket answered with the highest finite bound. NaN without a `+Inf` bucket,
/// with fewer than two buckets or with no observations.
pub fn histogram_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal bounds, then make counts monotonic (Prometheus' ensureMonotonic).
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (le, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += count,
            _ => merged.push((le, count)),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        max = max.max(b.1);
        b.1 = max;
    }
    let n = merged.len();
    if n < 2 {
        return f64::NAN;
    }
    let observations = merged[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..n - 1]
        .iter()
        .position(|&(_, count)| count >= rank)
        .unwrap_or(n - 1);
    if b == n - 1 {
        return merged[n - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut bucket_start, bucket_end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        bucket_start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

// ---------------------------------------------------------------------------------------------
// Either one, for `sluice sandbox`

/// What answers the sandbox's Prometheus queries: the real thing when installed, else the
/// built-in simulation.
#[derive(Debug)]
pub enum QueryBackend {
    /// A real Prometheus scraping the mesh simulator.
    Prometheus(Box<Prometheus>),
    /// The built-in query endpoint reading the mesh simulator's counters.
    Builtin(BuiltinQueryEndpoint),
}

impl QueryBackend {
    /// Starts the real Prometheus on `targets` if `binary` is installed, else the built-in
    /// endpoint over `source`.
    pub async fn start(
        binary: PrometheusBinary,
        targets: Vec<SocketAddr>,
        source: Arc<dyn CounterSource>,
    ) -> Result<Self, Error> {
        Ok(match binary {
            PrometheusBinary::Installed(path) => QueryBackend::Prometheus(Box::new(
                Prometheus::start(PrometheusOptions::new(path, targets)).await?,
            )),
            PrometheusBinary::NotInstalled => {
                QueryBackend::Builtin(BuiltinQueryEndpoint::start(source).await?)
            }
        })
    }

    /// The base URL to give the controller as `--prometheus-url`.
    pub fn url(&self) -> &str {
        match self {
            QueryBackend::Prometheus(p) => p.url(),
            QueryBackend::Builtin(b) => b.url(),
        }
    }

    /// Kills the real Prometheus ([`Prometheus::kill`]); `Ok(false)` for the built-in endpoint,
    /// which is a simulation with nothing to kill.
    pub fn kill(&self) -> Result<bool, Error> {
        match self {
            QueryBackend::Prometheus(p) => p.kill().map(|()| true),
            QueryBackend::Builtin(_) => Ok(false),
        }
    }

    /// Whether this is the simulation, which answers only the built-in checks.
    pub fn is_simulated(&self) -> bool {
        matches!(self, QueryBackend::Builtin(_))
    }

    /// Stops whichever is running.
    pub async fn shutdown(self) -> Result<(), Error> {
        match self {
            QueryBackend::Prometheus(p) => p.shutdown().await,
            QueryBackend::Builtin(b) => {
                b.shutdown().await;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::queries::QueryKind;
    use std::collections::HashMap;

    const INF: f64 = f64::INFINITY;

    /// Counters keyed by deployment, each a list of `(seconds after T0, counters)`.
    struct Fake(HashMap<&'static str, Vec<(u64, Counters)>>);

    const T0: u64 = 1_700_000_000;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    impl CounterSource for Fake {
        fn counters_at(&self, ns: &str, dep: &str, at: SystemTime) -> Option<Counters> {
            if ns != "shop" {
                return None;
            }
            self.0
                .get(dep)?
                .iter()
                .rev()
                .find(|(s, _)| t(*s) <= at)
                .map(|(_, c)| c.clone())
        }
    }

    fn mk_counters(requests: u64, failures: u64, buckets: &[(f64, u64)]) -> Counters {
        Counters {
            requests,
            failures,
            latency_buckets: buckets.to_vec(),
        }
    }

    fn mk_source() -> Fake {
        Fake(HashMap::from([
            (
                "app",
                vec![
                    (
                        0,
                        mk_counters(100, 10, &[(10.0, 50), (100.0, 100), (INF, 100)]),
                    ),
                    (
                        60,
                        mk_counters(1100, 60, &[(10.0, 550), (100.0, 1080), (INF, 1100)]),
                    ),
                ],
            ),
            ("idle", vec![(0, mk_counters(5, 0, &[(10.0, 5), (INF, 5)]))]),
        ]))
    }

    fn q(kind: QueryKind, dep: &str) -> BuiltinQuery {
        BuiltinQuery::new(kind, "shop", dep, Duration::from_secs(60))
    }

    #[test]
    fn computes_each_query_from_the_counters_at_both_ends_of_the_window() {
        let src = mk_source();
        let at = t(60);
        assert_eq!(
            evaluate(&q(QueryKind::Requests, "app"), &src, at),
            Some(1000.0)
        );
        assert_eq!(
            evaluate(&q(QueryKind::Failures, "app"), &src, at),
            Some(50.0)
        );
        let sr = evaluate(&q(QueryKind::SuccessRate, "app"), &src, at).unwrap();
        assert!((sr - 95.0).abs() < 1e-9, "{sr}");
        // 1000 observations, rank 990: bucket (10, 100] holds 500..980, (100, +Inf] the rest,
        // so the p99 is the highest finite bound.
        let p99 = evaluate(&q(QueryKind::LatencyP99, "app"), &src, at).unwrap();
        assert_eq!(p99, 100.0);
    }

    #[test]
    fn counts_a_series_born_inside_the_window_from_zero() {
        let src = mk_source();
        assert_eq!(
            evaluate(&q(QueryKind::Requests, "app"), &src, t(30)),
            Some(100.0)
        );
    }

    #[test]
    fn no_data_is_an_empty_result_and_no_traffic_is_nan() {
        let src = mk_source();
        assert_eq!(
            evaluate(
                &q(QueryKind::Requests, "app"),
                &src,
                t(0) - Duration::from_secs(1)
            ),
            None
        );
        assert_eq!(evaluate(&q(QueryKind::Requests, "nope"), &src, t(60)), None);
        // "idle" had 5 requests before the window and none in it.
        let at = t(120);
        assert_eq!(
            evaluate(&q(QueryKind::Requests, "idle"), &src, at),
            Some(0.0)
        );
        assert!(
            evaluate(&q(QueryKind::SuccessRate, "idle"), &src, at)
                .unwrap()
                .is_nan()
        );
        assert!(
            evaluate(&q(QueryKind::LatencyP99, "idle"), &src, at)
                .unwrap()
                .is_nan()
        );
    }

    #[test]
    fn a_counter_that_went_down_is_a_reset() {
        let src = Fake(HashMap::from([(
            "app",
            vec![(0, mk_counters(500, 0, &[])), (60, mk_counters(40, 0, &[]))],
        )]));
        assert_eq!(
            evaluate(&q(QueryKind::Requests, "app"), &src, t(60)),
            Some(40.0)
        );
        assert_eq!(
            evaluate(&q(QueryKind::LatencyP99, "app"), &src, t(60)),
            None
        );
    }

    #[test]
    fn interpolates_linearly_within_the_bucket_like_prometheus() {
        // 100 observations: 90 ≤ 25, 98 ≤ 50, 100 ≤ 100. Rank 99 is halfway through (50, 100].
        let b = vec![(25.0, 90.0), (50.0, 98.0), (100.0, 100.0), (INF, 100.0)];
        assert_eq!(histogram_quantile(0.99, b.clone()), 75.0);
        // Rank 45 in the first bucket, interpolated from 0.
        assert_eq!(histogram_quantile(0.45, b.clone()), 12.5);
        assert_eq!(histogram_quantile(-0.1, b.clone()), f64::NEG_INFINITY);
        assert_eq!(histogram_quantile(1.1, b), f64::INFINITY);
    }

    #[test]
    fn answers_the_highest_finite_bound_when_the_rank_is_in_the_inf_bucket() {
        let b = vec![(10.0, 1.0), (20.0, 2.0), (INF, 10.0)];
        assert_eq!(histogram_quantile(0.99, b), 20.0);
    }

    #[test]
    fn histogram_quantile_is_nan_without_inf_bucket_or_observations() {
        assert!(histogram_quantile(0.99, vec![(10.0, 1.0), (20.0, 2.0)]).is_nan());
        assert!(histogram_quantile(0.99, vec![(INF, 2.0)]).is_nan());
        assert!(histogram_quantile(0.99, vec![(10.0, 0.0), (INF, 0.0)]).is_nan());
        assert!(histogram_quantile(0.99, vec![]).is_nan());
    }

    #[test]
    fn histogram_quantile_sorts_coalesces_and_forces_monotonic_counts() {
        let unordered = vec![(INF, 100.0), (50.0, 40.0), (10.0, 30.0), (50.0, 20.0)];
        // Coalesced: 10→30, 50→60, +Inf→100; rank 50 lies 20/30 through (10, 50].
        let v = histogram_quantile(0.5, unordered);
        assert!((v - (10.0 + 40.0 * 20.0 / 30.0)).abs() < 1e-9, "{v}");
        // A bucket lower than its predecessor is raised to it.
        let dip = vec![(10.0, 50.0), (20.0, 40.0), (INF, 100.0)];
        assert_eq!(histogram_quantile(0.5, dip), 10.0);
    }

    #[test]
    fn a_missing_binary_outside_ci_means_the_built_in_endpoint() {
        assert_eq!(
            decide_binary(None, None, None).unwrap(),
            PrometheusBinary::NotInstalled
        );
        assert_eq!(
            decide_binary(Some("false"), None, None).unwrap(),
            PrometheusBinary::NotInstalled
        );
    }

    #[test]
    fn a_missing_binary_in_ci_is_an_error_saying_how_to_install_it() {
        for ci in ["true", "TRUE", "1"] {
            let err = decide_binary(Some(ci), None, None).unwrap_err();
            assert!(
                err.to_string()
                    .contains("install it: apt-get install -y prometheus"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_found_binary_is_used_in_or_out_of_ci() {
        let path = PathBuf::from("/usr/bin/prometheus");
        for ci in [None, Some("true")] {
            assert_eq!(
                decide_binary(ci, None, Some(path.clone())).unwrap(),
                PrometheusBinary::Installed(path.clone())
            );
        }
    }

    #[test]
    fn a_prometheus_bin_that_is_not_a_file_is_an_error_even_outside_ci() {
        let err = decide_binary(None, Some(Path::new("/nope/prometheus")), None).unwrap_err();
        assert!(matches!(err, Error::BinaryNotFound { .. }), "{err}");
        assert!(err.to_string().contains("/nope/prometheus"), "{err}");
    }

    #[test]
    fn the_config_scrapes_every_target_each_interval_honouring_labels() {
        let targets: Vec<SocketAddr> = vec![
            "127.0.0.1:9001".parse().unwrap(),
            "127.0.0.1:9002".parse().unwrap(),
        ];
        let config = render_config(&targets, Duration::from_secs(1));
        assert!(config.contains("scrape_interval: 1s"), "{config}");
        assert!(config.contains("scrape_timeout: 1s"), "{config}");
        assert!(config.contains("honor_labels: true"), "{config}");
        assert!(
            config.contains(r#"targets: ["127.0.0.1:9001", "127.0.0.1:9002"]"#),
            "{config}"
        );
        let yaml: serde_json::Value = serde_saphyr::from_str(&config).unwrap();
        assert_eq!(yaml["scrape_configs"][0]["metrics_path"], "/metrics");
    }

    #[test]
    fn parses_unix_and_rfc3339_times_and_refuses_others() {
        assert_eq!(parse_time("1700000000"), Some(t(0)));
        assert_eq!(
            parse_time("1700000000.5"),
            Some(t(0) + Duration::from_millis(500))
        );
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(t(0)));
        for bad in ["yesterday", "-1", "NaN", "inf", "1e400"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_values_as_prometheus_does() {
        assert_eq!(format_prom_float(95.0), "95");
        assert_eq!(format_prom_float(0.25), "0.25");
        assert_eq!(format_prom_float(f64::NAN), "NaN");
        assert_eq!(format_prom_float(INF), "+Inf");
        assert_eq!(format_prom_float(-INF), "-Inf");
    }
}
