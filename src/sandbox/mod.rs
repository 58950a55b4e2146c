//! The sandbox: an in-process cluster for `sluice sandbox` and the end-to-end tests.
//!
//! ```text
//!  kube::Client / kubectl ──HTTPS──► apiserver ──AdmissionReview──► webhooks (Sluice's, tests')
//!                                       ▲   ▲
//!                    status via /status │   │ watch Services, TrafficSplits, HTTPRoutes
//!                              workload ┘   └ mesh ──► /metrics (Linkerd format)
//!                                 │ PodTable ─┘                 │ scrape 1s
//!                                 └───────────────────► prometheus (real binary, or the
//!                                                        built-in query endpoint)
//! ```
//!
//! - [`apiserver`]: the Kubernetes REST API for the kinds Sluice uses, with kube-apiserver's
//!   semantics and admission call-outs.
//! - [`workload`]: rolls Deployments like the deployment controller; keeps the simulated Pods;
//!   [`workload::hpa`] scales the Deployments HPAs target, as the HPA controller, by their
//!   `minReplicas`/`maxReplicas`.
//! - [`mesh`]: sends traffic by the stored routes' weights and exports Linkerd's metrics.
//! - [`prometheus`]: starts a real `prometheus` on the mesh's metrics, or falls back to a
//!   built-in endpoint that answers only the built-in checks' queries.
//! - [`scale`]: the scale benchmarks `sluice-scale` runs (a fleet, `sluice serve` beside it).
//! - [`prom_faults`]: a front that makes Prometheus slow, or answer NaN or garbage, per
//!   namespace, for the fault-injection tests.
//!
//! The simulators talk to the API server only through `kube::Client`, as a real
//! kube-controller-manager or mesh would. The known differences from a real cluster are listed
//! in each module's documentation.

pub mod apiserver;
pub mod demo;
pub mod embedded;
pub mod mesh;
pub mod prom_faults;
pub mod prometheus;
pub mod scale;
pub mod scenario;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apiserver::{ApiServer, ApiServerOptions, Identity};
use mesh::{MeshOptions, MeshSimulator};
use prometheus::{PrometheusBinary, QueryBackend};
use workload::hpa::HpaController;
use workload::{WorkloadOptions, WorkloadSimulator};

/// Errors starting the sandbox; each names the part that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sandbox API server: {0}")]
    ApiServer(String),
    #[error("sandbox mesh simulator: {0}")]
    Mesh(String),
    #[error("sandbox Prometheus: {0}")]
    Prometheus(String),
}

/// Which metrics backend the sandbox runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricsBackend {
    /// A real `prometheus` when one is installed, else the built-in endpoint (outside CI).
    #[default]
    Auto,
    /// Only the built-in endpoint, even when `prometheus` is installed.
    Builtin,
}

/// How to start the sandbox.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// How long a new pod takes to become ready.
    pub ready_delay: Duration,
    pub metrics: MetricsBackend,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            ready_delay: Duration::from_secs(2),
            metrics: MetricsBackend::Auto,
        }
    }
}

/// A running in-process cluster.
pub struct Sandbox {
    pub api: ApiServer,
    pub workload: WorkloadSimulator,
    /// The HPA controller, acting as [`Identity::HpaController`].
    pub hpa: HpaController,
    pub mesh: MeshSimulator,
    pub metrics: QueryBackend,
}

impl Sandbox {
    /// Starts the API server, both simulators, the HPA controller and the metrics backend.
    pub async fn start(opts: SandboxOptions) -> Result<Sandbox, Error> {
        crate::tls::install_crypto_provider();
        let api = ApiServer::start(ApiServerOptions::default())
            .await
            .map_err(|e| Error::ApiServer(e.to_string()))?;
        let client = api
            .client(Identity::Admin)
            .await
            .map_err(|e| Error::ApiServer(e.to_string()))?;
        let workload = WorkloadSimulator::start(
            client.clone(),
            WorkloadOptions {
                ready_delay: opts.ready_delay,
            },
        );
        let hpa = HpaController::start(
            api.client(Identity::HpaController)
                .await
                .map_err(|e| Error::ApiServer(e.to_string()))?,
        );
        let mesh = MeshSimulator::start(client, workload.pods(), MeshOptions::default())
            .await
            .map_err(|e| Error::Mesh(e.to_string()))?;
        let metrics = start_metrics(opts.metrics, &mesh).await?;
        Ok(Sandbox {
            api,
            workload,
            hpa,
            mesh,
            metrics,
        })
    }

    /// A client acting as `who`.
    pub async fn client(&self, who: Identity) -> Result<kube::Client, Error> {
        self.api
            .client(who)
            .await
            .map_err(|e| Error::ApiServer(e.to_string()))
    }

    /// Sends `rps` requests per second to every Service users create (not the ones Sluice
    /// generates), from now on, as a steady background load for `sluice sandbox --hold`. The
    /// returned task stops the watch when dropped.
    pub async fn steady_load(&self, rps: f64) -> Result<crate::controller::run::Task, Error> {
        use futures::StreamExt as _;
        use k8s_openapi::api::core::v1::Service;
        use kube::ResourceExt as _;
        use kube::runtime::{WatchStreamExt as _, watcher};

        use crate::controller::objects::{MANAGED_BY, MANAGED_BY_LABEL};

        let client = self.client(Identity::Admin).await?;
        let mesh = self.mesh.clone();
        let services = kube::Api::<Service>::all(client);
        let stream = watcher(services, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .for_each(move |svc| {
                if let Ok(svc) = svc
                    && svc.labels().get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY)
                    && let Some(ns) = svc.namespace()
                {
                    mesh.set_load(&ns, &svc.name_any(), rps);
                }
                async {}
            });
        Ok(crate::controller::run::Task::spawn(stream))
    }

    /// The admin kubeconfig, for `kubectl --kubeconfig`.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.api.kubeconfig_path(Identity::Admin)
    }

    /// Stops every part.
    pub async fn shutdown(self) {
        self.mesh.shutdown();
        self.workload.shutdown();
        self.hpa.shutdown();
        if let Err(e) = self.metrics.shutdown().await {
            tracing::warn!("stopping the sandbox's Prometheus: {e}");
        }
        self.api.shutdown().await;
    }
}

async fn start_metrics(
    backend: MetricsBackend,
    mesh: &MeshSimulator,
) -> Result<QueryBackend, Error> {
    let binary = match backend {
        MetricsBackend::Builtin => PrometheusBinary::NotInstalled,
        MetricsBackend::Auto => {
            prometheus::locate_binary().map_err(|e| Error::Prometheus(e.to_string()))?
        }
    };
    let source: Arc<dyn prometheus::CounterSource> = Arc::new(mesh.clone());
    QueryBackend::start(binary, vec![mesh.metrics_addr()], source)
        .await
        .map_err(|e| Error::Prometheus(e.to_string()))
}
