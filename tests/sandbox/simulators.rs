//! Sandbox tests: the workload and mesh simulators driven through the sandbox API server
//! with an unmodified `kube::Client`, the way Sluice's controller will see them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition};
use k8s_openapi::api::core::v1::Service;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use sluice::sandbox::apiserver::ApiServer;
use sluice::sandbox::mesh::{MeshOptions, MeshSimulator, Profile, RequestClass};
use sluice::sandbox::prometheus::CounterSource;
use sluice::sandbox::workload::{SimPod, WorkloadOptions, WorkloadSimulator};

use crate::support;

const READY_DELAY: Duration = Duration::from_millis(300);
const PATIENCE: Duration = Duration::from_secs(20);

struct Cluster {
    server: ApiServer,
    client: kube::Client,
    workload: WorkloadSimulator,
}

impl Cluster {
    async fn start(namespace: &str) -> Cluster {
        let (server, client) = support::server_and_client().await;
        support::namespace(&client, namespace).await;
        let workload = WorkloadSimulator::start(
            client.clone(),
            WorkloadOptions {
                ready_delay: READY_DELAY,
            },
        );
        Cluster {
            server,
            client,
            workload,
        }
    }

    fn deployments(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Creates `d` in `ns` and waits for its rollout; returns the API and the rolled-out state.
    async fn roll_out(&self, ns: &str, d: &Deployment) -> (Api<Deployment>, Deployment) {
        let api = self.deployments(ns);
        api.create(&PostParams::default(), d)
            .await
            .expect("deployment created");
        let name = d.metadata.name.as_deref().expect("a named deployment");
        let rolled = wait_for(&api, name, "the first rollout", rolled_out).await;
        (api, rolled)
    }

    /// The simulated pods of `deployment` in `ns`.
    fn pods(&self, ns: &str, deployment: &str) -> Vec<SimPod> {
        self.workload
            .pods()
            .pods(ns)
            .into_iter()
            .filter(|p| p.deployment == deployment)
            .collect()
    }

    /// The mesh simulator over this cluster's pods, with default options.
    async fn start_mesh(&self) -> MeshSimulator {
        MeshSimulator::start(
            self.client.clone(),
            self.workload.pods(),
            MeshOptions::default(),
        )
        .await
        .expect("mesh starts")
    }

    async fn stop(self) {
        self.workload.shutdown();
        self.server.shutdown().await;
    }
}

fn mk_deploy(name: &str, image: &str, replicas: i32) -> Deployment {
    let app = name;
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "main", "image": image}]}}
        }
    }))
    .expect("deployment")
}

fn mk_service(name: &str, app: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": app}, "ports": [{"port": 80}]}
    }))
    .expect("service")
}

/// `mk_deploy` with a progress deadline of `seconds`.
fn mk_deploy_with_deadline(name: &str, image: &str, replicas: i32, seconds: i32) -> Deployment {
    let mut d = mk_deploy(name, image, replicas);
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(seconds);
    d
}

fn condition<'a>(d: &'a Deployment, type_: &str) -> Option<&'a DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn reason(d: &Deployment, type_: &str) -> String {
    condition(d, type_)
        .and_then(|c| c.reason.clone())
        .unwrap_or_default()
}

fn counts(d: &Deployment) -> [i32; 4] {
    let s = d.status.clone().unwrap_or_default();
    [
        s.replicas.unwrap_or(0),
        s.updated_replicas.unwrap_or(0),
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    ]
}

/// Polls `probe` until it gives `Ok`, failing after [`PATIENCE`] with `what` and the last `Err`.
async fn wait_until<T, F>(what: &str, mut probe: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        let last = match probe().await {
            Ok(done) => return done,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the Deployment until `done` holds, or fails with its last state.
async fn wait_for(
    api: &Api<Deployment>,
    name: &str,
    what: &str,
    done: impl Fn(&Deployment) -> bool,
) -> Deployment {
    wait_until(what, || async {
        let d = api.get(name).await.expect("deployment readable");
        if done(&d) {
            Ok(d)
        } else {
            Err(format!("{:?}", d.status))
        }
    })
    .await
}

fn rolled_out(d: &Deployment) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    d.status.as_ref().and_then(|s| s.observed_generation) >= d.metadata.generation
        && counts(d) == [replicas; 4]
        && reason(d, "Progressing") == "NewReplicaSetAvailable"
}

/// Whether the simulator has seen the Deployment's latest spec.
fn observed(d: &Deployment) -> bool {
    d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
}

async fn merge_patch(api: &Api<Deployment>, name: &str, patch: serde_json::Value) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("deployment patched");
}

async fn set_image(api: &Api<Deployment>, name: &str, image: &str, paused: Option<bool>) {
    let mut spec =
        json!({"template": {"spec": {"containers": [{"name": "main", "image": image}]}}});
    if let Some(paused) = paused {
        spec["paused"] = json!(paused);
    }
    merge_patch(api, name, json!({"spec": spec})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_rolls_a_new_deployment_to_ready_and_writes_kube_status() {
    let c = Cluster::start("wl").await;
    let (_, d) = c.roll_out("wl", &mk_deploy("app", "app:1", 2)).await;
    assert_eq!(
        d.status.as_ref().and_then(|s| s.observed_generation),
        Some(1)
    );
    let available = condition(&d, "Available").expect("Available condition");
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    // A settled Deployment gets no further status writes.
    tokio::time::sleep(READY_DELAY).await;
    let patches = c.server.request_counts().get("patch").copied();
    assert!(patches.is_some_and(|n| n > 0), "status was written");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c.server.request_counts().get("patch").copied(), patches);
    let pods = c.pods("wl", "app");
    assert_eq!(pods.len(), 2);
    let hash = &pods[0].template_hash;
    let message = condition(&d, "Progressing").and_then(|c| c.message.clone());
    assert_eq!(
        message,
        Some(format!(
            "ReplicaSet \"app-{hash}\" has successfully progressed."
        ))
    );
    for pod in &pods {
        assert!(pod.ready && pod.image == "app:1");
        assert!(pod.name.starts_with(&format!("app-{hash}-")));
        assert_eq!(pod.labels.get("pod-template-hash"), Some(hash));
        assert_eq!(pod.labels.get("app").map(String::as_str), Some("app"));
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_holds_a_paused_template_change_then_rolls_on_resume() {
    let c = Cluster::start("paused").await;
    let (api, _) = c.roll_out("paused", &mk_deploy("app", "app:1", 2)).await;

    set_image(&api, "app", "app:2", Some(true)).await;
    let d = wait_for(&api, "app", "the pause to be observed", observed).await;
    // What `kubectl rollout status` reads as "0 out of 2 new replicas have been updated".
    assert_eq!(counts(&d), [2, 0, 2, 2]);
    assert_eq!(reason(&d, "Progressing"), "DeploymentPaused");
    tokio::time::sleep(READY_DELAY * 2).await;
    let images: Vec<String> = c
        .pods("paused", "app")
        .into_iter()
        .map(|p| p.image)
        .collect();
    assert_eq!(images, ["app:1", "app:1"]);

    merge_patch(&api, "app", json!({"spec": {"paused": false}})).await;
    wait_for(&api, "app", "the rollout after resume", rolled_out).await;
    let pods = c.pods("paused", "app");
    assert!(
        pods.iter().all(|p| p.image == "app:2" && p.ready),
        "{pods:?}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_reports_a_broken_image_past_its_progress_deadline() {
    let c = Cluster::start("broken").await;
    let (api, _) = c
        .roll_out("broken", &mk_deploy_with_deadline("app", "app:1", 2, 2))
        .await;

    c.workload.mark_broken("app:2");
    set_image(&api, "app", "app:2", None).await;
    let d = wait_for(&api, "app", "ProgressDeadlineExceeded", |d| {
        reason(d, "Progressing") == "ProgressDeadlineExceeded"
    })
    .await;
    assert_eq!(
        condition(&d, "Progressing").map(|c| c.status.as_str()),
        Some("False")
    );
    // The old pods keep serving; the new one never turns ready.
    let pods = c.pods("broken", "app");
    let ready: Vec<&str> = pods
        .iter()
        .filter(|p| p.ready)
        .map(|p| p.image.as_str())
        .collect();
    assert_eq!(ready, ["app:1", "app:1"]);
    assert!(pods.iter().any(|p| p.image == "app:2" && !p.ready));
    assert_eq!(counts(&d), [3, 1, 2, 2]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_scales_and_drops_the_pods_of_a_deleted_deployment() {
    let c = Cluster::start("scale").await;
    let (api, _) = c.roll_out("scale", &mk_deploy("app", "app:1", 1)).await;
    merge_patch(&api, "app", json!({"spec": {"replicas": 3}})).await;
    wait_for(&api, "app", "three ready replicas", |d| {
        counts(d) == [3, 3, 3, 3]
    })
    .await;
    assert_eq!(c.pods("scale", "app").len(), 3);

    api.delete("app", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_until("the pods of a deleted Deployment to go", || async {
        let pods = c.pods("scale", "app");
        if pods.is_empty() {
            Ok(())
        } else {
            Err(format!("they linger: {pods:?}"))
        }
    })
    .await;
    c.stop().await;
}

fn split_api(client: &kube::Client, ns: &str, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("split.smi-spec.io", version, "TrafficSplit");
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "trafficsplits"),
    )
}

/// The TrafficSplit `app` of `split.smi-spec.io/{version}` in `ns`, between `app-primary` and
/// `app-canary` with the weights as that version writes them.
async fn mk_split(c: &Cluster, ns: &str, version: &str, primary: Value, canary: Value) {
    let split = json!({
        "apiVersion": format!("split.smi-spec.io/{version}"), "kind": "TrafficSplit",
        "metadata": {"name": "app"},
        "spec": {"service": "app", "backends": [
            {"service": "app-primary", "weight": primary}, {"service": "app-canary", "weight": canary}]}
    });
    split_api(&c.client, ns, version)
        .create(
            &PostParams::default(),
            &serde_json::from_value(split).expect("split"),
        )
        .await
        .expect("split created");
}

fn route_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    )
}

/// Deployments `app` (app:2, the canary) and `app-primary` (app:1), and the Services
/// `app`, `app-canary` and `app-primary`, as Sluice lays them out mid-rollout.
async fn mk_rollout_layout(c: &Cluster, ns: &str) {
    let api = c.deployments(ns);
    api.create(&PostParams::default(), &mk_deploy("app", "app:2", 2))
        .await
        .expect("canary created");
    api.create(
        &PostParams::default(),
        &mk_deploy("app-primary", "app:1", 2),
    )
    .await
    .expect("primary created");
    let services: Api<Service> = Api::namespaced(c.client.clone(), ns);
    for (name, app) in [
        ("app", "app-primary"),
        ("app-canary", "app"),
        ("app-primary", "app-primary"),
    ] {
        services
            .create(&PostParams::default(), &mk_service(name, app))
            .await
            .expect("service created");
    }
    wait_for(&api, "app", "the canary", rolled_out).await;
    wait_for(&api, "app-primary", "the primary", rolled_out).await;
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Waits until `count` whole seconds of traffic to `svc` after unix second `after` are
/// recorded (the second that is still running is never returned), and returns them.
async fn whole_seconds_after(
    mesh: &MeshSimulator,
    ns: &str,
    svc: &str,
    after: u64,
    count: usize,
) -> Vec<BTreeMap<String, u64>> {
    let what = format!("{count} whole seconds of traffic to {ns}/{svc}");
    wait_until(&what, || async {
        let now = unix_now();
        let seconds: Vec<BTreeMap<String, u64>> = mesh
            .traffic(ns, svc)
            .into_iter()
            .filter(|s| s.unix_second > after && s.unix_second < now)
            .map(|s| s.by_deployment)
            .collect();
        if seconds.len() >= count {
            Ok(seconds)
        } else {
            Err(format!("only {}", seconds.len()))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_splits_traffic_by_the_stored_trafficsplit_and_exports_linkerd_metrics() {
    let c = Cluster::start("mesh").await;
    mk_rollout_layout(&c, "mesh").await;
    mk_split(&c, "mesh", "v1alpha2", json!(90), json!(10)).await;

    let mesh = c.start_mesh().await;
    mesh.set_profile(
        "app:2",
        Profile {
            error_rate: 0.1,
            latency_p50_ms: 30.0,
            latency_p99_ms: 80.0,
        },
    );
    mesh.set_load("mesh", "app", 200.0);
    let start = unix_now();
    let seconds = whole_seconds_after(&mesh, "mesh", "app", start, 2).await;
    for s in &seconds {
        let canary = s.get("app").copied().unwrap_or(0);
        let total: u64 = s.values().sum();
        // Within one request of 10% of what that second carried.
        assert!(
            canary * 10 <= total + 10 && canary * 10 + 10 >= total,
            "{s:?}"
        );
    }

    let body = reqwest::get(format!("http://{}/metrics", mesh.metrics_addr()))
        .await
        .expect("metrics reachable")
        .text()
        .await
        .expect("metrics body");
    for pod in c.pods("mesh", "app") {
        let prefix = format!(
            "response_total{{namespace=\"mesh\",deployment=\"app\",pod=\"{}\",pod_template_hash=\"{}\",direction=\"inbound\",classification=\"failure\",status_code=\"500\"}} ",
            pod.name, pod.template_hash
        );
        assert!(body.lines().any(|l| l.starts_with(&prefix)), "{body}");
    }
    assert!(
        body.contains("response_latency_ms_bucket{namespace=\"mesh\",deployment=\"app-primary\"")
    );

    // The built-in query endpoint holds the simulator as a shared counter source.
    let source: Arc<dyn CounterSource> = Arc::new(mesh.clone());
    let counters = source
        .counters_at("mesh", "app", SystemTime::now())
        .expect("canary counters");
    assert!(counters.requests > 0);
    // Each of the two canary pods fails exactly every tenth request it answers.
    assert!(
        counters.failures.abs_diff(counters.requests / 10) <= 2,
        "{counters:?}"
    );
    assert_eq!(
        counters.latency_buckets.last().map(|b| b.1),
        Some(counters.requests)
    );
    mesh.shutdown();
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_reads_v1alpha1_quantities_when_v1alpha2_is_not_served() {
    let c = Cluster::start("alpha1").await;
    c.server.set_served("split.smi-spec.io/v1alpha2", false);
    mk_rollout_layout(&c, "alpha1").await;
    mk_split(&c, "alpha1", "v1alpha1", json!("500m"), json!("500m")).await;
    let mesh = c.start_mesh().await;
    mesh.set_load("alpha1", "app", 100.0);
    let seconds = whole_seconds_after(&mesh, "alpha1", "app", unix_now(), 2).await;
    for s in &seconds {
        let (canary, primary) = (
            s.get("app").copied().unwrap_or(0),
            s.get("app-primary").copied().unwrap_or(0),
        );
        assert!(canary.abs_diff(primary) <= 1, "{s:?}");
    }
    mesh.shutdown();
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_sends_a_header_class_to_its_httproute_backend_and_follows_route_changes() {
    let c = Cluster::start("ab").await;
    mk_rollout_layout(&c, "ab").await;
    let routes = route_api(&c.client, "ab");
    let route = |canary_weight: i64| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "app"},
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "app", "port": 80}],
                "rules": [
                    {"matches": [{"headers": [{"name": "cookie", "type": "RegularExpression",
                                               "value": "(^|;\\s*)canary=always(;|$)"}]}],
                     "backendRefs": [{"name": "app-canary", "port": 80}]},
                    {"backendRefs": [{"name": "app-primary", "port": 80, "weight": 100 - canary_weight},
                                     {"name": "app-canary", "port": 80, "weight": canary_weight}]}]}
        }))
        .expect("route")
    };
    routes
        .create(&PostParams::default(), &route(0))
        .await
        .expect("route created");

    let mesh = c.start_mesh().await;
    mesh.set_request_classes(
        "ab",
        "app",
        vec![
            RequestClass {
                name: "insiders".into(),
                share: 1.0,
                cookies: BTreeMap::from([("canary".to_string(), "always".to_string())]),
                ..Default::default()
            },
            RequestClass {
                name: "everyone".into(),
                share: 4.0,
                ..Default::default()
            },
        ],
    );
    mesh.set_load("ab", "app", 100.0);
    for s in whole_seconds_after(&mesh, "ab", "app", unix_now(), 2).await {
        // One request in five is an insider's; only insiders reach the canary.
        let total: u64 = s.values().sum();
        let canary = s.get("app").copied().unwrap_or(0);
        assert!((canary * 5).abs_diff(total) <= 5, "{s:?}");
    }

    // Moving the weight moves the non-insider traffic with it.
    let mut updated = route(50);
    let current = routes.get("app").await.expect("route readable");
    updated.metadata.resource_version = current.metadata.resource_version;
    routes
        .replace("app", &PostParams::default(), &updated)
        .await
        .expect("route updated");
    // The watch delivers the change well within a second.
    let changed = unix_now() + 1;
    for s in whole_seconds_after(&mesh, "ab", "app", changed, 1).await {
        // Insiders (1/5) plus half of everyone else (2/5).
        let total: u64 = s.values().sum();
        let canary = s.get("app").copied().unwrap_or(0);
        assert!((canary * 5).abs_diff(total * 3) <= 10, "{s:?}");
    }
    mesh.shutdown();
    c.stop().await;
}

/// `kubectl rollout status` against the sandbox: (exit success, stdout + stderr).
async fn rollout_status(
    kubectl: &Path,
    server: &ApiServer,
    ns: &str,
    extra: &[&str],
) -> (bool, String) {
    let args: Vec<&str> = [
        "-n",
        ns,
        "rollout",
        "status",
        "deployment/app",
        "--timeout=20s",
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .collect();
    let out = support::run_kubectl(kubectl, server, &args).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_reads_the_simulated_status() {
    let Some(kubectl) = support::kubectl() else {
        return;
    };
    let c = Cluster::start("kubectl").await;
    let api = c.deployments("kubectl");
    api.create(
        &PostParams::default(),
        &mk_deploy_with_deadline("app", "app:1", 2, 2),
    )
    .await
    .expect("deployment created");
    let (ok, text) = rollout_status(&kubectl, &c.server, "kubectl", &[]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("deployment \"app\" successfully rolled out"),
        "{text}"
    );

    set_image(&api, "app", "app:2", Some(true)).await;
    wait_for(&api, "app", "the pause to be observed", observed).await;
    let (_, text) = rollout_status(&kubectl, &c.server, "kubectl", &["--watch=false"]).await;
    assert!(
        text.contains("Waiting for deployment \"app\" rollout to finish: 0 out of 2 new replicas have been updated..."),
        "{text}"
    );

    c.workload.mark_broken("app:3");
    set_image(&api, "app", "app:3", Some(false)).await;
    let (ok, text) = rollout_status(&kubectl, &c.server, "kubectl", &[]).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("deployment \"app\" exceeded its progress deadline"),
        "{text}"
    );
    c.stop().await;
}
