//! `sluice serve` on SIGTERM, as the kubelet stops a pod: the real binary against the sandbox
//! API server. `/readyz` fails at once, while the webhook still answers new admissions for the
//! shutdown delay (endpoints drop the Pod meanwhile); an admission whose body is still arriving
//! when the signal lands is answered; then the webhook stops accepting new connections, the
//! Lease is released (holder cleared) and the process exits 0.

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
/// `--shutdown-delay`: long enough for one admission on a loaded machine.
const DELAY: Duration = Duration::from_secs(3);

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

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(ca: &Ca, webhook: SocketAddr) -> Tls {
    let tcp = tokio::net::TcpStream::connect(webhook).await.unwrap();
    connector(ca)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The request head of a `/mutate` call carrying `body`, closing the connection after it.
fn head(body: &[u8]) -> String {
    format!(
        "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
}

/// Everything the webhook sends until it closes the connection (at most 5 s).
async fn read_answer(tls: &mut Tls) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_through_the_shutdown_delay_and_in_flight_then_releases_the_lease_and_exits_0()
 {
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
        .args(["--shutdown-delay", &format!("{}s", DELAY.as_secs())])
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
    let mut tls = connect(&ca, webhook).await;
    let half = body.len() / 2;
    tls.write_all(head(&body).as_bytes()).await.unwrap();
    tls.write_all(&body[..half]).await.unwrap();
    tls.flush().await.unwrap();

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let signalled = Instant::now();
    assert!(killed.success());

    // Unready at once, so the endpoints drop this replica ...
    until("/readyz fails", Duration::from_secs(2), || async {
        let ready = reqwest::get(format!("http://{admin_addr}/readyz")).await;
        ready.ok().filter(|r| r.status() == 503)
    })
    .await;
    // ... while calls kube-apiserver still sends meanwhile are answered, on new connections.
    let mut late = connect(&ca, webhook).await;
    late.write_all(head(&body).as_bytes()).await.unwrap();
    late.write_all(&body).await.unwrap();
    late.flush().await.unwrap();
    let answer = read_answer(&mut late).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains(r#""allowed":true"#),
        "an admission {:?} after SIGTERM, within the {DELAY:?} shutdown delay: {answer}",
        signalled.elapsed()
    );
    drop(late);

    // After the delay the webhook drains: new connections are refused, while ours is still
    // being read.
    until(
        "the webhook stops accepting connections",
        DELAY + Duration::from_secs(10),
        || async move { tokio::net::TcpStream::connect(webhook).await.err() },
    )
    .await;
    assert!(
        signalled.elapsed() >= DELAY,
        "the webhook stopped accepting {:?} after SIGTERM, before the {DELAY:?} delay",
        signalled.elapsed()
    );
    let freed = holder(&leases).await;
    assert_eq!(
        freed, None,
        "the Lease held by {leader} is released before the webhook stops accepting"
    );

    // The rest of the body: the admission is answered in full.
    tls.write_all(&body[half..]).await.unwrap();
    tls.flush().await.unwrap();
    let answer = read_answer(&mut tls).await;
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
