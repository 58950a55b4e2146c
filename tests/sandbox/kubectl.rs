//! Sandbox tests: an unmodified kubectl (v1.32, found on `PATH` by `support::kubectl`) against
//! the sandbox API server, through the kubeconfig it writes. Without kubectl the tests fail when
//! `CI=true` and print a one-line skip reason otherwise.

use std::path::PathBuf;
use std::process::Output;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::Value;
use sluice::sandbox::apiserver::{ApiServer, Identity};

use crate::support;

/// kubectl and a fresh sandbox API server, with a folder for the manifests it applies.
struct Session {
    kubectl: PathBuf,
    server: ApiServer,
    dir: tempfile::TempDir,
}

impl Session {
    /// `None` (after one skip line) when kubectl is not installed and CI is not set.
    async fn start() -> Option<Self> {
        let kubectl = support::kubectl()?;
        Some(Self {
            kubectl,
            server: support::server().await,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    async fn client(&self) -> kube::Client {
        self.server.client(Identity::Admin).await.unwrap()
    }

    async fn output(&self, args: &[&str]) -> Output {
        support::run_kubectl(&self.kubectl, &self.server, args).await
    }

    /// Runs kubectl as the admin; returns stdout, failing on a non-zero exit or a complaint.
    async fn run(&self, args: &[&str]) -> String {
        let out = self.output(args).await;
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

    /// Writes `contents` to `name` in the session's folder; returns its path.
    fn write(&self, name: &str, contents: &str) -> String {
        let file = self.dir.path().join(name);
        std::fs::write(&file, contents).unwrap();
        file.to_str().unwrap().to_string()
    }

    /// `kubectl apply {flags} -f` of `manifest`.
    async fn apply(&self, flags: &[&str], manifest: &str) -> String {
        let path = self.write("podinfo.yaml", manifest);
        let args: Vec<&str> = ["apply"]
            .into_iter()
            .chain(flags.iter().copied())
            .chain(["-f", &path])
            .collect();
        self.run(&args).await
    }

    /// `deployment/podinfo` in `default` as `kubectl get -o json --show-managed-fields` prints it.
    async fn get_json(&self) -> Value {
        let out = self
            .run(&[
                "-n",
                "default",
                "get",
                "deployment",
                "podinfo",
                "-o",
                "json",
                "--show-managed-fields",
            ])
            .await;
        serde_json::from_str(&out).expect("kubectl -o json prints JSON")
    }
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
    let Some(k) = Session::start().await else {
        return;
    };
    let client = k.client().await;
    support::namespace(&client, "team").await;
    for ns in ["default", "team"] {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        api.create(
            &PostParams::default(),
            &support::deployment(&format!("web-{ns}"), "web", 1),
        )
        .await
        .unwrap();
    }
    let out = k.run(&["get", "deploy", "-A"]).await;
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
    let Some(k) = Session::start().await else {
        return;
    };
    let file = k.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n",
    );
    let out = k.run(&["create", "-f", &file]).await;
    assert_eq!(out.trim(), "configmap/settings created");
    let out = k.run(&["get", "configmaps"]).await;
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..2], &["settings", "1"], "{out}");
    // `kubectl create configmap NAME` sends protobuf, which the sandbox does not decode.
    let refused = k
        .output(&["create", "configmap", "other", "--from-literal=a=b"])
        .await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown format"));
}

#[tokio::test]
async fn kubectl_client_side_apply_creates_then_changes_an_image() {
    let Some(k) = Session::start().await else {
        return;
    };
    let out = k.apply(&[], &manifest("podinfo:6.0.0", 2)).await;
    assert_eq!(out.trim(), "deployment.apps/podinfo created");
    let out = k.apply(&[], &manifest("podinfo:6.0.1", 2)).await;
    assert_eq!(out.trim(), "deployment.apps/podinfo configured");
    let d = k.get_json().await;
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
    let out = k.apply(&[], &manifest("podinfo:6.0.1", 2)).await;
    assert_eq!(out.trim(), "deployment.apps/podinfo unchanged");
}

#[tokio::test]
async fn kubectl_server_side_apply_shows_in_get_json() {
    let Some(k) = Session::start().await else {
        return;
    };
    let out = k
        .apply(&["--server-side"], &manifest("podinfo:6.0.0", 2))
        .await;
    assert_eq!(out.trim(), "deployment.apps/podinfo serverside-applied");
    k.apply(&["--server-side"], &manifest("podinfo:6.0.1", 3))
        .await;
    let d = k.get_json().await;
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
    let Some(k) = Session::start().await else {
        return;
    };
    let client = k.client().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &support::deployment("podinfo", "podinfo", 1),
    )
    .await
    .unwrap();
    let out = k
        .run(&[
            "-n",
            "default",
            "scale",
            "deployment",
            "podinfo",
            "--replicas=4",
        ])
        .await;
    assert_eq!(out.trim(), "deployment.apps/podinfo scaled");
    assert_eq!(k.get_json().await["spec"]["replicas"], 4);
    let counts = k.server.request_counts();
    assert!(counts.get("patch").copied().unwrap_or(0) >= 1, "{counts:?}");
}

#[tokio::test]
async fn events_a_controller_records_show_in_kubectl_get_events_and_describe() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let Some(k) = Session::start().await else {
        return;
    };
    let client = k.client().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = api
        .create(
            &PostParams::default(),
            &support::deployment("podinfo", "podinfo", 1),
        )
        .await
        .unwrap();
    // kube-runtime's Recorder writes events.k8s.io/v1 Events, as Sluice's controller does.
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "sluice".into(),
            instance: Some("sandbox".into()),
        },
    );
    use kube::Resource;
    recorder
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: "Advanced".into(),
                note: Some("weight 0% → 20% for revision abc".into()),
                action: "Rollout".into(),
                secondary: None,
            },
            &d.object_ref(&()),
        )
        .await
        .unwrap();

    let core = Api::<CoreEvent>::namespaced(client, "default")
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(core.items.len(), 1, "one storage for both Event APIs");
    assert_eq!(
        core.items[0].message.as_deref(),
        Some("weight 0% → 20% for revision abc")
    );
    assert_eq!(
        core.items[0].involved_object.name.as_deref(),
        Some("podinfo")
    );

    let out = k.run(&["-n", "default", "get", "events"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        vec!["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    let row = out.lines().nth(1).unwrap_or_default();
    assert!(
        row.contains("Normal")
            && row.contains("Advanced")
            && row.contains("deployment/podinfo")
            && row.contains("weight 0% → 20% for revision abc"),
        "{out}"
    );
    let described = k
        .run(&["-n", "default", "describe", "deployment", "podinfo"])
        .await;
    assert!(
        described.contains("Advanced") && described.contains("weight 0% → 20%"),
        "{described}"
    );
}
