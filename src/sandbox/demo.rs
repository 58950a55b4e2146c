//! The scripted demo that `sluice sandbox` runs on the sandbox with Sluice inside it:
//!
//! ```text
//! onboard podinfo (6.0.0, 50 req/s) ─► apply 6.0.1 (healthy) ─► canary steps ─► promoted
//!                                   ─► apply 6.0.2-bad (10% errors) ─► checks fail ─► rolled back
//!                                   ─► apply 6.0.2-bad again ─► refused at admission
//! ```
//!
//! Each change is a plain update of the Deployment, as `kubectl apply` makes it; progress is
//! printed live from the Deployment's `sluice.dev/status`. Intervals are short (annotations on
//! the Deployment) so the whole demo takes about a minute.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::Sandbox;
use super::apiserver::Identity;
use crate::controller::status::{CheckVerdict, Phase, RolloutStatus};

/// Names the demo uses.
pub const NAMESPACE: &str = "demo";
pub const APP: &str = "podinfo";
pub const STABLE_IMAGE: &str = "ghcr.io/stefanprodan/podinfo:6.0.0";
pub const HEALTHY_IMAGE: &str = "ghcr.io/stefanprodan/podinfo:6.0.1";
/// The tag says `bad`: 10% errors ([`super::scenario`]).
pub const BAD_IMAGE: &str = "ghcr.io/stefanprodan/podinfo:6.0.2-bad";

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
    #[error("{0}")]
    Unexpected(String),
}

/// What the demo saw, for the closing summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub lines: Vec<String>,
}

impl Summary {
    fn say(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }
}

fn kube_err(step: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { step, source }
}

/// Runs the demo against a sandbox whose Sluice is running.
pub async fn run(sandbox: &Sandbox) -> Result<Summary, Error> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let client = sandbox.client(Identity::Admin).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    onboard(&client, &deployments).await?;
    sandbox.mesh.set_load(NAMESPACE, APP, 50.0);
    wait_for(&deployments, "podinfo to be onboarded and ready", |d, s| {
        s.is_some_and(|s| s.phase == Phase::Initialized) && rolled(d, STABLE_IMAGE)
    })
    .await?;
    summary.say(format!(
        "1. onboarded deployment/{APP} ({STABLE_IMAGE}) in namespace/{NAMESPACE}; mesh sends 50 req/s"
    ));

    println!("2. kubectl apply {HEALTHY_IMAGE} (healthy)");
    set_image(&deployments, HEALTHY_IMAGE).await?;
    let end = follow(&deployments, started).await?;
    if end.phase != Phase::Succeeded {
        return Err(Error::Unexpected(format!(
            "the healthy version ended {} ({})",
            end.phase, end.message
        )));
    }
    summary.say(format!("   → {HEALTHY_IMAGE} promoted: phase Succeeded"));

    println!("3. kubectl apply {BAD_IMAGE} (10% errors)");
    set_image(&deployments, BAD_IMAGE).await?;
    let end = follow(&deployments, started).await?;
    if end.phase != Phase::Failed {
        return Err(Error::Unexpected(format!(
            "the bad version ended {} ({})",
            end.phase, end.message
        )));
    }
    summary.say(format!(
        "   → {BAD_IMAGE} rolled back after {} failed checks: phase Failed; {HEALTHY_IMAGE} serves 100% again",
        end.failed_checks
    ));

    println!("4. kubectl apply {BAD_IMAGE} again");
    match set_image(&deployments, BAD_IMAGE).await {
        Err(Error::Kube {
            source: kube::Error::Api(status),
            ..
        }) => summary.say(format!(
            "   → refused: Error from server: {}",
            status.message
        )),
        Err(e) => return Err(e),
        Ok(()) => {
            return Err(Error::Unexpected(
                "re-applying the failed revision was accepted".into(),
            ));
        }
    }
    summary.say(format!(
        "done in {:.0}s: promoted 1, rolled back 1, refused 1",
        started.elapsed().as_secs_f64()
    ));
    Ok(summary)
}

async fn onboard(client: &kube::Client, deployments: &Api<Deployment>) -> Result<(), Error> {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": { "name": NAMESPACE, "labels": { "sluice.dev/canary": "enabled" } }
    }))
    .expect("static namespace manifest");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .map_err(kube_err("creating namespace demo"))?;
    let svc: Service = serde_json::from_value(json!({
        "metadata": { "name": APP },
        "spec": { "selector": { "app": APP }, "ports": [{ "name": "http", "port": 9898 }] }
    }))
    .expect("static service manifest");
    Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &svc)
        .await
        .map_err(kube_err("creating service demo/podinfo"))?;
    deployments
        .create(&PostParams::default(), &deployment(STABLE_IMAGE))
        .await
        .map_err(kube_err("creating deployment demo/podinfo"))?;
    Ok(())
}

fn deployment(image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {
            "name": APP,
            "labels": { "app": APP },
            "annotations": {
                "sluice.dev/interval": "4s",
                "sluice.dev/step-weight": "20",
                "sluice.dev/max-weight": "60",
                "sluice.dev/threshold": "2",
                "sluice.dev/min-requests": "10",
            }
        },
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

async fn set_image(api: &Api<Deployment>, image: &str) -> Result<(), Error> {
    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "podinfod", "image": image }] } } } });
    api.patch(APP, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map_err(kube_err("updating deployment demo/podinfo"))?;
    Ok(())
}

fn status(d: &Deployment) -> Option<RolloutStatus> {
    RolloutStatus::from_annotations(d.metadata.annotations.as_ref())
        .ok()
        .flatten()
}

fn rolled(d: &Deployment, image: &str) -> bool {
    let (Some(spec), Some(st)) = (&d.spec, &d.status) else {
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
        && st.observed_generation == d.metadata.generation
        && st.updated_replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want
}

async fn wait_for(
    api: &Api<Deployment>,
    what: &str,
    done: impl Fn(&Deployment, Option<&RolloutStatus>) -> bool,
) -> Result<(), Error> {
    let limit = Duration::from_secs(60);
    let deadline = Instant::now() + limit;
    loop {
        let d = api
            .get(APP)
            .await
            .map_err(kube_err("reading deployment demo/podinfo"))?;
        if done(&d, status(&d).as_ref()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(limit, what.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn figure(verdicts: &[CheckVerdict], name: &str, unit: &str) -> String {
    verdicts
        .iter()
        .find(|v| v.name == name)
        .and_then(|v| v.value)
        .map(|v| format!("{v:.1}{unit}"))
        .unwrap_or_else(|| "-".into())
}

/// Prints each change of phase, weight or verdict until the rollout is at rest again.
async fn follow(api: &Api<Deployment>, started: Instant) -> Result<RolloutStatus, Error> {
    let limit = Duration::from_secs(120);
    let deadline = Instant::now() + limit;
    let mut last = None;
    let mut moved = false;
    loop {
        let d = api
            .get(APP)
            .await
            .map_err(kube_err("reading deployment demo/podinfo"))?;
        if let Some(s) = status(&d) {
            let line = format!(
                "   {:<16} weight {:>3}%   success {:>6}   p99 {:>7}   failed checks {}",
                s.phase.as_str(),
                s.weight,
                figure(&s.last_verdicts, "success-rate", "%"),
                figure(&s.last_verdicts, "latency-p99", "ms"),
                s.failed_checks,
            );
            if last.as_ref() != Some(&line) {
                println!("[{:>5.1}s]{line}", started.elapsed().as_secs_f64());
                last = Some(line);
            }
            moved |= !s.phase.is_at_rest();
            if moved && s.phase.is_at_rest() {
                return Ok(s);
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(limit, "the rollout to finish".into()));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
