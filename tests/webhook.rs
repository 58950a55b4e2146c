//! The admission webhook as kube-apiserver meets it: the real TLS server called over HTTPS
//! with a captured review, and registered in the sandbox API server so that a `kube::Client`
//! update of a managed Deployment comes back paused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};
use sluice::policy::keys::{OPT_IN_LABEL, STABLE_TEMPLATE_ANNOTATION};
use sluice::sandbox::apiserver::{ApiServer, ApiServerOptions, Identity};
use sluice::tls::Ca;
use sluice::webhook::{self, NamespaceCache, Running, StaticView, WebhookState};

const UPDATE: &str = include_str!("fixtures/admission/deployment-update-image.json");

/// A webhook on a free localhost port with a certificate from a fresh CA; returns the CA PEM.
async fn start_webhook(state: WebhookState) -> (Running, String) {
    sluice::tls::install_crypto_provider();
    let ca = Ca::new("sluice webhook test CA").unwrap();
    let issued = ca
        .issue(&["localhost"], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    let tls = webhook::load_tls(&cert, &key).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = webhook::start(addr, tls, state).await.unwrap();
    (running, ca.cert_pem().to_string())
}

fn https(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_tls_server_answers_a_captured_review_with_a_pause_patch() {
    let view = StaticView::with_namespace("shop", &[(OPT_IN_LABEL, "enabled")]);
    let (running, ca) = start_webhook(WebhookState::new(Arc::new(view))).await;
    let base = format!("https://{}", running.local_addr());
    let http = https(&ca);

    let resp = http
        .post(format!("{base}/mutate"))
        .header("content-type", "application/json")
        .body(UPDATE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let review: Value = resp.json().await.unwrap();
    assert_eq!(review["apiVersion"], json!("admission.k8s.io/v1"));
    assert_eq!(review["kind"], json!("AdmissionReview"));
    let r = &review["response"];
    assert_eq!(r["uid"], json!("7a532e0f-89cf-4d7b-82e7-738e5e714fed"));
    assert_eq!(r["allowed"], json!(true));
    assert_eq!(r["patchType"], json!("JSONPatch"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(
            r["patch"]
                .as_str()
                .expect("the patch is base64, as the API's []byte"),
        )
        .unwrap();
    let patch: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        patch[0],
        json!({"op": "add", "path": "/spec/paused", "value": true})
    );

    // The validating side lets a healthy update through.
    let review: Value = http
        .post(format!("{base}/validate"))
        .body(UPDATE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(review["response"]["allowed"], json!(true));

    // Garbage is a 400 that says what was expected, and the server carries on.
    let resp = http
        .post(format!("{base}/mutate"))
        .body("{\"request\": 42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("AdmissionReview"));
    // A review without a request is answered, refused, with the reason.
    let review: Value = http
        .post(format!("{base}/validate"))
        .body(r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(review["response"]["allowed"], json!(false));
    let message = review["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("no `request`"), "{message}");
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    running.shutdown().await.unwrap();
}

fn podinfo(image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": "shop", "labels": {"app": "podinfo"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "podinfo", "image": image}]}
            }
        }
    }))
    .unwrap()
}

/// Registers the webhook at `addr` for Deployment updates, as `sluice` will install it.
async fn register(client: &Client, addr: SocketAddr, ca_pem: &str) {
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "sluice"},
        "webhooks": [{
            "name": "mutate.sluice.dev",
            "clientConfig": {
                "url": format!("https://{addr}/mutate"),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem)
            },
            "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                       "resources": ["deployments"], "scope": "Namespaced"}],
            "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail", "reinvocationPolicy": "IfNeeded", "timeoutSeconds": 5
        }]
    });
    let api: Api<kube::core::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::discovery::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: "MutatingWebhookConfiguration".into(),
            plural: "mutatingwebhookconfigurations".into(),
        },
    );
    api.create(
        &PostParams::default(),
        &serde_json::from_value(config).unwrap(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_sandbox_api_server_pauses_an_image_update_of_a_managed_deployment() {
    sluice::tls::install_crypto_provider();
    let api = ApiServer::start(ApiServerOptions::default()).await.unwrap();
    let client = api.client(Identity::Admin).await.unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": "shop", "labels": {OPT_IN_LABEL: "enabled"}}
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();

    // The webhook reads the namespace from a real reflector, as the controller will share it.
    let (store, writer) = reflector::store();
    let watch = reflector(writer, watcher(namespaces, watcher::Config::default()))
        .applied_objects()
        .for_each(|_| async {});
    let reflector_task = tokio::spawn(watch);
    tokio::time::timeout(Duration::from_secs(10), store.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    let view = NamespaceCache::new(store);
    let (running, ca) = start_webhook(WebhookState::new(Arc::new(view))).await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    deployments
        .create(
            &PostParams::default(),
            &podinfo("ghcr.io/stefanprodan/podinfo:6.0.0"),
        )
        .await
        .unwrap();
    let before = deployments.get("podinfo").await.unwrap();
    register(&client, running.local_addr(), &ca).await;

    // A replica change passes untouched.
    let scaled = deployments
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.as_ref().unwrap().replicas, Some(3));
    assert_ne!(scaled.spec.as_ref().unwrap().paused, Some(true));
    let annotations = scaled.metadata.annotations.unwrap_or_default();
    assert!(!annotations.contains_key(STABLE_TEMPLATE_ANNOTATION));

    // An image update comes back paused, with the old template recorded as stable.
    let updated = deployments
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "podinfo", "image": "ghcr.io/stefanprodan/podinfo:6.0.1"}
            ]}}}})),
        )
        .await
        .unwrap();
    let spec = updated.spec.as_ref().unwrap();
    assert_eq!(spec.paused, Some(true));
    let image = spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("ghcr.io/stefanprodan/podinfo:6.0.1"));
    let stable = updated.metadata.annotations.unwrap()[STABLE_TEMPLATE_ANNOTATION].clone();
    let old_template = serde_json::to_value(&before.spec.unwrap().template).unwrap();
    assert_eq!(stable, webhook::revision::canonical_json(&old_template));

    running.shutdown().await.unwrap();
    reflector_task.abort();
    api.shutdown().await;
}

/// The DER of the certificate the server at `addr` presents in a fresh handshake.
async fn presented(addr: SocketAddr, ca_pem: &str) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der_of(ca_pem).into()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// The DER inside one PEM certificate.
fn der_of(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn rotated_certificate_files_are_served_to_new_connections_without_a_restart() {
    sluice::tls::install_crypto_provider();
    let ca = Ca::new("sluice rotation test CA").unwrap();
    let issue = || {
        ca.issue(&["localhost"], &["127.0.0.1".parse().unwrap()])
            .unwrap()
    };
    let (first, second) = (issue(), issue());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &first.cert_pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    let view = StaticView::with_namespace("shop", &[]);
    let running = webhook::start(
        "127.0.0.1:0".parse().unwrap(),
        webhook::load_tls(&cert, &key).unwrap(),
        WebhookState::new(Arc::new(view)),
    )
    .await
    .unwrap();
    let _reload = running.reload_tls_from(cert.clone(), key.clone(), Duration::from_millis(100));
    let addr = running.local_addr();
    assert_eq!(
        presented(addr, ca.cert_pem()).await,
        der_of(&first.cert_pem)
    );

    // A certificate without its key yet (a rotation caught half-way) is not served.
    std::fs::write(&cert, &second.cert_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        presented(addr, ca.cert_pem()).await,
        der_of(&first.cert_pem),
        "the old pair keeps serving until the new one is whole"
    );
    std::fs::write(&key, &second.key_pem).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while presented(addr, ca.cert_pem()).await != der_of(&second.cert_pem) {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn sluice_certs_writes_a_secret_the_webhook_serves_and_a_ca_bundle_that_trusts_it() {
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    use sluice::cli::certs;
    sluice::tls::install_crypto_provider();
    let server = ApiServer::start(ApiServerOptions::default()).await.unwrap();
    let client = server.client(Identity::Admin).await.unwrap();
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "sluice-system"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    // The configurations as deploy/ installs them, before any caBundle.
    let configs = sluice::sandbox::embedded::webhook_configurations("");
    for mut config in configs {
        for hook in config["webhooks"].as_array_mut().unwrap() {
            hook["clientConfig"]
                .as_object_mut()
                .unwrap()
                .remove("caBundle");
        }
        let kind = config["kind"].as_str().unwrap().to_string();
        let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", &kind);
        Api::<DynamicObject>::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
            .patch(
                "sluice",
                &PatchParams::apply("test"),
                &Patch::Apply(&config),
            )
            .await
            .unwrap();
    }

    let first = certs::mint("sluice-system").unwrap();
    certs::install(&client, "sluice-system", &first)
        .await
        .unwrap();
    let second = certs::mint("sluice-system").unwrap();
    certs::install(&client, "sluice-system", &second)
        .await
        .unwrap();

    let secret =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "sluice-system")
            .get("sluice-tls")
            .await
            .unwrap();
    let data = secret.data.unwrap();
    let (cert, key) = (&data["tls.crt"].0, &data["tls.key"].0);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), key).unwrap();
    let tls = webhook::load_tls(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    let running = webhook::start(
        "127.0.0.1:0".parse().unwrap(),
        tls,
        WebhookState::new(Arc::new(StaticView::with_namespace("shop", &[]))),
    )
    .await
    .unwrap();

    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
        let config = Api::<DynamicObject>::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
            .get("sluice")
            .await
            .unwrap();
        let bundle = base64::engine::general_purpose::STANDARD
            .decode(
                config.data["webhooks"][0]["clientConfig"]["caBundle"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let bundle = String::from_utf8(bundle).unwrap();
        assert!(
            bundle.starts_with(&second.ca_pem) && bundle.ends_with(&first.ca_pem),
            "{kind}: the new CA first, the previous one kept for the rotation"
        );
        // kube-apiserver's view: trust the bundle, call sluice.sluice-system.svc.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der_of(&second.ca_pem).into()).unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(running.local_addr())
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("sluice.sluice-system.svc").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("the served certificate is trusted by the caBundle for the Service's name");
    }
    running.shutdown().await.unwrap();
    server.shutdown().await;
}

/// A webhook with short limits, and a raw TCP connection to it.
async fn limited_webhook() -> (Running, SocketAddr, rustls::RootCertStore) {
    sluice::tls::install_crypto_provider();
    let ca = Ca::new("sluice limits test CA").unwrap();
    let issued = ca
        .issue(&["localhost"], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let tls = sluice::tls::server_config("limits test", &issued.cert_pem, &issued.key_pem).unwrap();
    let limits = webhook::Limits {
        handshake: Duration::from_secs(1),
        header_read: Duration::from_secs(1),
    };
    let view = StaticView::with_namespace("shop", &[(OPT_IN_LABEL, "enabled")]);
    let running = webhook::start_with(
        "127.0.0.1:0".parse().unwrap(),
        tls,
        WebhookState::new(Arc::new(view)),
        limits,
    )
    .await
    .unwrap();
    let addr = running.local_addr();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.cert_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    (running, addr, roots)
}

/// Reads until the peer closes (or 5 s pass, which fails the test); returns what was read.
async fn read_until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    got
}

#[tokio::test]
async fn a_body_over_3_mib_is_refused_with_413_and_a_reason() {
    let (running, ca) = start_webhook(WebhookState::new(Arc::new(StaticView::default()))).await;
    let resp = https(&ca)
        .post(format!("https://{}/validate", running.local_addr()))
        .header("content-type", "application/json")
        .body(vec![b' '; (3 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let text = resp.text().await.unwrap();
    assert!(text.contains("larger than 3 MiB"), "{text}");
    // Just under the limit is read (and refused as not a review, with a 400).
    let resp = https(&ca)
        .post(format!("https://{}/validate", running.local_addr()))
        .body(vec![b' '; 3 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn a_slow_loris_client_is_cut_off_by_the_header_read_timeout() {
    use tokio::io::AsyncWriteExt;
    let (_running, addr, roots) = limited_webhook().await;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    tls.write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // Never finish the headers.
    let got = read_until_closed(&mut tls).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_cut_off() {
    let (_running, addr, _) = limited_webhook().await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let got = read_until_closed(&mut tcp).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn plaintext_http_gets_no_http_answer() {
    use tokio::io::AsyncWriteExt;
    let (_running, addr, _) = limited_webhook().await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let got = read_until_closed(&mut tcp).await;
    assert!(
        !got.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn a_tls_1_1_client_hello_is_refused() {
    use tokio::io::AsyncWriteExt;
    let (_running, addr, _) = limited_webhook().await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let got = read_until_closed(&mut tcp).await;
    // Either a fatal alert record (content type 21) or a bare close; never a ServerHello (22).
    assert!(
        got.is_empty() || got[0] == 21,
        "the server answered a TLS 1.1 hello with {got:02x?}"
    );
    if !got.is_empty() {
        assert_eq!(got.get(5), Some(&2), "a fatal alert: {got:02x?}");
    }
}

/// A TLS 1.1 ClientHello (no `supported_versions` extension, so 1.1 is the highest offered),
/// with cipher suites TLS 1.1 clients send, and an SNI of `localhost`.
fn tls11_client_hello() -> Vec<u8> {
    let sni_name = b"localhost";
    let mut sni = Vec::new();
    sni.extend_from_slice(&((sni_name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(sni_name.len() as u16).to_be_bytes());
    sni.extend_from_slice(sni_name);
    let mut extensions = Vec::new();
    extensions.extend_from_slice(&0u16.to_be_bytes());
    extensions.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    extensions.extend_from_slice(&sni);

    let mut hello = Vec::new();
    hello.extend_from_slice(&[0x03, 0x02]); // legacy_version: TLS 1.1
    hello.extend_from_slice(&[7u8; 32]); // random
    hello.push(0); // no session id
    let suites: [u16; 3] = [0xc013, 0xc014, 0x002f]; // ECDHE-RSA-AES128/256-SHA, RSA-AES128-SHA
    hello.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        hello.extend_from_slice(&s.to_be_bytes());
    }
    hello.extend_from_slice(&[1, 0]); // compression: null
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);

    let mut handshake = vec![1]; // ClientHello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![22, 0x03, 0x01]; // handshake record, version 1.0 as clients send
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}
