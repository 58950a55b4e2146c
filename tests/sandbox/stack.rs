//! The whole sandbox as `sluice sandbox` runs it: every part started together, the demo, and
//! `--hold` serving kubectl.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use sluice::sandbox::embedded::Embedded;
use sluice::sandbox::{Sandbox, SandboxOptions, demo};

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_promotes_a_healthy_version_rolls_back_a_bad_one_and_refuses_it_again() {
    support::init();
    let Some(metrics) = support::metrics_backend() else {
        return;
    };
    let sandbox = Sandbox::start(SandboxOptions {
        ready_delay: Duration::from_millis(300),
        metrics,
    })
    .await
    .expect("sandbox starts");
    let sluice = Embedded::start(&sandbox)
        .await
        .expect("sluice starts in the sandbox");
    let summary = demo::run(&sandbox).await.expect("demo passes");
    let text = summary.lines.join("\n");
    assert!(text.contains("promoted: phase Succeeded"), "{text}");
    assert!(text.contains("rolled back after 2 failed checks"), "{text}");
    assert!(
        text.contains("refused: Error from server: admission webhook \"validate.sluice.dev\" denied the request"),
        "{text}"
    );
    let traffic = sandbox.mesh.traffic(demo::NAMESPACE, demo::APP);
    let total: u64 = traffic.iter().flat_map(|s| s.by_deployment.values()).sum();
    assert!(total > 100, "the mesh sent {total} requests");
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

#[test]
fn sandbox_hold_serves_kubectl_and_stops_on_ctrl_c() {
    let Some(kubectl) = support::kubectl() else {
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["sandbox", "--hold", "--builtin-metrics"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let kubeconfig = loop {
        let line = lines.next().expect("sluice prints KUBECONFIG=").unwrap();
        if let Some(path) = line.strip_prefix("KUBECONFIG=") {
            break path.to_string();
        }
    };
    let out = Command::new(&kubectl)
        .args(["--kubeconfig", &kubeconfig, "get", "deploy", "-A"])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl get deploy -A: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&kubectl)
        .args([
            "--kubeconfig",
            &kubeconfig,
            "get",
            "namespaces",
            "-o",
            "name",
        ])
        .output()
        .expect("kubectl runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/default"));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "sluice sandbox --hold exits cleanly on Ctrl-C: {exit}"
    );
}
