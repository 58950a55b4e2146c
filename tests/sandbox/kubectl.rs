//! Sandbox tests: an unmodified kubectl (`/usr/bin/kubectl`, v1.32) against the sandbox API
//! server, through the kubeconfig it writes. Without kubectl the tests fail when `CI=true` and
//! print a one-line skip reason otherwise.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::Value;
use sluice::sandbox::apiserver::{ApiServer, Identity};

const KUBECTL: &str = "/usr/bin/kubectl";

/// Whether kubectl can be run; panics in CI when it cannot.
fn have_kubectl(test: &str) -> bool {
    if Path::new(KUBECTL).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{KUBECTL} is missing; CI must install kubectl for {test}");
    }
    eprintln!("skipping {test}: {KUBECTL} is not installed");
    false
}

/// Runs kubectl against `server` as the admin; returns stdout, failing on a non-zero exit.
async fn kubectl(server: &ApiServer, args: &[&str]) -> String {
    let out = tokio::process::Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path(Identity::Admin))
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.to_lowercase().contains("error") || l.contains("warning: error"))
        .collect();
    assert!(errors.is_empty(), "kubectl {args:?} complained: {stderr}");
    stdout
}

fn manifest(image: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: default
  labels: {{app: podinfo}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: podinfo}}}}
  template:
    metadata: {{labels: {{app: podinfo}}}}
    spec:
      containers:
      - name: podinfod
        image: {image}
      - name: sidecar
        image: proxy:1
"#
    )
}

async fn get_json(server: &ApiServer) -> Value {
    let out = kubectl(
        server,
        &[
            "-n",
            "default",
            "get",
            "deployment",
            "podinfo",
            "-o",
            "json",
            "--show-managed-fields",
        ],
    )
    .await;
    serde_json::from_str(&out).expect("kubectl -o json prints JSON")
}

fn images(d: &Value) -> Vec<(String, String)> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["image"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn kubectl_lists_deployments_in_every_namespace() {
    if !have_kubectl("kubectl_lists_deployments_in_every_namespace") {
        return;
    }
    let server = crate::conformance::server().await;
    let client = server.client(Identity::Admin).await.unwrap();
    crate::conformance::namespace(&client, "team").await;
    for ns in ["default", "team"] {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        api.create(
            &PostParams::default(),
            &crate::conformance::deployment(&format!("web-{ns}"), "web", 1),
        )
        .await
        .unwrap();
    }
    let out = kubectl(&server, &["get", "deploy", "-A"]).await;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        vec![
            "NAMESPACE",
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE"
        ],
        "the server's Table columns"
    );
    let cells: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[1], r[2])).collect();
    assert_eq!(
        cells,
        vec![
            ("default", "web-default", "0/1"),
            ("team", "web-team", "0/1")
        ],
        "{out}"
    );
}

#[tokio::test]
async fn kubectl_create_from_a_file_works_and_imperative_generators_get_415() {
    if !have_kubectl("kubectl_create_from_a_file_works_and_imperative_generators_get_415") {
        return;
    }
    let server = crate::conformance::server().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cm.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n",
    )
    .unwrap();
    let out = kubectl(&server, &["create", "-f", file.to_str().unwrap()]).await;
    assert_eq!(out.trim(), "configmap/settings created");
    let out = kubectl(&server, &["get", "configmaps"]).await;
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..2], &["settings", "1"], "{out}");
    // `kubectl create configmap NAME` sends protobuf, which the sandbox does not decode.
    let refused = tokio::process::Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path(Identity::Admin))
        .args(["create", "configmap", "other", "--from-literal=a=b"])
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown format"));
}

#[tokio::test]
async fn kubectl_client_side_apply_creates_then_changes_an_image() {
    if !have_kubectl("kubectl_client_side_apply_creates_then_changes_an_image") {
        return;
    }
    let server = crate::conformance::server().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("podinfo.yaml");
    let path = file.to_str().unwrap();
    std::fs::write(&file, manifest("podinfo:6.0.0", 2)).unwrap();
    let out = kubectl(&server, &["apply", "-f", path]).await;
    assert_eq!(out.trim(), "deployment.apps/podinfo created");
    std::fs::write(&file, manifest("podinfo:6.0.1", 2)).unwrap();
    let out = kubectl(&server, &["apply", "-f", path]).await;
    assert_eq!(out.trim(), "deployment.apps/podinfo configured");
    let d = get_json(&server).await;
    assert_eq!(
        images(&d),
        vec![
            ("podinfod".to_string(), "podinfo:6.0.1".to_string()),
            ("sidecar".to_string(), "proxy:1".to_string())
        ]
    );
    assert_eq!(d["metadata"]["generation"], 2);
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap()
            .contains("podinfo:6.0.1")
    );
    let out = kubectl(&server, &["apply", "-f", path]).await;
    assert_eq!(out.trim(), "deployment.apps/podinfo unchanged");
}

#[tokio::test]
async fn kubectl_server_side_apply_shows_in_get_json() {
    if !have_kubectl("kubectl_server_side_apply_shows_in_get_json") {
        return;
    }
    let server = crate::conformance::server().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("podinfo.yaml");
    let path = file.to_str().unwrap();
    std::fs::write(&file, manifest("podinfo:6.0.0", 2)).unwrap();
    let out = kubectl(&server, &["apply", "--server-side", "-f", path]).await;
    assert_eq!(out.trim(), "deployment.apps/podinfo serverside-applied");
    std::fs::write(&file, manifest("podinfo:6.0.1", 3)).unwrap();
    kubectl(&server, &["apply", "--server-side", "-f", path]).await;
    let d = get_json(&server).await;
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        images(&d)[0],
        ("podinfod".to_string(), "podinfo:6.0.1".to_string())
    );
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        managers.contains(&"kubectl"),
        "managedFields name kubectl: {managers:?}"
    );
}

#[tokio::test]
async fn kubectl_scales_through_the_scale_subresource() {
    if !have_kubectl("kubectl_scales_through_the_scale_subresource") {
        return;
    }
    let server = crate::conformance::server().await;
    let client = server.client(Identity::Admin).await.unwrap();
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &crate::conformance::deployment("podinfo", "podinfo", 1),
    )
    .await
    .unwrap();
    let out = kubectl(
        &server,
        &[
            "-n",
            "default",
            "scale",
            "deployment",
            "podinfo",
            "--replicas=4",
        ],
    )
    .await;
    assert_eq!(out.trim(), "deployment.apps/podinfo scaled");
    assert_eq!(get_json(&server).await["spec"]["replicas"], 4);
    let counts = server.request_counts();
    assert!(counts.get("patch").copied().unwrap_or(0) >= 1, "{counts:?}");
}
