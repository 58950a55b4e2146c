//! Throughput and latency of the admission webhook against a bare axum+rustls baseline.
//!
//! ```text
//! workers (hyper http1, one kept-alive TLS connection each) ──► webhook  /mutate (real decision)
//!                                                           └─► baseline /mutate (fixed answer)
//! ```
//!
//! Both servers run in this process on the same runtime as the clients, with the same rustls
//! configuration and `TCP_NODELAY`; the baseline reads the body and returns the webhook's own
//! answer to the same review, precomputed, so both move the same bytes. The difference is the
//! webhook's own work: parsing the review, deciding, building the patch.
//!
//! Two image-update reviews, each run in full (one core breakdown, closed loop at 1, 8 and 64
//! connections, then paced at half the webhook's peak):
//! - `deployment-update-image-8k.json`, 7.8 KB: the capture compact, as kube-apiserver sends
//!   it, without kubectl's `last-applied-configuration` (how: `tests/fixtures/admission/README.md`);
//! - `deployment-update-image.json`, 13.7 KB: the capture as stored, indented, with
//!   `last-applied-configuration`: the heavier case.
//!
//! Run: `cargo bench --bench webhook` (optional: `SECONDS_PER_RUN=5`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use sluice::metrics::Metrics;
use sluice::policy::keys::OPT_IN_LABEL;
use sluice::tls::Ca;
use sluice::webhook::server::encode_answer;
use sluice::webhook::{self, Review, SLUICE_USER, StaticView, WebhookState};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The reviews measured: a name for the report, and the body.
const CASES: [(&str, &[u8]); 2] = [
    (
        "deployment-update-image-8k.json",
        include_bytes!("../tests/fixtures/admission/deployment-update-image-8k.json"),
    ),
    (
        "deployment-update-image.json",
        include_bytes!("../tests/fixtures/admission/deployment-update-image.json"),
    ),
];

struct Stats {
    requests: usize,
    elapsed: Duration,
    /// Sorted, nanoseconds.
    latencies: Vec<u64>,
}

impl Stats {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i] as f64 / 1e6
    }
}

/// One kept-alive HTTP/1.1 connection over TLS.
async fn connect(
    addr: SocketAddr,
    tls: &TlsConnector,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tls.connect(name, tcp).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// `concurrency` workers for `duration`; each waits `pace` between request starts when set.
async fn run(
    addr: SocketAddr,
    tls: &TlsConnector,
    review: &'static [u8],
    concurrency: usize,
    duration: Duration,
    pace: Option<Duration>,
) -> Stats {
    let body = Bytes::from_static(review);
    let mut workers = Vec::new();
    let start = Instant::now();
    let deadline = start + duration;
    for w in 0..concurrency {
        let mut sender = connect(addr, tls).await;
        let body = body.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            // Spread paced workers evenly over one interval.
            let mut next = pace.map(|p| Instant::now() + p * w as u32 / concurrency as u32);
            loop {
                let scheduled = match (next, pace) {
                    (Some(at), Some(p)) => {
                        tokio::time::sleep_until(at.into()).await;
                        next = Some(at + p);
                        at
                    }
                    _ => Instant::now(),
                };
                if scheduled >= deadline {
                    break;
                }
                // tokio's timer has 1 ms granularity, so a paced request counts from when it
                // was actually sent, not from when it was scheduled.
                let sent = Instant::now();
                let req = Request::post("/mutate")
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))
                    .unwrap();
                let resp = sender.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                assert!(bytes.len() > 100);
                latencies.push(sent.elapsed().as_nanos() as u64);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Stats {
        requests: latencies.len(),
        elapsed,
        latencies,
    }
}

async fn baseline(tls: Arc<rustls::ServerConfig>, answer: Bytes) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/mutate",
        post(move |_body: Bytes| {
            let answer = answer.clone();
            async move { ([("content-type", "application/json")], answer) }
        }),
    );
    let acceptor =
        RustlsAcceptor::new(RustlsConfig::from_config(tls)).acceptor(NoDelayAcceptor::new());
    let server = axum_server::from_tcp(listener).unwrap().acceptor(acceptor);
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    addr
}

fn row(name: &str, c: usize, s: &Stats) -> String {
    format!(
        "| {name} | {c} | {:.0} | {:.3} | {:.3} | {:.3} |",
        s.throughput(),
        s.quantile_ms(0.50),
        s.quantile_ms(0.99),
        s.quantile_ms(0.999)
    )
}

#[tokio::main]
async fn main() {
    sluice::tls::install_crypto_provider();
    let seconds: u64 = std::env::var("SECONDS_PER_RUN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let duration = Duration::from_secs(seconds);

    let ca = Ca::new("sluice bench CA").unwrap();
    let issued = ca
        .issue(&["localhost"], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let mut server_tls =
        (*sluice::tls::server_config("bench", &issued.cert_pem, &issued.key_pem).unwrap()).clone();
    server_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_tls = Arc::new(server_tls);
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.cert_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut client_tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = TlsConnector::from(Arc::new(client_tls));

    let view = StaticView::with_namespace("shop", &[(OPT_IN_LABEL, "enabled")]);
    let metrics = Metrics::new();
    let hook = webhook::start(
        "127.0.0.1:0".parse().unwrap(),
        server_tls.clone(),
        WebhookState::new(Arc::new(view.clone())).with_metrics(metrics.clone()),
    )
    .await
    .unwrap();
    // `PROFILE=webhook|baseline`: only that server, closed loop over 8 connections on the ~8 KB
    // review, for a profiler to attach to (`perf record -g -- <bench binary>`).
    if let Ok(which) = std::env::var("PROFILE") {
        let (_, review) = CASES[0];
        let addr = match which.as_str() {
            "baseline" => {
                let parsed = Review::from_slice(review).unwrap();
                let answer = webhook::mutate(&parsed, &view, SLUICE_USER);
                let answer = Bytes::from(encode_answer(&answer, "admission.k8s.io/v1").unwrap());
                baseline(server_tls.clone(), answer).await
            }
            _ => hook.local_addr(),
        };
        let s = run(addr, &connector, review, 8, duration, None).await;
        println!("{}", row(&which, 8, &s));
        return;
    }
    for (name, review) in CASES {
        println!("### {name}");
        println!();
        measure(
            review,
            &view,
            &metrics,
            hook.local_addr(),
            server_tls.clone(),
            &connector,
            duration,
        )
        .await;
        println!();
    }
    hook.shutdown().await.unwrap();
}

/// Seconds spent answering patched `/mutate` reviews so far, and how many: the sum and the
/// count of `sluice_webhook_admission_duration_seconds`.
fn handler_time(metrics: &Metrics) -> (f64, f64) {
    let text = metrics.encode();
    let read = |suffix: &str| {
        let key = format!(
            "sluice_webhook_admission_duration_seconds_{suffix}{{operation=\"mutate\",verdict=\"patched\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    };
    (read("sum"), read("count"))
}

/// Microseconds per call of `f` on one core: the median of 9 batches, after a warm-up batch
/// (the machine is shared, and a batch that another job interrupts should not count).
fn per_op(f: &dyn Fn()) -> f64 {
    const BATCH: u32 = 2_000;
    let mut batches: Vec<f64> = (0..10)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..BATCH {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH)
        })
        .skip(1)
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[batches.len() / 2]
}

/// The whole report for one review.
async fn measure(
    review: &'static [u8],
    view: &StaticView,
    metrics: &Metrics,
    hook: SocketAddr,
    server_tls: Arc<rustls::ServerConfig>,
    connector: &TlsConnector,
    duration: Duration,
) {
    // The baseline answers with exactly what the webhook answers.
    let parsed = Review::from_slice(review).unwrap();
    let answer = webhook::mutate(&parsed, view, SLUICE_USER);
    assert!(answer.patch.is_some());
    let answer = Bytes::from(encode_answer(&answer, "admission.k8s.io/v1").unwrap());

    // Where the webhook's own time goes, single-threaded, per review.
    let parse = per_op(&|| {
        std::hint::black_box(Review::from_slice(review).unwrap());
    });
    let scan = per_op(&|| {
        std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(review).unwrap());
    });
    let value = per_op(&|| {
        std::hint::black_box(serde_json::from_slice::<serde_json::Value>(review).unwrap());
    });
    let decide = per_op(&|| {
        std::hint::black_box(webhook::mutate(&parsed, view, SLUICE_USER));
    });
    // The same review with the new template byte-equal to the old one (replica, metadata,
    // pause/resume updates): the decision reads neither template.
    let mut unchanged: serde_json::Value = serde_json::from_slice(review).unwrap();
    unchanged["request"]["object"]["spec"]["template"] =
        unchanged["request"]["oldObject"]["spec"]["template"].clone();
    let unchanged = Review::from_slice(&serde_json::to_vec(&unchanged).unwrap()).unwrap();
    let decide_unchanged = per_op(&|| {
        std::hint::black_box(webhook::mutate(&unchanged, view, SLUICE_USER));
    });
    let encode = per_op(&|| {
        let r = webhook::mutate(&parsed, view, SLUICE_USER);
        std::hint::black_box(encode_answer(&r, "admission.k8s.io/v1").unwrap());
    }) - decide;
    println!("(serde_json alone: skip everything {scan:.1} µs, build a Value {value:.1} µs)");
    println!(
        "Per review, one core: parse {parse:.1} µs, decide {decide:.1} µs, encode {encode:.1} µs, own work {:.1} µs ({} bytes in, {} bytes out)",
        parse + decide + encode,
        review.len(),
        answer.len()
    );
    println!("(deciding the same update with the template unchanged: {decide_unchanged:.2} µs)");
    println!();

    let base = baseline(server_tls, answer).await;

    // Warm both up (connections, allocator, caches).
    for addr in [hook, base] {
        run(addr, connector, review, 8, Duration::from_secs(1), None).await;
    }

    println!("| server | concurrency | req/s | p50 ms | p99 ms | p999 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut peak: f64 = 0.0;
    let mut ratios = Vec::new();
    let mut in_server = Vec::new();
    for c in [1, 8, 64] {
        let before = handler_time(metrics);
        let w = run(hook, connector, review, c, duration, None).await;
        let after = handler_time(metrics);
        in_server.push((c, (after.0 - before.0) / (after.1 - before.1) * 1e6));
        let b = run(base, connector, review, c, duration, None).await;
        println!("{}", row("webhook", c, &w));
        println!("{}", row("baseline", c, &b));
        peak = peak.max(w.throughput());
        ratios.push((
            c,
            w.throughput() / b.throughput(),
            w.quantile_ms(0.99) / b.quantile_ms(0.99),
        ));
    }
    println!();
    println!("| concurrency | throughput webhook/baseline | p99 webhook/baseline |");
    println!("|---:|---:|---:|");
    for (c, t, p) in &ratios {
        println!("| {c} | {t:.2} | {p:.2} |");
    }

    println!();
    let in_server: Vec<String> = in_server
        .iter()
        .map(|(c, us)| format!("{us:.1} µs at {c}"))
        .collect();
    println!(
        "Own work inside the server (parse, decide, encode; mean of the admission histogram): {}",
        in_server.join(", ")
    );

    // Half of the webhook's peak, paced over 8 connections.
    let rate = peak / 2.0;
    let pace = Duration::from_secs_f64(8.0 / rate);
    println!();
    println!("Paced at half the webhook's peak ({rate:.0} req/s over 8 connections):");
    println!();
    println!("| server | concurrency | req/s | p50 ms | p99 ms | p999 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    let w = run(hook, connector, review, 8, duration, Some(pace)).await;
    let b = run(base, connector, review, 8, duration, Some(pace)).await;
    println!("{}", row("webhook", 8, &w));
    println!("{}", row("baseline", 8, &b));
    println!();
    let worst = ratios.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "targets: throughput >= 0.8x baseline (worst {worst:.2}): {}; p99 < 1 ms at half of peak ({:.3} ms): {}",
        met(worst >= 0.8),
        w.quantile_ms(0.99),
        met(w.quantile_ms(0.99) < 1.0)
    );
}
