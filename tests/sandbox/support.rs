//! What every sandbox test shares: start-up, finding the real binaries the tests use, a fresh
//! API server with its clients, kubectl runs, and a tiny HTTPS admission webhook.
//! A missing binary fails the test under `CI=true` (with the command that installs it) and
//! skips it with one printed line otherwise.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;

use axum::Router;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use sluice::sandbox::MetricsBackend;
use sluice::sandbox::apiserver::{ApiServer, ApiServerOptions, Identity};
use sluice::sandbox::prometheus::{INSTALL_HINT, PrometheusBinary, locate_binary};
use sluice::tls::Ca;

/// Installs the crypto provider and logging.
pub fn init() {
    sluice::tls::install_crypto_provider();
    sluice::telemetry::init();
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `None` after one skip line, or a panic under CI: `name` is not installed.
fn missing(name: &str, install: &str) -> Option<PathBuf> {
    if in_ci() {
        panic!("`{name}` is not installed and CI=true: {install}");
    }
    eprintln!("skipped: `{name}` is not installed ({install})");
    None
}

/// A real binary the test needs, or `None` (after one skip line) outside CI.
pub fn require(name: &str, install: &str) -> Option<PathBuf> {
    on_path(name).or_else(|| missing(name, install))
}

/// kubectl, for the tests that drive the sandbox the way users do.
pub fn kubectl() -> Option<PathBuf> {
    require("kubectl", "install kubectl >= 1.30 on PATH")
}

/// The Prometheus binary the sandbox would run (`PROMETHEUS_BIN`, else on `PATH`), or `None`
/// (after one skip line) outside CI.
pub fn prometheus_binary() -> Option<PathBuf> {
    match locate_binary() {
        Ok(PrometheusBinary::Installed(path)) => Some(path),
        Ok(PrometheusBinary::NotInstalled) => missing("prometheus", INSTALL_HINT),
        Err(e) => panic!("{e}"),
    }
}

/// The metrics backend for a full-stack test: the real Prometheus when it can be had.
pub fn metrics_backend() -> Option<MetricsBackend> {
    prometheus_binary().map(|_| MetricsBackend::Auto)
}

/// A fresh sandbox API server.
pub async fn server() -> ApiServer {
    init();
    ApiServer::start(ApiServerOptions::default())
        .await
        .expect("sandbox API server starts")
}

/// A fresh sandbox API server and a `kube::Client` for its admin.
pub async fn server_and_client() -> (ApiServer, kube::Client) {
    let server = server().await;
    let client = server.client(Identity::Admin).await.expect("admin client");
    (server, client)
}

/// A reqwest client that trusts the server's CA.
pub fn http(server: &ApiServer) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap()
}

/// Creates the namespace `name`.
pub async fn namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

/// Creates namespace `ns` opted in to Sluice and the apex Service `app` (selector `app: {app}`,
/// port 9898), as a user prepares a canary. (Not every test crate that includes this file uses it.)
#[allow(dead_code)]
pub async fn opted_in_with_apex(client: &kube::Client, ns: &str, app: &str) {
    let namespace: Namespace = serde_json::from_value(
        json!({"metadata": {"name": ns, "labels": {"sluice.dev/canary": "enabled"}}}),
    )
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": app},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 9898}]}}))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &svc)
        .await
        .expect("apex Service created");
}

/// A Deployment `name` labelled and selecting `app: {app}`, one container `main` of `{app}:1`.
pub fn deployment(name: &str, app: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "main", "image": format!("{app}:1")}]}}
        }
    }))
    .unwrap()
}

/// Runs `kubectl` against `server` as the admin, with the admin kubeconfig the server wrote.
pub async fn run_kubectl(kubectl: &Path, server: &ApiServer, args: &[&str]) -> Output {
    tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path(Identity::Admin))
        .args(args)
        .output()
        .await
        .expect("kubectl runs")
}

/// Serves `app` over HTTPS on a free loopback port until the test ends, with a certificate from
/// a new CA for `localhost`, 127.0.0.1 and `dns_names`. Returns the address and the CA.
pub fn serve_tls(app: Router, dns_names: &[&str]) -> (SocketAddr, Ca) {
    init();
    let ca = Ca::new("sandbox test webhook CA").unwrap();
    let names: Vec<&str> = std::iter::once("localhost")
        .chain(dns_names.iter().copied())
        .collect();
    let issued = ca.issue(&names, &[Ipv4Addr::LOCALHOST.into()]).unwrap();
    let tls =
        sluice::tls::server_config("test webhook", &issued.cert_pem, &issued.key_pem).unwrap();
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .unwrap();
    tokio::spawn(server.serve(app.into_make_service()));
    (addr, ca)
}

/// A tiny HTTPS admission webhook (certificate for `localhost`, 127.0.0.1 and the Service
/// `sluice-webhook.sluice-system.svc`) at `/{path}` answering each review's `request` with the
/// `response` that `answer` builds (the uid is filled in). Returns its address and CA.
pub async fn webhook(
    path: &'static str,
    answer: impl Fn(&Value) -> Value + Clone + Send + Sync + 'static,
) -> (SocketAddr, String) {
    let app = Router::new().route(
        &format!("/{path}"),
        axum::routing::post(move |axum::Json(review): axum::Json<Value>| async move {
            let mut response = answer(&review["request"]);
            response["uid"] = review["request"]["uid"].clone();
            axum::Json(json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": response,
            }))
        }),
    );
    let (addr, ca) = serve_tls(app, &["sluice-webhook.sluice-system.svc"]);
    (addr, ca.cert_pem().to_string())
}

/// A loopback port nothing listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
