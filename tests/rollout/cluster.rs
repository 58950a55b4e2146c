//! The real-cluster backend of the end-to-end rollouts, used when `SLUICE_E2E_KUBECONFIG` is
//! set. What the cluster needs (Linkerd with linkerd-viz, the SMI extension, Sluice installed
//! from `deploy/`) and every variable read here are in `tests/README.md`.
//!
//! - Each scenario gets its own namespace, `sluice-e2e-<random>`, meshed by Linkerd, deleted
//!   at the end.
//! - Versions are podinfo images: a healthy one is a tag, the bad one runs podinfo with
//!   `--random-error`, the broken one has a readiness probe that always fails.
//! - Load comes from a `loadgen` Deployment in the namespace running `hey`.
//! - Traffic per version comes from Linkerd's `response_total` in Prometheus, per scrape
//!   interval (the sandbox counts it per second).
//! - Killing Sluice deletes its pods with no grace period after scaling it to zero.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use sluice::analysis::prometheus::{PromClient, Sample};

use crate::harness::{APP, TrafficWindow, Version};

const SLUICE: &str = "sluice";

/// A real cluster with Sluice installed.
pub struct Cluster {
    pub client: kube::Client,
    pub namespace: String,
    pub interval: Duration,
    pub scrape_interval: Duration,
    image: String,
    loadgen_image: String,
    prom: PromClient,
    sluice_namespace: String,
    sluice_replicas: AtomicI32,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn duration_var(name: &str, default: &str) -> Duration {
    let v = var(name).unwrap_or_else(|| default.to_string());
    humantime::parse_duration(&v).unwrap_or_else(|e| {
        panic!("{name}={v:?} is not a duration ({e}); use a value like {default}")
    })
}

impl Cluster {
    /// Whether the scenarios run on a real cluster (`SLUICE_E2E_KUBECONFIG` is set).
    pub fn enabled() -> bool {
        var("SLUICE_E2E_KUBECONFIG").is_some()
    }

    /// The cluster `SLUICE_E2E_KUBECONFIG` points at, or `None` to use the sandbox.
    pub async fn from_env() -> Option<Cluster> {
        let path = var("SLUICE_E2E_KUBECONFIG")?;
        let prometheus = var("SLUICE_E2E_PROMETHEUS_URL").unwrap_or_else(|| {
            panic!("SLUICE_E2E_KUBECONFIG is set, so SLUICE_E2E_PROMETHEUS_URL must name linkerd-viz's Prometheus (see tests/README.md)")
        });
        let kubeconfig = kube::config::Kubeconfig::read_from(&path)
            .unwrap_or_else(|e| panic!("SLUICE_E2E_KUBECONFIG={path}: {e}"));
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("SLUICE_E2E_KUBECONFIG={path}: {e}"));
        let client = kube::Client::try_from(config).expect("a client");
        let suffix: String = (0..6).map(|_| fastrand::lowercase()).collect();
        let cluster = Cluster {
            client,
            namespace: format!("sluice-e2e-{suffix}"),
            interval: duration_var("SLUICE_E2E_INTERVAL", "30s"),
            scrape_interval: duration_var("SLUICE_E2E_SCRAPE_INTERVAL", "10s"),
            image: var("SLUICE_E2E_IMAGE").unwrap_or_else(|| "ghcr.io/stefanprodan/podinfo".into()),
            loadgen_image: var("SLUICE_E2E_LOADGEN_IMAGE")
                .unwrap_or_else(|| "ghcr.io/fluxcd/flagger-loadtester:0.34.0".into()),
            prom: PromClient::new(&prometheus, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("SLUICE_E2E_PROMETHEUS_URL: {e}")),
            sluice_namespace: var("SLUICE_E2E_SLUICE_NAMESPACE")
                .unwrap_or_else(|| "sluice-system".into()),
            sluice_replicas: AtomicI32::new(0),
        };
        let replicas = cluster
            .sluice()
            .get(SLUICE)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "Deployment {}/{SLUICE} is not readable ({e}); install Sluice with `kubectl apply -k deploy/` first",
                    cluster.sluice_namespace
                )
            })
            .spec
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        cluster.sluice_replicas.store(replicas, Ordering::Release);
        Some(cluster)
    }

    fn sluice(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.sluice_namespace)
    }

    /// The podinfo container for `version`; every field a version changes is always set, so
    /// a strategic merge from any version to any other is complete.
    pub fn container(&self, version: Version) -> Value {
        let (tag, random_error, ready_path) = match version {
            Version::Stable => ("6.0.0".to_string(), false, "/readyz"),
            Version::Good(n) => (format!("6.0.{n}"), false, "/readyz"),
            Version::Bad => ("6.0.2".to_string(), true, "/readyz"),
            Version::Broken => ("6.0.3".to_string(), false, "/never-ready"),
        };
        json!({
            "name": "podinfod",
            "image": format!("{}:{tag}", self.image),
            "args": ["./podinfo", "--port=9898", format!("--random-error={random_error}")],
            "ports": [{"name": "http", "containerPort": 9898}],
            "readinessProbe": {"httpGet": {"path": ready_path, "port": 9898}, "periodSeconds": 2},
        })
    }

    /// Runs `hey` at `rps` against the apex Service, or stops it at 0.
    pub async fn set_load(&self, rps: f64) {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let target = format!("http://{APP}.{}:9898/", self.namespace);
        let qps = (rps / 2.0).ceil().max(1.0) as u64;
        let loadgen = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "loadgen", "namespace": self.namespace, "labels": {"sluice.dev/canary": "disabled"}},
            "spec": {
                "replicas": i32::from(rps > 0.0),
                "selector": {"matchLabels": {"app": "loadgen"}},
                "template": {"metadata": {"labels": {"app": "loadgen"}}, "spec": {"containers": [{
                    "name": "hey", "image": self.loadgen_image,
                    "command": ["hey", "-z", "24h", "-c", "2", "-q", qps.to_string(), target],
                }]}},
            },
        });
        api.patch(
            "loadgen",
            &PatchParams::apply("sluice-e2e").force(),
            &Patch::Apply(&loadgen),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {}/loadgen: {e}", self.namespace));
    }

    /// Requests answered per Deployment, per scrape interval since `from`.
    pub async fn traffic(&self, from: SystemTime) -> Vec<TrafficWindow> {
        let step = self.scrape_interval;
        let window = humantime::format_duration(step).to_string();
        let mut windows = Vec::new();
        let mut to = from + step;
        while to + step <= SystemTime::now() {
            let mut by_deployment = BTreeMap::new();
            for deployment in [APP.to_string(), format!("{APP}-primary")] {
                let q = format!(
                    "sum(increase(response_total{{namespace=\"{}\",deployment=\"{deployment}\",direction=\"inbound\"}}[{window}]))",
                    self.namespace
                );
                if let Ok(Sample::Value(v)) = self.prom.query(&q, Some(to)).await {
                    by_deployment.insert(deployment, v.round() as u64);
                }
            }
            windows.push(TrafficWindow {
                from: to - step,
                to,
                by_deployment,
                by_image: None,
            });
            to += step;
        }
        windows
    }

    async fn scale_sluice(&self, replicas: i32) {
        self.sluice()
            .patch(
                SLUICE,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .unwrap_or_else(|e| panic!("scaling {}/{SLUICE}: {e}", self.sluice_namespace));
    }

    async fn sluice_pods(&self) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), &self.sluice_namespace)
            .list(&ListParams::default().labels("app.kubernetes.io/name=sluice"))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    /// Scales Sluice to zero and waits until its pods are gone.
    pub async fn stop_sluice(&self) {
        self.scale_sluice(0).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.sluice_pods().await.is_empty() {
            assert!(Instant::now() < deadline, "Sluice's pods did not stop");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Scales Sluice to zero and deletes its pods with no grace period, as a node failure would.
    pub async fn kill_sluice(&self) {
        self.scale_sluice(0).await;
        let pods = Api::<Pod>::namespaced(self.client.clone(), &self.sluice_namespace);
        for pod in self.sluice_pods().await {
            let name = pod.metadata.name.unwrap_or_default();
            let _ = pods
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
        }
        self.stop_sluice().await;
    }

    /// Scales Sluice back to its installed replicas and waits until it is available.
    pub async fn start_sluice(&self) {
        let replicas = self.sluice_replicas.load(Ordering::Acquire);
        self.scale_sluice(replicas).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let d = self.sluice().get(SLUICE).await.unwrap();
            if d.status.and_then(|s| s.available_replicas).unwrap_or(0) >= replicas {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Sluice did not become available again"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Deletes the scenario's namespace and makes sure Sluice runs again.
    pub async fn finish(self) {
        if self.sluice_pods().await.is_empty() {
            self.start_sluice().await;
        }
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }
}
