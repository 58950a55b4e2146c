//! The scripted demo that `sluice sandbox` runs: a namespace opted in to Sluice, an app with
//! live traffic, its metrics read back through the Prometheus HTTP API, and an image update
//! rolled out by the (simulated) deployment controller.
//!
//! ```text
//! create ns/demo + svc/podinfo + deploy/podinfo ─► ready ─► traffic ─► success rate, p99
//!                                         └─► update image ─► rolled ─► summary
//! ```

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::Sandbox;
use super::apiserver::Identity;
use crate::analysis::prometheus::PromClient;
use crate::analysis::queries::BuiltinQuery;

/// Names the demo uses.
pub const NAMESPACE: &str = "demo";
pub const APP: &str = "podinfo";
pub const STABLE_IMAGE: &str = "ghcr.io/stefanprodan/podinfo:6.0.0";
pub const NEW_IMAGE: &str = "ghcr.io/stefanprodan/podinfo:6.0.1";

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{step}: {source}")]
    Kube {
        step: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Sandbox(#[from] super::Error),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error("reading metrics: {0}")]
    Metrics(String),
}

/// What the demo saw, for the closing summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub lines: Vec<String>,
}

impl Summary {
    fn say(&mut self, line: String) {
        println!("  {line}");
        self.lines.push(line);
    }
}

fn kube_err(step: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { step, source }
}

/// Runs the demo against a started sandbox.
pub async fn run(sandbox: &Sandbox) -> Result<Summary, Error> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let client = sandbox.client(Identity::Admin).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);

    let ns: Namespace = serde_json::from_value(json!({
        "metadata": { "name": NAMESPACE, "labels": { "sluice.dev/canary": "enabled" } }
    }))
    .expect("static namespace manifest");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .map_err(kube_err("creating namespace demo"))?;
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": APP },
        "spec": { "selector": { "app": APP }, "ports": [{ "name": "http", "port": 9898 }] }
    }))
    .expect("static service manifest");
    services
        .create(&PostParams::default(), &svc)
        .await
        .map_err(kube_err("creating service demo/podinfo"))?;
    deployments
        .create(&PostParams::default(), &deployment(STABLE_IMAGE))
        .await
        .map_err(kube_err("creating deployment demo/podinfo"))?;
    summary.say(format!(
        "created namespace/{NAMESPACE} (sluice.dev/canary=enabled), service/{APP}, deployment/{APP} ({STABLE_IMAGE})"
    ));

    wait_rolled(&deployments, STABLE_IMAGE).await?;
    summary.say(format!(
        "deployment/{APP} ready after {:.1}s",
        started.elapsed().as_secs_f64()
    ));

    sandbox.mesh.set_load(NAMESPACE, APP, 50.0);
    summary.say(format!("mesh: 50 requests/s to service/{APP}"));
    let (rate, p99) = read_metrics(sandbox).await?;
    summary.say(format!(
        "{}: success rate {rate:.1}%, p99 latency {p99:.0}ms over the last 10s",
        if !sandbox.metrics.is_simulated() {
            "prometheus"
        } else {
            "built-in query endpoint"
        }
    ));

    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "podinfod", "image": NEW_IMAGE }] } } } });
    deployments
        .patch(APP, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map_err(kube_err("updating deployment demo/podinfo"))?;
    let t = Instant::now();
    wait_rolled(&deployments, NEW_IMAGE).await?;
    summary.say(format!(
        "image {NEW_IMAGE} rolled out in {:.1}s (Sluice's canary controller takes over this step once installed)",
        t.elapsed().as_secs_f64()
    ));
    Ok(summary)
}

fn deployment(image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": APP, "labels": { "app": APP } },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": APP } },
            "template": {
                "metadata": { "labels": { "app": APP } },
                "spec": { "containers": [{ "name": "podinfod", "image": image, "ports": [{ "containerPort": 9898 }] }] }
            }
        }
    }))
    .expect("static deployment manifest")
}

/// Waits until every replica runs `image` and is available.
async fn wait_rolled(api: &Api<Deployment>, image: &str) -> Result<(), Error> {
    let limit = Duration::from_secs(60);
    let deadline = Instant::now() + limit;
    loop {
        let d = api
            .get(APP)
            .await
            .map_err(kube_err("reading deployment demo/podinfo"))?;
        if rolled(&d, image) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(
                limit,
                format!("deployment/{APP} to run {image}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rolled(d: &Deployment, image: &str) -> bool {
    let (Some(spec), Some(status)) = (&d.spec, &d.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    let template_image = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref());
    template_image == Some(image)
        && status.observed_generation == d.metadata.generation
        && status.updated_replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
}

/// Polls the success rate and p99 of the app until Prometheus has two scrapes of traffic.
async fn read_metrics(sandbox: &Sandbox) -> Result<(f64, f64), Error> {
    let prom = PromClient::new(sandbox.metrics.url(), Duration::from_secs(5))
        .map_err(|e| Error::Metrics(e.to_string()))?;
    let interval = Duration::from_secs(10);
    let rate_q = BuiltinQuery::SuccessRate {
        namespace: NAMESPACE.into(),
        deployment: APP.into(),
        interval,
    };
    let p99_q = BuiltinQuery::LatencyP99 {
        namespace: NAMESPACE.into(),
        deployment: APP.into(),
        interval,
    };
    let limit = Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    loop {
        let rate = prom.query_value(&rate_q.promql(), None).await;
        let p99 = prom.query_value(&p99_q.promql(), None).await;
        match (rate, p99) {
            (Ok(rate), Ok(p99)) => return Ok((rate, p99)),
            (Err(e), _) | (_, Err(e)) => {
                last.clear();
                let _ = write!(last, "{e}");
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(
                limit,
                format!("metrics of deployment/{APP} (last answer: {last})"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
