//! The composition root of `sluice serve`: one process runs the TLS webhook and the controller
//! over shared caches, plus a plain-HTTP admin endpoint. The sandbox starts Sluice through the
//! same [`Sluice::start`], so what the end-to-end tests exercise is what a cluster runs.
//!
//! ```text
//! Caches (Namespaces, sluice-policy) ──► webhook (TLS: /mutate, /validate) ──┐
//!                    └─────────────────► controller (reconcile) ──► Prometheus, routes
//!                                                  │ records                 │ records
//!                                                  ▼                         ▼
//! admin (HTTP): /healthz, /readyz (caches synced), /metrics ◄── Metrics (one registry)
//! ```
//!
//! Shutdown ([`Sluice::shutdown`], what `sluice serve` does on SIGTERM or Ctrl-C):
//! ```text
//! SIGTERM ─► /readyz 503 ─┬─► controller stopped, Lease released (holder cleared: a peer leads at once)
//!                         └─► webhook keeps answering for `shutdown_delay` (default 5 s)
//!           ─► webhook stops accepting; admissions in flight get up to IN_FLIGHT_GRACE (5 s) ─► caches stop
//! ```
//! The delay is there because a terminating Pod leaves the Service's endpoints only after the
//! EndpointSlice controller and kube-proxy catch up: kube-apiserver may call this replica for a
//! few seconds after SIGTERM, and with `failurePolicy: Fail` a closed port would refuse those
//! Deployment updates. The whole sequence fits the Pod's `terminationGracePeriodSeconds` (30).
//!
//! `/metrics` answers in OpenMetrics text ([`crate::metrics`]); `sluice_leader` is 1 on the
//! replica that holds the Lease ([`crate::leader`]).
//!
//! Prometheus is reached as [`PrometheusArgs`] says (`--prometheus-secret`, `--prometheus-ca`,
//! `--prometheus-timeout`; [`crate::analysis::prometheus`]): the Secret is read before anything
//! serves, so a missing Secret or key stops the start, and the client records its queries in
//! the same [`Metrics`].
//!
//! The webhook hands break-glass admissions to an audit task that writes them as Events
//! ([`crate::webhook::admit::audit`]), so no admission waits on the API server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use kube::runtime::events::Reporter;
use tokio::sync::watch;

use crate::analysis::prometheus::access::{self, Access, SecretRef};
use crate::analysis::prometheus::{Connection, PromClient};
use crate::controller::reconcile::Context;
use crate::controller::run::{self, Caches, Task};
use crate::leader::{self, LeaseSettings};
use crate::metrics::Metrics;
use crate::routing::AnyRouter;
use crate::webhook::admit::audit;
use crate::webhook::{self, NamespaceCache, WebhookState};

/// Errors starting Sluice; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot reach the Kubernetes API server: {0}; check --kubeconfig (or the in-cluster service account)"
    )]
    ApiServer(String),
    #[error("{0}")]
    Webhook(#[from] webhook::Error),
    #[error("--prometheus-url: {0}")]
    Prometheus(String),
    #[error("{0}")]
    PrometheusAccess(String),
    #[error("routing: {0}")]
    Routing(String),
    #[error("admin endpoint {addr}: {source}; choose a free --admin-addr")]
    Admin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What `sluice serve` needs.
pub struct Config {
    pub client: kube::Client,
    pub tls: Arc<rustls::ServerConfig>,
    /// The certificate and key files `tls` came from, re-read when they change (rotation
    /// without a restart); `None` when it was built in memory.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    pub webhook_addr: SocketAddr,
    /// `None`: no admin endpoint (the sandbox).
    pub admin_addr: Option<SocketAddr>,
    pub prometheus_url: String,
    /// Sluice's own namespace (where `sluice-policy` lives).
    pub namespace: String,
    /// Names this instance in Events.
    pub instance: String,
    /// How long the controller's Lease holds without renewal (15 s in a cluster); it is
    /// renewed every third of that.
    pub lease_duration: Duration,
    /// How long the webhook keeps answering after shutdown begins (and `/readyz` fails), so
    /// that the Service's endpoints drop this replica before it stops accepting; 5 s in a
    /// cluster, zero in the sandbox (its API server calls the webhook directly).
    pub shutdown_delay: Duration,
}

/// `sluice serve`'s flags for reaching a Prometheus that requires credentials, TLS with a
/// private CA, or more (or less) patience; see [`crate::analysis::prometheus`].
#[derive(clap::Args, Clone, Debug)]
pub struct PrometheusArgs {
    /// A Secret in Sluice's namespace holding Prometheus' credentials, as Flagger's
    /// MetricTemplate secretRef: key `token` (bearer token), or keys `username` and `password`
    /// (basic auth). Read at start; re-read when Prometheus answers 401/403.
    #[arg(long, env = "SLUICE_PROMETHEUS_SECRET")]
    pub prometheus_secret: Option<String>,
    /// A PEM bundle of CA certificates to trust for an https --prometheus-url, added to the
    /// system's roots.
    #[arg(long, env = "SLUICE_PROMETHEUS_CA")]
    pub prometheus_ca: Option<PathBuf>,
    /// How long each query to Prometheus may take; a check whose query takes longer fails.
    #[arg(
        long,
        env = "SLUICE_PROMETHEUS_TIMEOUT",
        default_value = "10s",
        value_parser = parse_prometheus_timeout
    )]
    pub prometheus_timeout: Duration,
}

/// The `--prometheus-secret` the manifests in `deploy/` grant `get` on (by `resourceNames`);
/// another name needs the Role changed too.
pub const PROMETHEUS_SECRET: &str = "sluice-prometheus";

/// What `sluice serve` uses without these flags: no credentials, the system's roots, 10 s.
pub const DEFAULT_PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for PrometheusArgs {
    fn default() -> Self {
        PrometheusArgs {
            prometheus_secret: None,
            prometheus_ca: None,
            prometheus_timeout: DEFAULT_PROMETHEUS_TIMEOUT,
        }
    }
}

/// The bound a duration flag keeps, for [`parse_duration_flag`].
#[derive(Clone, Copy, Debug)]
pub enum Bound {
    AtLeast(Duration),
    AtMost(Duration),
}

/// A duration flag: humantime text (`2s500ms`) within `bound`; outside it, the refusal names
/// the value, the bound and `advice`.
pub fn parse_duration_flag(v: &str, bound: Bound, advice: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(v).map_err(|e| format!("{v:?} is not a duration ({e})"))?;
    let (outside, word, limit) = match bound {
        Bound::AtLeast(min) => (d < min, "shorter", min),
        Bound::AtMost(max) => (d > max, "longer", max),
    };
    if outside {
        let limit = humantime::format_duration(limit);
        return Err(format!("{v:?} is {word} than {limit}; {advice}"));
    }
    Ok(d)
}

/// A query timeout: a humantime duration of at least 100 ms.
pub fn parse_prometheus_timeout(v: &str) -> Result<Duration, String> {
    parse_duration_flag(
        v,
        Bound::AtLeast(Duration::from_millis(100)),
        "give Prometheus time to answer (10s is the default)",
    )
}

impl PrometheusArgs {
    /// The client these flags describe for the Prometheus at `url`; the Secret is read from
    /// `namespace` now, so a missing Secret or key stops the start.
    pub async fn connect(
        &self,
        client: &kube::Client,
        url: &str,
        namespace: &str,
    ) -> Result<PromClient, Error> {
        let access = match &self.prometheus_secret {
            None => Access::none(),
            Some(name) => Access::from_secret(
                client.clone(),
                SecretRef {
                    namespace: namespace.to_string(),
                    name: name.clone(),
                },
                access::RELOAD_EVERY,
            )
            .await
            .map_err(|e| Error::PrometheusAccess(e.to_string()))?,
        };
        let ca = self
            .prometheus_ca
            .as_deref()
            .map(access::load_ca)
            .transpose()
            .map_err(|e| Error::PrometheusAccess(e.to_string()))?;
        PromClient::connect(
            url,
            Connection {
                timeout: self.prometheus_timeout,
                ca,
                access,
            },
        )
        .map_err(|e| Error::Prometheus(e.to_string()))
    }
}

/// A running Sluice: webhook, controller, caches and the admin endpoint.
pub struct Sluice {
    webhook: webhook::Running,
    caches: Caches,
    stop: watch::Sender<bool>,
    controller: tokio::task::JoinHandle<()>,
    admin: Option<(SocketAddr, Task)>,
    /// What `/readyz` answers.
    ready: Arc<AtomicBool>,
    metrics: Metrics,
    shutdown_delay: Duration,
    _tls_reload: Option<Task>,
    _audit: Task,
}

impl Sluice {
    /// Checks the API server, syncs the caches, then serves the webhook and runs the controller;
    /// Prometheus without credentials, with the system's roots and a 10 s query timeout.
    pub async fn start(config: Config) -> Result<Sluice, Error> {
        Self::start_with(config, &PrometheusArgs::default()).await
    }

    /// [`start`](Self::start), reaching Prometheus as `prometheus` says.
    pub async fn start_with(config: Config, prometheus: &PrometheusArgs) -> Result<Sluice, Error> {
        let client = config.client;
        client
            .apiserver_version()
            .await
            .map_err(|e| Error::ApiServer(e.to_string()))?;
        let metrics = Metrics::new();
        let prom = prometheus
            .connect(&client, &config.prometheus_url, &config.namespace)
            .await?
            .with_metrics(metrics.clone());
        let ready = Arc::new(AtomicBool::new(false));
        let admin = match config.admin_addr {
            Some(addr) => Some(start_admin(addr, ready.clone(), metrics.clone()).await?),
            None => None,
        };
        let caches = Caches::start(&client, &config.namespace).await;
        let router = AnyRouter::new(client.clone())
            .await
            .map_err(|e| Error::Routing(e.to_string()))?;
        // Break-glass admissions become Events on this task, never on the admission path.
        let (audit_tx, audit_rx) = tokio::sync::mpsc::channel(audit::AUDIT_QUEUE);
        let view = Arc::new(
            NamespaceCache::new(caches.namespaces.clone())
                .with_policy(caches.policy.clone(), &config.namespace)
                .with_audit(audit_tx)
                .with_routes(router.clone()),
        );
        let audit_task = Task::spawn(audit::record_events(
            client.clone(),
            Reporter {
                controller: "sluice".into(),
                instance: Some(config.instance.clone()),
            },
            audit_rx,
        ));
        let state = WebhookState::new(view).with_metrics(metrics.clone());
        let webhook = webhook::start(config.webhook_addr, config.tls, state).await?;
        let tls_reload = config
            .tls_files
            .map(|(cert, key)| webhook.reload_tls_from(cert, key, webhook::reload::EVERY));
        let lease = LeaseSettings {
            duration: config.lease_duration,
            renew_every: config.lease_duration / 3,
            ..LeaseSettings::new(
                &config.namespace,
                format!(
                    "{}-{}",
                    config.instance,
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                ),
            )
        };
        let ctx = Arc::new(Context {
            client,
            prom,
            router,
            namespaces: caches.namespaces.clone(),
            policy: caches.policy.clone(),
            sluice_namespace: config.namespace,
            reporter: Reporter {
                controller: "sluice".into(),
                instance: Some(config.instance),
            },
            metrics: metrics.clone(),
            retries: Default::default(),
        });
        // Every replica answers admissions; the one holding the Lease runs the controller.
        let (stop, stopped) = watch::channel(false);
        let controller = tokio::spawn(leader::lead(
            ctx.client.clone(),
            lease,
            metrics.clone(),
            stopped,
            move |until| run::run(ctx.clone(), until),
        ));
        ready.store(true, Ordering::Release);
        Ok(Sluice {
            webhook,
            caches,
            stop,
            controller,
            admin,
            ready,
            metrics,
            shutdown_delay: config.shutdown_delay,
            _tls_reload: tls_reload,
            _audit: audit_task,
        })
    }

    /// Where the webhook listens.
    pub fn webhook_addr(&self) -> SocketAddr {
        self.webhook.local_addr()
    }

    /// Where the admin endpoint listens (the real port when started on port 0); `None` when
    /// it was not asked for.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(addr, _)| *addr)
    }

    /// The metrics this instance records and `/metrics` serves.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops everything at once, as `kill -9` would: the controller is aborted wherever it is
    /// (mid-reconcile included) and admissions in flight are cut.
    pub fn kill(self) {
        self.controller.abort();
        self.webhook.kill();
    }

    /// Turns unready, stops the controller and releases the Lease while the webhook answers
    /// for [`Config::shutdown_delay`], then drains the webhook and stops the caches.
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::Release);
        let delay = tokio::time::sleep(self.shutdown_delay);
        let _ = self.stop.send(true);
        let _ = self.controller.await;
        delay.await;
        let _ = self.webhook.shutdown().await;
        drop(self.caches);
    }
}

/// `/healthz` (the process runs), `/readyz` (caches synced, webhook serving), `/metrics`
/// (OpenMetrics text); with the address it listens on.
async fn start_admin(
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    metrics: Metrics,
) -> Result<(SocketAddr, Task), Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Admin { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Admin { addr, source })?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.load(Ordering::Acquire);
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "caches are syncing, or shutting down",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = metrics.encode();
                async move { ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text) }
            }),
        );
    let task = Task::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("admin endpoint stopped: {e}");
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prometheus_timeout_is_a_humantime_duration_of_at_least_100ms() {
        assert_eq!(
            parse_prometheus_timeout("2s500ms").unwrap(),
            Duration::from_millis(2500)
        );
        let short = parse_prometheus_timeout("50ms").unwrap_err();
        assert!(short.contains("shorter than 100ms"), "{short}");
        let bad = parse_prometheus_timeout("ten").unwrap_err();
        assert!(bad.contains("not a duration"), "{bad}");
        let long = parse_duration_flag("21s", Bound::AtMost(Duration::from_secs(20)), "why");
        assert_eq!(long.unwrap_err(), "\"21s\" is longer than 20s; why");
        assert_eq!(
            PrometheusArgs::default().prometheus_timeout,
            DEFAULT_PROMETHEUS_TIMEOUT
        );
    }
}
