//! `sluice serve` on SIGTERM, as the kubelet stops a pod: the real binary against the sandbox
//! API server. An admission whose body is still arriving when the signal lands is answered,
//! the webhook stops accepting new connections, the Lease is released (holder cleared) and the
//! process exits 0.

#[path = "sandbox/support.rs"]
#[allow(dead_code)]
mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use rustls::pki_types::ServerName;
use sluice::sandbox::apiserver::Identity;
use sluice::tls::Ca;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsConnector;

const NAMESPACE: &str = "sluice-system";
const LEASE: &str = "sluice-controller";
const INSTANCE: &str = "sluice-shutdown-test";

/// Polls `check` every 20 ms until it returns `Some`; panics with `what` after `within`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// A TLS client that trusts `ca`.
fn connector(ca: &Ca) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.cert_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(tls))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_admission_in_flight_releases_the_lease_and_exits_0() {
    let (server, admin) = support::server_and_client().await;
    support::namespace(&admin, NAMESPACE).await;
    let ca = Ca::new("shutdown test CA").unwrap();
    let issued = ca
        .issue(&["localhost"], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = (files.path().join("tls.crt"), files.path().join("tls.key"));
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    let webhook: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .unwrap();
    let admin_addr = format!("127.0.0.1:{}", support::free_port());

    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path(Identity::Sluice))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--webhook-addr", &webhook.to_string()])
        .args(["--admin-addr", &admin_addr])
        .args(["--prometheus-url", "http://127.0.0.1:9"])
        .args(["--namespace", NAMESPACE])
        .env("HOSTNAME", INSTANCE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sluice serve starts");
    let pid = serve.id().unwrap().to_string();

    // It leads: the Lease names this process.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
    let leader = until(
        "sluice serve holds the Lease",
        Duration::from_secs(20),
        || {
            let leases = leases.clone();
            async move { holder(&leases).await.filter(|h| h.starts_with(INSTANCE)) }
        },
    )
    .await;

    // An admission in flight: the connection is up and half the body is sent.
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/admission/deployment-create.json"
    ))
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(webhook).await.unwrap();
    let mut tls = connector(&ca)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let half = body.len() / 2;
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body[..half]).await.unwrap();
    tls.flush().await.unwrap();

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    // The webhook drains: new connections are refused, while ours is still being read.
    until(
        "the webhook stops accepting connections",
        Duration::from_secs(10),
        || async move { tokio::net::TcpStream::connect(webhook).await.err() },
    )
    .await;
    let freed = holder(&leases).await;
    assert_eq!(
        freed, None,
        "the Lease held by {leader} is released before the webhook stops accepting"
    );

    // The rest of the body: the admission is answered in full.
    tls.write_all(&body[half..]).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(r#""uid":"f62f8e7b-50b5-461c-9798-de68308cbf03""#)
            && answer.contains(r#""allowed":true"#),
        "{answer}"
    );

    let status = tokio::time::timeout(Duration::from_secs(10), serve.wait())
        .await
        .expect("sluice serve exits after draining")
        .unwrap();
    let mut stderr = String::new();
    serve
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    let lease = leases.get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity, None);
}
