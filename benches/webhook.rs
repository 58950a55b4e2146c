//! Throughput and latency of the admission webhook against a bare axum+rustls baseline, and the
//! memory of a process serving it.
//!
//! ```text
//! workers (hyper http1, one kept-alive TLS connection each) ──► webhook  /mutate, /validate
//!                                                           └─► baseline same path (fixed answer)
//! ```
//!
//! Both servers run in this process on the same runtime as the clients, with the same rustls
//! configuration and `TCP_NODELAY`; the baseline reads the body and returns the webhook's own
//! answer to the same review at the same path, precomputed, so both move the same bytes. The
//! difference is the webhook's own work: parsing the review, deciding, encoding the answer.
//!
//! Two image-update reviews, each sent to `/mutate` (the pause patch: the full decision path)
//! and to `/validate` (every policy check; allowed), each run in full (one-core breakdown,
//! closed loop at 1, 8 and 64 connections, then paced at half the webhook's peak):
//! - `deployment-update-image-8k.json`, 7.8 KB: the capture compact, as kube-apiserver sends
//!   it, without kubectl's `last-applied-configuration` (how: `tests/fixtures/admission/README.md`);
//! - `deployment-update-image.json`, 13.7 KB: the capture as stored, indented, with
//!   `last-applied-configuration`: the heavier case.
//!
//! Memory: this binary re-run as a child that serves only the webhook ([`serve_only`]), so
//! that the clients' and the baseline's memory do not count; its RSS after start and its peak
//! (`VmHWM`) under closed loops at 64 connections ([`memory`]).
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

/// The two admission endpoints, each measured against a baseline answering its own answer.
#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    Mutate,
    Validate,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Mutate => "/mutate",
            Endpoint::Validate => "/validate",
        }
    }

    /// The webhook's answer to `review`, encoded as it sends it.
    fn answer(self, review: &Review, view: &StaticView) -> Bytes {
        let resp = match self {
            Endpoint::Mutate => webhook::mutate(review, view, SLUICE_USER),
            Endpoint::Validate => webhook::validate(review, view, SLUICE_USER),
        };
        Bytes::from(encode_answer(&resp, "admission.k8s.io/v1").unwrap())
    }

    /// The `operation` and `verdict` labels of its answers to the measured review.
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            Endpoint::Mutate => ("mutate", "patched"),
            Endpoint::Validate => ("validate", "allowed"),
        }
    }
}

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
    path: &'static str,
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
                let req = Request::post(path)
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

/// A bare axum + rustls server answering `path` with `answer`, whatever the body.
async fn baseline(tls: Arc<rustls::ServerConfig>, path: &str, answer: Bytes) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        path,
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
    if let (Ok(cert), Ok(key)) = (std::env::var(SERVE_CERT), std::env::var(SERVE_KEY)) {
        serve_only(&cert, &key).await;
        return;
    }

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

    let view = bench_view();
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
                let answer = Endpoint::Mutate.answer(&parsed, &view);
                baseline(server_tls.clone(), "/mutate", answer).await
            }
            _ => hook.local_addr(),
        };
        let s = run(addr, &connector, "/mutate", review, 8, duration, None).await;
        println!("{}", row(&which, 8, &s));
        return;
    }
    for (name, review) in CASES {
        for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
            println!("### {} {name}", endpoint.path());
            println!();
            measure(
                review,
                endpoint,
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
    }
    hook.shutdown().await.unwrap();
    memory(&connector, &issued.cert_pem, &issued.key_pem, duration).await;
}

/// In the child of [`memory`]: the certificate and key PEM of the webhook to serve.
const SERVE_CERT: &str = "SLUICE_BENCH_SERVE_CERT";
const SERVE_KEY: &str = "SLUICE_BENCH_SERVE_KEY";

/// The opted-in namespace every review is in.
fn bench_view() -> StaticView {
    StaticView::with_namespace("shop", &[(OPT_IN_LABEL, "enabled")])
}

/// The child of [`memory`]: only the webhook, as `sluice serve` runs it; prints its address,
/// serves until stdin closes.
async fn serve_only(cert_pem: &str, key_pem: &str) {
    let mut tls = (*sluice::tls::server_config("bench", cert_pem, key_pem).unwrap()).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let hook = webhook::start(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(tls),
        WebhookState::new(Arc::new(bench_view())).with_metrics(Metrics::new()),
    )
    .await
    .unwrap();
    println!("{}", hook.local_addr());
    tokio::task::spawn_blocking(|| {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
    })
    .await
    .unwrap()
    .unwrap();
    hook.shutdown().await.unwrap();
}

/// `VmRSS` or `VmHWM` of a process, in MB.
fn memory_mb(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    sluice::sandbox::scale::parse_status_mb(&status, key).unwrap_or(f64::NAN)
}

/// The RSS of a process serving only the webhook (this binary again, [`serve_only`]), so that
/// the clients' and the baseline's memory are not counted: after start, and its peak over
/// closed loops at 64 connections on both endpoints and both reviews.
async fn memory(connector: &TlsConnector, cert_pem: &str, key_pem: &str, duration: Duration) {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(SERVE_CERT, cert_pem)
        .env(SERVE_KEY, key_pem)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::io::BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .unwrap()
        .unwrap();
    let addr: SocketAddr = line.trim().parse().unwrap();
    let pid = child.id().unwrap();
    let started = memory_mb(pid, "VmRSS");
    let mut served = 0;
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        for (_, review) in CASES {
            served += run(addr, connector, endpoint.path(), review, 64, duration, None)
                .await
                .requests;
        }
    }
    let (after, peak) = (memory_mb(pid, "VmRSS"), memory_mb(pid, "VmHWM"));
    drop(child.stdin.take());
    child.wait().await.unwrap();
    println!("### Memory of the serving process");
    println!();
    println!(
        "A process serving only the webhook (this binary, `{SERVE_CERT}` set), {served} reviews at 64 connections, /mutate and /validate, both reviews:"
    );
    println!();
    println!("| RSS after start | RSS after the load | peak RSS (VmHWM) | target |");
    println!("|---:|---:|---:|---|");
    println!(
        "| {started:.1} MB | {after:.1} MB | {peak:.1} MB | < 50 MB: {} |",
        if peak < 50.0 { "met" } else { "NOT met" }
    );
}

/// Seconds spent answering `endpoint`'s reviews so far, and how many: the sum and the count of
/// `sluice_webhook_admission_duration_seconds`.
fn handler_time(metrics: &Metrics, endpoint: Endpoint) -> (f64, f64) {
    let text = metrics.encode();
    let (operation, verdict) = endpoint.labels();
    let read = |suffix: &str| {
        let key = format!(
            "sluice_webhook_admission_duration_seconds_{suffix}{{operation=\"{operation}\",verdict=\"{verdict}\"}} "
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

/// Where `/mutate`'s own time goes, single-threaded, per review.
fn one_core(review: &[u8], parsed: &Review, view: &StaticView, answer_len: usize) {
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
        std::hint::black_box(webhook::mutate(parsed, view, SLUICE_USER));
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
        let r = webhook::mutate(parsed, view, SLUICE_USER);
        std::hint::black_box(encode_answer(&r, "admission.k8s.io/v1").unwrap());
    }) - decide;
    println!("(serde_json alone: skip everything {scan:.1} µs, build a Value {value:.1} µs)");
    println!(
        "Per review, one core: parse {parse:.1} µs, decide {decide:.1} µs, encode {encode:.1} µs, own work {:.1} µs ({} bytes in, {} bytes out)",
        parse + decide + encode,
        review.len(),
        answer_len
    );
    println!("(deciding the same update with the template unchanged: {decide_unchanged:.2} µs)");
    println!();
}

/// The whole report for one review at one endpoint.
#[allow(clippy::too_many_arguments)]
async fn measure(
    review: &'static [u8],
    endpoint: Endpoint,
    view: &StaticView,
    metrics: &Metrics,
    hook: SocketAddr,
    server_tls: Arc<rustls::ServerConfig>,
    connector: &TlsConnector,
    duration: Duration,
) {
    // The baseline answers with exactly what the webhook answers.
    let parsed = Review::from_slice(review).unwrap();
    let answer = endpoint.answer(&parsed, view);
    if endpoint == Endpoint::Mutate {
        assert!(webhook::mutate(&parsed, view, SLUICE_USER).patch.is_some());
        one_core(review, &parsed, view, answer.len());
    } else {
        assert!(webhook::validate(&parsed, view, SLUICE_USER).allowed);
        let decide = per_op(&|| {
            std::hint::black_box(webhook::validate(&parsed, view, SLUICE_USER));
        });
        println!(
            "Per review, one core: decide {decide:.1} µs (parsing as for /mutate; {} bytes out)",
            answer.len()
        );
        println!();
    }

    let path = endpoint.path();
    let base = baseline(server_tls, path, answer).await;

    // Warm both up (connections, allocator, caches).
    for addr in [hook, base] {
        run(
            addr,
            connector,
            path,
            review,
            8,
            Duration::from_secs(1),
            None,
        )
        .await;
    }

    println!("| server | concurrency | req/s | p50 ms | p99 ms | p999 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut peak: f64 = 0.0;
    let mut ratios = Vec::new();
    let mut in_server = Vec::new();
    for c in [1, 8, 64] {
        let before = handler_time(metrics, endpoint);
        let w = run(hook, connector, path, review, c, duration, None).await;
        let after = handler_time(metrics, endpoint);
        in_server.push((c, (after.0 - before.0) / (after.1 - before.1) * 1e6));
        let b = run(base, connector, path, review, c, duration, None).await;
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
    let w = run(hook, connector, path, review, 8, duration, Some(pace)).await;
    let b = run(base, connector, path, review, 8, duration, Some(pace)).await;
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
