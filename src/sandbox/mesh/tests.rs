use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::routing::{self, RouteTable, ServiceInfo};
use super::*;

const TICK: Duration = Duration::from_millis(100);

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A pod of `deployment` in `ns`, labelled `app: {deployment}`.
fn mk_pod(name: &str, deployment: &str, image: &str, ready: bool) -> SimPod {
    SimPod {
        namespace: "ns".into(),
        name: name.into(),
        deployment: deployment.into(),
        labels: labels(&[("app", deployment), ("pod-template-hash", "h")]),
        template_hash: "h".into(),
        image: image.into(),
        ready,
    }
}

/// `app` (canary, image v2) and `app-primary` (image v1), with their Services.
fn mk_cluster() -> (RouteTable, PodTable) {
    let mut table = RouteTable::default();
    for (svc, app) in [
        ("app", "app"),
        ("app-canary", "app"),
        ("app-primary", "app-primary"),
    ] {
        table.services.insert(
            ("ns".into(), svc.into()),
            ServiceInfo {
                selector: Some(labels(&[("app", app)])),
            },
        );
    }
    let pods = PodTable::new();
    set_canary_pods(&pods, [true, true]);
    pods.set_deployment_pods(
        "ns",
        "app-primary",
        vec![mk_pod("app-primary-h-1", "app-primary", "v1", true)],
    );
    (table, pods)
}

/// The canary's two pods, `app-h-1` and `app-h-2` (image v2), ready as `ready` says.
fn set_canary_pods(pods: &PodTable, ready: [bool; 2]) {
    pods.set_deployment_pods(
        "ns",
        "app",
        vec![
            mk_pod("app-h-1", "app", "v2", ready[0]),
            mk_pod("app-h-2", "app", "v2", ready[1]),
        ],
    );
}

fn with_split(
    mut table: RouteTable,
    primary: serde_json::Value,
    canary: serde_json::Value,
) -> RouteTable {
    let spec = json!({"service": "app", "backends": [
        {"service": "app-primary", "weight": primary},
        {"service": "app-canary", "weight": canary}]});
    table
        .splits
        .push(routing::parse_split("ns", "app", &spec).expect("valid split"));
    table
}

fn start_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// Runs `seconds` of ticks from a whole second.
fn run(mesh: &mut Mesh, routes: &RouteTable, pods: &PodTable, seconds: u64) {
    let ticks = seconds * 10;
    for i in 0..ticks {
        mesh.tick(routes, pods, TICK, start_time() + TICK * (i as u32));
    }
}

#[test]
fn a_90_10_split_gives_90_10_in_every_second_within_one_request() {
    let (table, pods) = mk_cluster();
    let routes = with_split(table, json!(90), json!(10));
    let mut mesh = Mesh::new(7);
    mesh.set_load("ns", "app", 100.0);
    run(&mut mesh, &routes, &pods, 20);
    let traffic = mesh.ledger.traffic("ns", "app");
    assert_eq!(traffic.len(), 20);
    for second in &traffic {
        let canary = second.by_deployment.get("app").copied().unwrap_or(0);
        let primary = second
            .by_deployment
            .get("app-primary")
            .copied()
            .unwrap_or(0);
        assert_eq!(canary + primary, 100, "{second:?}");
        assert!((9..=11).contains(&canary), "{second:?}");
    }
}

#[test]
fn v1alpha1_quantity_weights_split_like_integers() {
    let (table, pods) = mk_cluster();
    let routes = with_split(table, json!("750m"), json!("250m"));
    let mut mesh = Mesh::new(7);
    mesh.set_load("ns", "app", 40.0);
    run(&mut mesh, &routes, &pods, 5);
    for second in mesh.ledger.traffic("ns", "app") {
        assert_eq!(second.by_deployment.get("app"), Some(&10), "{second:?}");
    }
}

#[test]
fn fractional_rates_carry_over_between_ticks() {
    let (table, pods) = mk_cluster();
    let mut mesh = Mesh::new(7);
    mesh.set_load("ns", "app", 15.0);
    run(&mut mesh, &table, &pods, 4);
    let traffic = mesh.ledger.traffic("ns", "app");
    let totals: Vec<u64> = traffic
        .iter()
        .map(|s| s.by_deployment.values().sum())
        .collect();
    assert_eq!(totals, [15, 15, 15, 15]);
}

#[test]
fn without_a_route_the_apex_selector_picks_the_pods() {
    let (table, pods) = mk_cluster();
    let mut mesh = Mesh::new(7);
    mesh.set_load("ns", "app", 10.0);
    run(&mut mesh, &table, &pods, 3);
    let counters = mesh
        .ledger
        .counters_at("ns", "app", start_time() + Duration::from_secs(10));
    assert_eq!(counters.map(|c| c.requests), Some(30));
    assert_eq!(
        mesh.ledger
            .counters_at("ns", "app-primary", start_time() + Duration::from_secs(10)),
        None
    );
    // Spread evenly over the two ready pods.
    let text = mesh.ledger.exposition();
    assert!(text.contains("request_total{namespace=\"ns\",deployment=\"app\",pod=\"app-h-1\",pod_template_hash=\"h\",direction=\"inbound\"} 15"));
    assert!(text.contains("pod=\"app-h-2\",pod_template_hash=\"h\",direction=\"inbound\"} 15"));
}

#[test]
fn pods_that_are_not_ready_get_no_traffic() {
    let (table, pods) = mk_cluster();
    set_canary_pods(&pods, [true, false]);
    let mut mesh = Mesh::new(7);
    mesh.set_load("ns", "app", 10.0);
    run(&mut mesh, &table, &pods, 1);
    let text = mesh.ledger.exposition();
    assert!(text.contains("pod=\"app-h-1\""));
    assert!(!text.contains("pod=\"app-h-2\""));
}

#[test]
fn a_service_without_ready_endpoints_drops_its_share() {
    let (table, pods) = mk_cluster();
    pods.set_deployment_pods("ns", "app", Vec::new());
    let routes = with_split(table, json!(50), json!(50));
    let mut mesh = Mesh::new(7);
    mesh.set_load("ns", "app", 10.0);
    run(&mut mesh, &routes, &pods, 1);
    let traffic = mesh.ledger.traffic("ns", "app");
    assert_eq!(
        traffic[0].by_deployment,
        BTreeMap::from([("app-primary".to_string(), 5)])
    );
}

#[test]
fn error_rates_fail_exactly_their_share_of_requests() {
    let (table, pods) = mk_cluster();
    let mut mesh = Mesh::new(7);
    mesh.profiles.insert(
        "v2".into(),
        Profile {
            error_rate: 0.05,
            ..Profile::default()
        },
    );
    mesh.set_load("ns", "app", 100.0);
    run(&mut mesh, &table, &pods, 10);
    let c = mesh
        .ledger
        .counters_at("ns", "app", start_time() + Duration::from_secs(60))
        .expect("counters");
    assert_eq!((c.requests, c.failures), (1000, 50));
    assert!(
        mesh.ledger
            .exposition()
            .contains("classification=\"failure\",status_code=\"500\"}")
    );
}

#[test]
fn header_classes_follow_the_httproute_match() {
    let (mut table, pods) = mk_cluster();
    let spec = json!({
        "parentRefs": [{"group": "", "kind": "Service", "name": "app"}],
        "rules": [
            {"matches": [{"headers": [{"name": "x-canary", "value": "always"}]}],
             "backendRefs": [{"name": "app-canary", "port": 80}]},
            {"backendRefs": [{"name": "app-primary", "port": 80}]}]});
    table.http_routes.push(routing::parse_http_route(
        "ns",
        "app",
        "2026-01-01T00:00:00Z",
        &spec,
    ));
    let mut mesh = Mesh::new(7);
    mesh.set_load("ns", "app", 100.0);
    mesh.set_classes(
        "ns",
        Entry::Service("app".into()),
        vec![
            RequestClass {
                name: "insiders".into(),
                share: 1.0,
                headers: labels(&[("X-Canary", "always")]),
                ..Default::default()
            },
            RequestClass {
                name: "everyone".into(),
                share: 3.0,
                ..Default::default()
            },
        ],
    );
    run(&mut mesh, &table, &pods, 4);
    for second in mesh.ledger.traffic("ns", "app") {
        assert_eq!(second.by_deployment.get("app"), Some(&25), "{second:?}");
        assert_eq!(
            second.by_deployment.get("app-primary"),
            Some(&75),
            "{second:?}"
        );
        let of_class = |c: &str| second.by_class.get(c).map(|i| i.values().sum::<u64>());
        assert_eq!(of_class("insiders"), Some(25), "{second:?}");
        assert_eq!(of_class("everyone"), Some(75), "{second:?}");
    }
}

#[test]
fn cookies_are_sent_in_the_cookie_header() {
    let class = RequestClass {
        name: "c".into(),
        share: 1.0,
        headers: labels(&[("Cookie", "session=1")]),
        cookies: labels(&[("canary", "always"), ("theme", "dark")]),
    };
    let headers = class.headers();
    assert_eq!(
        headers.get("cookie").map(String::as_str),
        Some("session=1; canary=always; theme=dark")
    );
}

#[test]
fn lognormal_latency_lands_on_the_profile_percentiles() {
    let profile = Profile {
        error_rate: 0.0,
        latency_p50_ms: 20.0,
        latency_p99_ms: 50.0,
    };
    let mut rng = fastrand::Rng::with_seed(42);
    let mut samples: Vec<f64> = (0..200_000)
        .map(|_| sample_latency(&profile, &mut rng))
        .collect();
    samples.sort_by(f64::total_cmp);
    let p50 = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    assert!((p50 - 20.0).abs() < 0.5, "p50 {p50}");
    assert!((p99 - 50.0).abs() < 2.0, "p99 {p99}");
    assert!(samples.iter().all(|s| s.is_finite() && *s > 0.0));
}

#[test]
fn a_seed_makes_latency_reproducible() {
    let profile = Profile::default();
    let mut a = fastrand::Rng::with_seed(9);
    let mut b = fastrand::Rng::with_seed(9);
    let xs: Vec<f64> = (0..10).map(|_| sample_latency(&profile, &mut a)).collect();
    let ys: Vec<f64> = (0..10).map(|_| sample_latency(&profile, &mut b)).collect();
    assert_eq!(xs, ys);
}

#[test]
fn a_zero_load_stops_traffic() {
    let (table, pods) = mk_cluster();
    let mut mesh = Mesh::new(7);
    mesh.set_load("ns", "app", 10.0);
    run(&mut mesh, &table, &pods, 1);
    mesh.set_load("ns", "app", 0.0);
    let before = mesh.ledger.traffic("ns", "app").len();
    for i in 10..30 {
        mesh.tick(&table, &pods, TICK, start_time() + TICK * i);
    }
    assert_eq!(mesh.ledger.traffic("ns", "app").len(), before);
}

/// `mk_cluster` mid-rollout behind Ingress `app`: the apex selects the primary's pods, and
/// Sluice's canary Ingress `app-canary` sends `weight` percent to `app-canary`, with `extra`
/// canary annotations.
fn with_canary_ingress(weight: u32, extra: serde_json::Value) -> (RouteTable, PodTable) {
    let (mut table, pods) = mk_cluster();
    table.services.insert(
        ("ns".into(), "app".into()),
        ServiceInfo {
            selector: Some(labels(&[("app", "app-primary")])),
        },
    );
    let to = |svc: &str| json!({"service": {"name": svc, "port": {"number": 80}}});
    let rules = |svc: &str| {
        json!([{"host": "app.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": to(svc)}]}}])
    };
    table.ingresses.push(ingress::parse_ingress(
        "ns",
        "app",
        &json!({}),
        &json!({"rules": rules("app")}),
    ));
    let mut annotations = json!({
        ingress::CANARY: "true",
        ingress::CANARY_WEIGHT: weight.to_string(),
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        annotations[k] = v.clone();
    }
    table.ingresses.push(ingress::parse_ingress(
        "ns",
        "app-canary",
        &json!({"annotations": annotations}),
        &json!({"rules": rules("app-canary")}),
    ));
    (table, pods)
}

#[test]
fn traffic_into_an_ingress_follows_its_canary_weight_and_counts_in_the_pods_metrics() {
    let (table, pods) = with_canary_ingress(20, json!({}));
    let mut mesh = Mesh::new(7);
    mesh.set_ingress_load("ns", "app", 50.0);
    run(&mut mesh, &table, &pods, 4);
    let traffic = mesh.ledger.traffic("ns", "app");
    assert_eq!(traffic.len(), 4);
    for second in &traffic {
        assert_eq!(second.by_deployment.get("app"), Some(&10), "{second:?}");
        assert_eq!(
            second.by_deployment.get("app-primary"),
            Some(&40),
            "{second:?}"
        );
    }
    let at = start_time() + Duration::from_secs(10);
    let canary = mesh
        .ledger
        .counters_at("ns", "app", at)
        .expect("canary counters");
    let primary = mesh
        .ledger
        .counters_at("ns", "app-primary", at)
        .expect("primary counters");
    assert_eq!((canary.requests, primary.requests), (40, 160));
    assert!(
        mesh.ledger
            .exposition()
            .contains("request_total{namespace=\"ns\",deployment=\"app\",pod=\"app-h-1\"")
    );
}

#[test]
fn an_ingress_canary_takes_requests_with_its_header_or_cookie_whatever_the_weight() {
    let (table, pods) = with_canary_ingress(
        0,
        json!({ingress::CANARY_BY_HEADER: "x-canary", ingress::CANARY_BY_COOKIE: "canary"}),
    );
    let mut mesh = Mesh::new(7);
    mesh.set_ingress_load("ns", "app", 40.0);
    mesh.set_classes(
        "ns",
        Entry::Ingress("app".into()),
        vec![
            RequestClass {
                name: "header".into(),
                share: 1.0,
                headers: labels(&[("X-Canary", "always")]),
                ..Default::default()
            },
            RequestClass {
                name: "cookie".into(),
                share: 1.0,
                cookies: labels(&[("canary", "always")]),
                ..Default::default()
            },
            RequestClass {
                name: "never".into(),
                share: 1.0,
                headers: labels(&[("X-Canary", "never")]),
                cookies: labels(&[("canary", "always")]),
            },
            RequestClass {
                name: "everyone".into(),
                share: 1.0,
                ..Default::default()
            },
        ],
    );
    run(&mut mesh, &table, &pods, 3);
    for second in mesh.ledger.traffic("ns", "app") {
        assert_eq!(second.by_deployment.get("app"), Some(&20), "{second:?}");
        assert_eq!(
            second.by_deployment.get("app-primary"),
            Some(&20),
            "{second:?}"
        );
    }
}

#[test]
fn a_load_into_an_ingress_that_does_not_exist_reaches_nobody() {
    let (table, pods) = mk_cluster();
    let mut mesh = Mesh::new(7);
    mesh.set_ingress_load("ns", "app", 10.0);
    run(&mut mesh, &table, &pods, 1);
    assert!(mesh.ledger.traffic("ns", "app").is_empty());
}
