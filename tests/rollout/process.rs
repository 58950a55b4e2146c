//! `sluice serve` as a real process against the sandbox, for the crash scenarios: the binary
//! Cargo built, installed through the same webhook configurations as `deploy/`, killed with
//! SIGKILL, and restarted as a new replica (a new identity, as when Kubernetes replaces a pod),
//! so each restart also waits out the dead replica's Lease.
//!
//! Each process logs to `sluice-N.log` in the setup's directory; a process that fails to get
//! ready fails the test with the end of its log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sluice::sandbox::Sandbox;
use sluice::sandbox::apiserver::Identity;
use sluice::sandbox::embedded::{NAMESPACE, register_external};
use tokio::process::{Child, Command};

/// The Lease the processes hold: short, so that a restart after a kill leads again quickly.
pub const LEASE: Duration = Duration::from_secs(2);

/// What every process of one sandbox shares: certificate files, the addresses the webhook
/// configurations and probes point at.
pub struct Setup {
    /// Removed when the scenario ends, kept (and named on stderr) when it fails.
    dir: Option<tempfile::TempDir>,
    cert: PathBuf,
    key: PathBuf,
    ca_pem: String,
    webhook: SocketAddr,
    admin: SocketAddr,
    started: AtomicU32,
}

impl Setup {
    /// A CA and a serving certificate for `sluice.sluice-system.svc`, and two free ports.
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = sluice::tls::Ca::new("sluice crash-test CA").unwrap();
        let issued = ca
            .issue(
                &["sluice.sluice-system.svc", "localhost"],
                &["127.0.0.1".parse().unwrap()],
            )
            .unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        Setup {
            cert,
            key,
            ca_pem: ca.cert_pem().to_string(),
            webhook: free_port(),
            admin: free_port(),
            started: AtomicU32::new(0),
            dir: Some(dir),
        }
    }

    fn dir(&self) -> &std::path::Path {
        self.dir
            .as_ref()
            .expect("the directory lives as long as the setup")
            .path()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("sluice serve logs kept in {}", dir.keep().display());
        }
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// One running `sluice serve`.
pub struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts the next replica and waits until it is ready (caches synced, webhook serving).
    pub async fn start(sandbox: &Sandbox, setup: &Setup) -> Process {
        let n = setup.started.fetch_add(1, Ordering::SeqCst);
        let log = setup.dir().join(format!("sluice-{n}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .arg("--kubeconfig")
            .arg(sandbox.api.kubeconfig_path(Identity::Sluice))
            .arg("--tls-cert")
            .arg(&setup.cert)
            .arg("--tls-key")
            .arg(&setup.key)
            .args(["--webhook-addr", &setup.webhook.to_string()])
            .args(["--admin-addr", &setup.admin.to_string()])
            .args(["--prometheus-url", sandbox.metrics.url()])
            .args(["--namespace", NAMESPACE])
            .args(["--lease-duration", &format!("{}s", LEASE.as_secs())])
            .env("HOSTNAME", format!("sluice-{n}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .kill_on_drop(true)
            .spawn()
            .expect("the sluice binary starts");
        let mut process = Process { child, log };
        register_external(sandbox, setup.webhook, &setup.ca_pem)
            .await
            .unwrap();
        process.wait_ready(setup.admin).await;
        process
    }

    async fn wait_ready(&mut self, admin: SocketAddr) {
        let http = reqwest::Client::new();
        let url = format!("http://{admin}/readyz");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sluice serve exited ({status}): {}", self.log_tail());
            }
            let ready = http
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sluice serve not ready after 30 s: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether this replica holds the Lease (runs the controller), by its `/metrics`.
    pub async fn leads(&self, setup: &Setup) -> bool {
        let url = format!("http://{}/metrics", setup.admin);
        let Ok(resp) = reqwest::get(&url).await else {
            return false;
        };
        resp.text()
            .await
            .is_ok_and(|t| t.lines().any(|l| l == "sluice_leader 1"))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGKILL, as the kernel's OOM killer or a node loss would end it.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL is sent");
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, as Kubernetes stops a pod; SIGKILL if it has not exited within 10 s.
    pub async fn terminate(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.kill().await;
        }
    }
}
