//! Prometheus in production: the real `prometheus` binary behind basic auth and TLS (its
//! `--web.config.file`), queried through custom checks as the controller runs them.
//!
//! - Right credentials and the CA: the check passes; the query is timed in `/metrics`.
//! - A wrong password: the check fails with "refused the credentials (HTTP 401); check Secret …".
//! - No CA: the check fails with a TLS reason naming `--prometheus-ca`.
//! - Rotation: the password changes in Prometheus, then in the Secret (on the sandbox API
//!   server); the next query re-reads the Secret and passes, with no failed check.
//! - A missing Secret or key stops the start, naming the Secret, the key and what to create.
//! - A server slower than `--prometheus-timeout` fails the check within about the timeout.
//!
//! The bcrypt hashes in the web config were made once with (cost 4, the minimum, keeps each
//! request cheap for Prometheus):
//! `python3 -W ignore -c "import crypt; print(crypt.crypt('s3cret-one', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"`
//! and the same for `s3cret-two`.
//!
//! Without a prometheus binary these tests print one line and pass, unless `CI=true`, where
//! that is a failure saying how to install it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::routing::post;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ObjectMeta, PostParams};
use sluice::analysis::checks::CheckPlan;
use sluice::analysis::checks::custom::run_custom_at;
use sluice::analysis::prometheus::access::{self, Access, Credentials, SecretRef};
use sluice::analysis::prometheus::{Connection, PromClient};
use sluice::controller::status::{CheckResult, CheckVerdict};
use sluice::metrics::Metrics;
use sluice::policy::values::MetricCheck;
use sluice::sandbox::apiserver::{ApiServer, ApiServerOptions, Identity};
use sluice::sandbox::prometheus::{INSTALL_HINT, PrometheusBinary, locate_binary};
use sluice::serve::PrometheusArgs;
use tokio::process::{Child, Command};

const USER: &str = "sluice";
const PASSWORD_ONE: &str = "s3cret-one";
const HASH_ONE: &str = "$2b$04$qsAq8l0kvGc8I.oHujy4Q.goWy8LkgyUJ9LIV7nmj6UMV7.R7/jeq";
const PASSWORD_TWO: &str = "s3cret-two";
const HASH_TWO: &str = "$2b$04$RABHNrXeEgmnQ0VG1A9/V.1VoNrHP08nl5R04k7rTYIUGi4fIaqfW";
const NS: &str = "sluice-system";

/// A real Prometheus serving HTTPS with a certificate from a private CA, behind basic auth.
struct SecuredPrometheus {
    _child: Child,
    url: String,
    web_config: PathBuf,
    ca_file: PathBuf,
    dir: tempfile::TempDir,
}

fn web_config_yaml(hash: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  {USER}: {hash}\n"
    )
}

fn basic(password: &str) -> Credentials {
    Credentials::Basic {
        username: USER.into(),
        password: password.into(),
    }
}

impl SecuredPrometheus {
    /// Starts it, or `None` (with a notice) when no binary is installed outside CI.
    async fn start() -> Option<SecuredPrometheus> {
        sluice::tls::install_crypto_provider();
        let binary = match locate_binary().expect("a prometheus binary (CI=true)") {
            PrometheusBinary::Installed(path) => path,
            PrometheusBinary::NotInstalled => {
                eprintln!("skipped: no prometheus binary; {INSTALL_HINT}");
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let ca = sluice::tls::Ca::new("prometheus test CA").unwrap();
        let issued = ca
            .issue(&["localhost"], &[IpAddr::V4(Ipv4Addr::LOCALHOST)])
            .unwrap();
        std::fs::write(dir.path().join("cert.pem"), &issued.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &issued.key_pem).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        let web_config = dir.path().join("web.yml");
        std::fs::write(&web_config, web_config_yaml(HASH_ONE)).unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.config.file={}", web_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let prom = SecuredPrometheus {
            _child: child,
            url: format!("https://127.0.0.1:{port}"),
            web_config,
            ca_file,
            dir,
        };
        prom.wait_ready().await;
        Some(prom)
    }

    /// Polls with the right credentials and the CA until a query answers.
    async fn wait_ready(&self) {
        let client = self.client(
            Some(&self.ca_file),
            basic(PASSWORD_ONE),
            Duration::from_secs(2),
        );
        let started = Instant::now();
        loop {
            match client.query("vector(1)", None).await {
                Ok(_) => return,
                Err(e) if started.elapsed() > Duration::from_secs(20) => panic!(
                    "prometheus at {} not ready after 20s: {e}\n{}",
                    self.url,
                    std::fs::read_to_string(self.dir.path().join("prometheus.log"))
                        .unwrap_or_default()
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn client(&self, ca: Option<&Path>, credentials: Credentials, timeout: Duration) -> PromClient {
        PromClient::connect(
            &self.url,
            Connection {
                timeout,
                ca: ca.map(|path| access::load_ca(path).unwrap()),
                access: Access::fixed(credentials),
            },
        )
        .unwrap()
    }
}

fn one_check() -> Vec<MetricCheck> {
    vec![MetricCheck {
        name: "one".into(),
        query: "vector(1)".into(),
        min: Some(1.0),
        max: None,
    }]
}

fn plan() -> CheckPlan {
    CheckPlan {
        namespace: "shop".into(),
        canary: "web".into(),
        primary: "web-primary".into(),
        interval: Duration::from_secs(60),
        success_rate_min: 99.0,
        latency_p99_max: Duration::from_millis(500),
        min_requests: 20,
    }
}

async fn check(prom: &PromClient) -> CheckVerdict {
    let mut v = run_custom_at(prom, &plan(), &one_check(), SystemTime::now()).await;
    assert_eq!(v.len(), 1);
    v.remove(0)
}

#[tokio::test]
async fn right_credentials_and_the_ca_pass_and_a_wrong_password_fails_with_the_auth_reason() {
    let Some(prom) = SecuredPrometheus::start().await else {
        return;
    };
    let metrics = Metrics::new();
    let right = prom
        .client(
            Some(&prom.ca_file),
            basic(PASSWORD_ONE),
            Duration::from_secs(5),
        )
        .with_metrics(metrics.clone());
    let v = check(&right).await;
    assert_eq!(v.result, CheckResult::Pass, "{}", v.detail);
    assert_eq!(v.value, Some(1.0));

    let wrong = prom
        .client(Some(&prom.ca_file), basic("wrong"), Duration::from_secs(5))
        .with_metrics(metrics.clone());
    let v = check(&wrong).await;
    assert_eq!(v.result, CheckResult::Fail);
    assert!(
        v.detail.contains(&format!(
            "Prometheus at {}/api/v1/query refused the credentials (HTTP 401)",
            prom.url
        )),
        "{}",
        v.detail
    );
    let none = prom
        .client(
            Some(&prom.ca_file),
            Credentials::None,
            Duration::from_secs(5),
        )
        .with_metrics(metrics.clone());
    let v = check(&none).await;
    assert!(
        v.detail.contains("pass a Secret with --prometheus-secret"),
        "{}",
        v.detail
    );

    let text = metrics.encode();
    assert!(
        text.contains("sluice_prometheus_query_duration_seconds_count 3"),
        "{text}"
    );
    assert!(
        text.contains(r#"sluice_prometheus_query_errors_total{reason="auth"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn without_the_ca_the_check_fails_with_a_tls_reason_naming_the_ca_flag() {
    let Some(prom) = SecuredPrometheus::start().await else {
        return;
    };
    let metrics = Metrics::new();
    let no_ca = prom
        .client(None, basic(PASSWORD_ONE), Duration::from_secs(5))
        .with_metrics(metrics.clone());
    let v = check(&no_ca).await;
    assert_eq!(v.result, CheckResult::Fail);
    assert!(
        v.detail.contains("TLS with Prometheus at")
            && v.detail.contains("pass it with --prometheus-ca"),
        "{}",
        v.detail
    );
    assert!(
        metrics
            .encode()
            .contains(r#"sluice_prometheus_query_errors_total{reason="tls"} 1"#)
    );
    // A CA that did not sign the certificate: the reason names the file given.
    let other = sluice::tls::Ca::new("another CA").unwrap();
    let other_file = prom.dir.path().join("other-ca.pem");
    std::fs::write(&other_file, other.cert_pem()).unwrap();
    let wrong_ca = prom.client(
        Some(&other_file),
        basic(PASSWORD_ONE),
        Duration::from_secs(5),
    );
    let v = check(&wrong_ca).await;
    assert!(
        v.detail.contains(&format!(
            "check that --prometheus-ca {}",
            other_file.display()
        )),
        "{}",
        v.detail
    );
}

async fn put_secret(client: &kube::Client, name: &str, pairs: &[(&str, &str)]) {
    let api = kube::Api::<Secret>::namespaced(client.clone(), NS);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    match api.get_opt(name).await.unwrap() {
        None => {
            api.create(&PostParams::default(), &secret).await.unwrap();
        }
        Some(_) => {
            api.replace(name, &PostParams::default(), &secret)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn rotated_credentials_are_re_read_from_the_secret_on_a_401_and_the_check_passes() {
    let Some(prom) = SecuredPrometheus::start().await else {
        return;
    };
    let api = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("sandbox API server starts");
    let kube = api.client(Identity::Admin).await.unwrap();
    let namespaces = kube::Api::<Namespace>::all(kube.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NS}})).unwrap();
    let _ = namespaces.create(&PostParams::default(), &ns).await;
    put_secret(
        &kube,
        "prom-auth",
        &[("username", USER), ("password", PASSWORD_ONE)],
    )
    .await;
    let secret = SecretRef {
        namespace: NS.into(),
        name: "prom-auth".into(),
    };
    let access = Access::from_secret(kube.clone(), secret.clone(), Duration::from_millis(200))
        .await
        .unwrap();
    let client = PromClient::connect(
        &prom.url,
        Connection {
            timeout: Duration::from_secs(5),
            ca: Some(access::load_ca(&prom.ca_file).unwrap()),
            access,
        },
    )
    .unwrap();
    assert_eq!(check(&client).await.result, CheckResult::Pass);

    // Prometheus re-reads its web config on each request: the old password is refused now.
    std::fs::write(&prom.web_config, web_config_yaml(HASH_TWO)).unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let v = check(&client).await;
    assert_eq!(v.result, CheckResult::Fail);
    assert!(
        v.detail
            .contains("refused the credentials (HTTP 401); check Secret sluice-system/prom-auth"),
        "{}",
        v.detail
    );

    // The Secret is rotated too: the next refusal re-reads it and the query is retried.
    put_secret(
        &kube,
        "prom-auth",
        &[("username", USER), ("password", PASSWORD_TWO)],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let v = check(&client).await;
    assert_eq!(v.result, CheckResult::Pass, "{}", v.detail);

    // Start errors name the Secret, the key and what to create.
    // Through `sluice serve`'s flags, as the start reads them.
    let args = PrometheusArgs {
        prometheus_secret: Some("absent".into()),
        ..PrometheusArgs::default()
    };
    let err = args
        .connect(&kube, &prom.url, NS)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Secret sluice-system/absent does not exist")
            && err.contains("kubectl -n sluice-system create secret generic absent"),
        "{err}"
    );
    put_secret(&kube, "half", &[("username", USER)]).await;
    let half = SecretRef {
        namespace: NS.into(),
        name: "half".into(),
    };
    let err = Access::from_secret(kube, half, access::RELOAD_EVERY)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Secret sluice-system/half has key `username` but no `password`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_prometheus_slower_than_the_timeout_fails_the_check_within_about_the_timeout() {
    sluice::tls::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/api/v1/query",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "{}"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let metrics = Metrics::new();
    let timeout = Duration::from_millis(500);
    let prom = PromClient::connect(&format!("http://{addr}"), Connection::plain(timeout))
        .unwrap()
        .with_metrics(metrics.clone());
    let started = Instant::now();
    let v = check(&prom).await;
    let took = started.elapsed();
    assert_eq!(v.result, CheckResult::Fail);
    assert!(
        v.detail.contains(&format!(
            "Prometheus at http://{addr}/api/v1/query did not answer within 500ms"
        )),
        "{}",
        v.detail
    );
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(700),
        "took {took:?}"
    );
    assert!(
        metrics
            .encode()
            .contains(r#"sluice_prometheus_query_errors_total{reason="timeout"} 1"#)
    );
}
