//! The kubectl plugin, as a user runs it: a real `kubectl` finds the `kubectl-sluice` binary on
//! PATH and runs `kubectl sluice status|explain|pause|resume|abort|retry` against the sandbox
//! with Sluice inside; `-o json|yaml|wide`, `-n`, `-A`, `--kubeconfig`, `--context`; and
//! `status -w --until-done` following a whole rollout. Without kubectl or Prometheus, it fails
//! under `CI=true` and is skipped with one line otherwise.

#[path = "sandbox/support.rs"]
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use sluice::controller::status::{Phase, RolloutStatus};
use sluice::sandbox::apiserver::Identity;
use sluice::sandbox::embedded::Embedded;
use sluice::sandbox::{Sandbox, SandboxOptions};

const NS: &str = "shop";
const APP: &str = "podinfo";

/// The plugin and kubectl, with the sandbox's admin kubeconfig in $KUBECONFIG.
struct Kubectl {
    kubectl: PathBuf,
    /// A folder holding only `kubectl-sluice`, first on PATH.
    plugins: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.plugins.path().to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        let mut cmd = tokio::process::Command::new(&self.kubectl);
        cmd.args(args)
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("SLUICE_KUBECONFIG")
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.expect("kubectl runs")
    }

    /// stdout of a run that must succeed.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A run that must fail and say `says` on stderr.
    async fn fails(&self, args: &[&str], says: &str) {
        let out = self.run(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(says),
            "kubectl {args:?} should fail saying {says:?}: {}\nstderr: {stderr}",
            out.status
        );
    }
}

/// The plugin binary under its own name in a fresh folder (as `cargo install` or a copy puts it).
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl-sluice"),
        dir.path().join("kubectl-sluice"),
    )
    .unwrap();
    dir
}

/// The example app in `shop` (opted in), onboarded, with live traffic and short analysis.
async fn app(client: &kube::Client, sandbox: &Sandbox) {
    let ns: Namespace = serde_json::from_value(
        json!({"metadata": {"name": NS, "labels": {"sluice.dev/canary": "enabled"}}}),
    )
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": APP}, "spec": {"selector": {"app": APP}, "ports": [{"name": "http", "port": 9898}]}})).unwrap();
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": APP, "labels": {"app": APP}, "annotations": {
            "sluice.dev/interval": "2s", "sluice.dev/step-weight": "50",
            "sluice.dev/max-weight": "50", "sluice.dev/min-requests": "5",
            "sluice.dev/threshold": "3"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": APP}},
            "template": {"metadata": {"labels": {"app": APP}}, "spec": {"containers": [{"name": "podinfod", "image": "podinfo:6.0.0"}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    sandbox.mesh.set_load(NS, APP, 50.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = Api::<Deployment>::namespaced(client.clone(), NS)
            .get(APP)
            .await
            .unwrap();
        let s = RolloutStatus::from_annotations(d.metadata.annotations.as_ref()).unwrap();
        if s.is_some_and(|s| s.phase == Phase::Initialized) {
            return;
        }
        assert!(Instant::now() < deadline, "the app was not onboarded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A kubeconfig whose current context points at a dead port, beside the sandbox's context.
fn two_contexts(sandbox_kubeconfig: &Path, dir: &Path) -> PathBuf {
    let mut kc: Value =
        serde_json::from_str(&std::fs::read_to_string(sandbox_kubeconfig).unwrap()).unwrap();
    let mut dead = kc["clusters"][0].clone();
    dead["name"] = "dead".into();
    dead["cluster"]["server"] = format!("https://127.0.0.1:{}", support::free_port()).into();
    kc["clusters"].as_array_mut().unwrap().push(dead);
    let mut ctx = kc["contexts"][0].clone();
    ctx["name"] = "dead".into();
    ctx["context"]["cluster"] = "dead".into();
    kc["contexts"].as_array_mut().unwrap().push(ctx);
    kc["current-context"] = "dead".into();
    let path = dir.join("two-contexts.kubeconfig");
    std::fs::write(&path, kc.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sluice_shows_explains_steers_and_watches_a_rollout() {
    let Some(kubectl) = support::kubectl() else {
        return;
    };
    let Some(metrics) = support::metrics_backend() else {
        return;
    };
    support::init();
    let sandbox = Sandbox::start(SandboxOptions {
        ready_delay: Duration::from_millis(500),
        metrics,
    })
    .await
    .unwrap();
    let sluice = Embedded::start(&sandbox).await.unwrap();
    let admin = sandbox.client(Identity::Admin).await.unwrap();
    app(&admin, &sandbox).await;
    let k = Kubectl {
        kubectl,
        plugins: plugin_dir(),
        kubeconfig: sandbox.kubeconfig_path(),
    };

    // kubectl finds the plugin (ours comes first on PATH), and its usage names it as kubectl's.
    let help = k.ok(&["sluice", "--help"]).await;
    assert!(help.contains("Usage: kubectl sluice"), "{help}");

    // status: the table in the context's namespace (default: nothing there), -n, -A.
    let empty = k.ok(&["sluice", "status"]).await;
    assert!(empty.contains("in namespace default; -A"), "{empty}");
    let table = k.ok(&["sluice", "status", "-n", NS]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME ") && lines[0].contains("PHASE"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("podinfo ") && lines[1].contains("Initialized"),
        "{table}"
    );
    assert!(
        lines[1].contains("0/3"),
        "failed checks out of the threshold: {table}"
    );
    let wide = k.ok(&["sluice", "status", "-A", "-o", "wide"]).await;
    assert!(
        wide.starts_with("NAMESPACE ") && wide.contains("MESSAGE") && wide.contains("\nshop "),
        "{wide}"
    );
    let doc: Value =
        serde_json::from_str(&k.ok(&["sluice", "status", "-A", "-o", "json"]).await).unwrap();
    assert_eq!(doc["items"][0]["namespace"], NS, "{doc}");
    assert_eq!(doc["items"][0]["name"], APP);
    assert_eq!(doc["items"][0]["status"]["phase"], "Initialized");
    assert_eq!(doc["items"][0]["threshold"], 3);
    let yaml: Value = serde_saphyr::from_str(
        &k.ok(&["sluice", "status", "deploy/podinfo", "-n", NS, "-o", "yaml"])
            .await,
    )
    .unwrap();
    assert_eq!(yaml, doc, "YAML says what JSON says");

    // --kubeconfig and --context: the named context is used, not the current one.
    let dir = tempfile::tempdir().unwrap();
    let two = two_contexts(&sandbox.kubeconfig_path(), dir.path());
    let two = two.to_str().unwrap();
    // The current context is a dead port.
    k.fails(
        &["sluice", "status", "-n", NS, "--kubeconfig", two],
        "listing Namespaces",
    )
    .await;
    let named = k
        .ok(&[
            "sluice",
            "status",
            "-n",
            NS,
            "--kubeconfig",
            two,
            "--context",
            "sluice-sandbox",
        ])
        .await;
    assert!(named.contains("Initialized"), "{named}");
    k.fails(
        &["sluice", "status", "--kubeconfig", two, "--context", "nope"],
        "context nope",
    )
    .await;

    // explain, as text and as JSON.
    let explained = k
        .ok(&["sluice", "explain", "deploy/podinfo", "-n", NS])
        .await;
    assert!(explained.contains("Deployment shop/podinfo"), "{explained}");
    let explained: Value = serde_json::from_str(
        &k.ok(&[
            "sluice",
            "explain",
            "deploy/podinfo",
            "-n",
            NS,
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(explained["managed"], true, "{explained}");
    let interval = explained["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["setting"] == "interval")
        .unwrap();
    assert_eq!(interval["value"], "2s");
    assert_eq!(interval["source"], "deployment");

    // The verbs: at rest, pause arms and resume cancels; abort is refused with the reason.
    let paused = k.ok(&["sluice", "pause", "deploy/podinfo", "-n", NS]).await;
    assert!(paused.contains("pause done"), "{paused}");
    let resumed = k.ok(&["sluice", "resume", "podinfo", "-n", NS]).await;
    assert!(resumed.contains("resume"), "{resumed}");
    k.fails(
        &["sluice", "abort", "deploy/podinfo", "-n", NS],
        "abort refused",
    )
    .await;

    // A new image, watched until it is done: a row per phase or weight change, exit 0.
    let set = k
        .ok(&[
            "-n",
            NS,
            "set",
            "image",
            "deploy/podinfo",
            "podinfod=podinfo:6.0.1",
        ])
        .await;
    assert!(set.contains("image updated"), "{set}");
    let watch = k
        .command(&["sluice", "status", "-n", NS, "-w", "--until-done"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), watch.wait_with_output())
        .await
        .expect("status -w --until-done exits when the rollout is done")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (phase, weight) of every row after the header.
    let rows: Vec<(&str, &str)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[1], cells[2])
        })
        .collect();
    assert_eq!(rows.last().map(|r| r.0), Some("Succeeded"), "{text}");
    assert!(
        rows.contains(&("Progressing", "50%")),
        "a row when the weight moved to 50%: {text}"
    );
    assert!(
        rows.windows(2).all(|w| w[0] != w[1]),
        "a row only when the phase or the weight changed: {text}"
    );

    sluice.shutdown().await;
    sandbox.shutdown().await;
}
