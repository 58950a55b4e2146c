//! Routing and generated objects on the sandbox API server: the SMI router discovers the served
//! TrafficSplit version, writes only when the weights change, and the objects Sluice generates
//! for a Deployment are accepted by the server's validation and collected with the Deployment.
//! The Gateway API router writes an HTTPRoute on the apex port (once per change, whatever the
//! CRD defaults), an unserved route API blocks with a reason until it is served, and a
//! ServiceProfile of the apex is warned about with an Event on the Deployment; choosing a
//! router whose API is not served is refused at admission until it is. The NGINX router
//! mirrors the user's Ingress as a canary Ingress and never edits the user's, and blocks while
//! the Ingress it names does not exist.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use sluice::controller::objects::{
    apex_restore_patch, apex_rollout_patch, canary_service, primary_deployment, primary_service,
    route_target,
};
use sluice::controller::status::{Phase, RolloutStatus};
use sluice::policy::keys::APEX_SELECTOR_ANNOTATION;
use sluice::policy::values::{MatchRule, RouterKind};
use sluice::routing::{
    AnyRouter, Discovery, GatewayRouter, NginxRouter, RouteTarget, Router, RoutingError, SmiRouter,
    SmiVersion, Split, Weights, gateway, nginx, served,
};
use sluice::sandbox::apiserver::{ApiServer, ApiServerOptions, Identity};
use sluice::sandbox::embedded::Embedded;
use sluice::sandbox::{MetricsBackend, Sandbox, SandboxOptions};

const NS: &str = "default";

async fn server() -> (ApiServer, kube::Client) {
    sluice::tls::install_crypto_provider();
    let api = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("sandbox API server starts");
    let client = api.client(Identity::Admin).await.expect("admin client");
    (api, client)
}

fn app_manifest() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web", "sluice.dev/canary": "enabled"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:2",
                    "ports": [{"name": "http", "containerPort": 8080}]}]}
            }
        }
    }))
    .unwrap()
}

fn apex_manifest() -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap()
}

/// Creates `app` and its apex Service; returns them as stored, with the route target.
async fn onboard(client: &kube::Client) -> (Deployment, Service, RouteTarget) {
    let app = Api::<Deployment>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &app_manifest())
        .await
        .unwrap();
    let apex = Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &apex_manifest())
        .await
        .unwrap();
    let target = route_target(&app, &apex, RouterKind::Smi).unwrap();
    (app, apex, target)
}

fn splits(client: &kube::Client, version: SmiVersion) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "split.smi-spec.io".into(),
        version: version.as_str().into(),
        api_version: version.api_version(),
        kind: "TrafficSplit".into(),
        plural: "trafficsplits".into(),
    };
    Api::namespaced_with(client.clone(), NS, &ar)
}

async fn stored_split(client: &kube::Client, version: SmiVersion) -> Value {
    let obj = splits(client, version).get("web").await.unwrap();
    serde_json::to_value(obj).unwrap()
}

fn w(primary: u32, canary: u32) -> Split {
    Split::Weighted(Weights { primary, canary })
}

#[tokio::test]
async fn ensure_creates_a_v1alpha2_split_and_reads_it_back() {
    let (_api, client) = server().await;
    let (app, _, target) = onboard(&client).await;
    let router = SmiRouter::new(client.clone()).await.unwrap();
    assert_eq!(router.kind(), "smi");
    assert_eq!(router.cached_version(), Some(SmiVersion::V1Alpha2));
    assert_eq!(
        router.route_resource().map(|r| r.api_version),
        Some("split.smi-spec.io/v1alpha2".to_string())
    );
    assert_eq!(router.split(&target).await.unwrap(), None);

    router
        .ensure(&target, Weights::AT_REST.into())
        .await
        .unwrap();

    let ts = stored_split(&client, SmiVersion::V1Alpha2).await;
    assert_eq!(ts["apiVersion"], "split.smi-spec.io/v1alpha2");
    assert_eq!(
        ts["spec"],
        json!({"service": "web", "backends": [
            {"service": "web-primary", "weight": 0},
            {"service": "web-canary", "weight": 100},
        ]})
    );
    assert_eq!(
        ts["metadata"]["ownerReferences"][0]["uid"],
        json!(app.metadata.uid)
    );
    let managers: Vec<&str> = ts["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, vec!["sluice"]);
    assert_eq!(
        router.split(&target).await.unwrap(),
        Some(Weights::AT_REST.into())
    );

    router.ensure(&target, w(90, 10)).await.unwrap();
    assert_eq!(router.split(&target).await.unwrap(), Some(w(90, 10)));
}

#[tokio::test]
async fn a_second_ensure_with_the_same_weights_writes_nothing() {
    let (api, client) = server().await;
    let (_, _, target) = onboard(&client).await;
    let router = AnyRouter::new(client.clone()).await.unwrap();
    router.ensure(&target, w(80, 20)).await.unwrap();
    let before = stored_split(&client, SmiVersion::V1Alpha2).await;
    let patches = api.request_counts().get("patch").copied();

    router.ensure(&target, w(80, 20)).await.unwrap();

    let after = stored_split(&client, SmiVersion::V1Alpha2).await;
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(api.request_counts().get("patch").copied(), patches);

    router.ensure(&target, w(70, 30)).await.unwrap();
    let moved = stored_split(&client, SmiVersion::V1Alpha2).await;
    assert_ne!(
        moved["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(router.split(&target).await.unwrap(), Some(w(70, 30)));
}

#[tokio::test]
async fn a_route_someone_else_changed_is_put_back() {
    let (_api, client) = server().await;
    let (_, _, target) = onboard(&client).await;
    let router = SmiRouter::new(client.clone()).await.unwrap();
    router.ensure(&target, w(90, 10)).await.unwrap();
    let edit = json!({"spec": {"backends": [
        {"service": "web-primary", "weight": 10},
        {"service": "web-canary", "weight": 90},
    ]}});
    splits(&client, SmiVersion::V1Alpha2)
        .patch("web", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    assert_eq!(router.split(&target).await.unwrap(), Some(w(10, 90)));

    router.ensure(&target, w(90, 10)).await.unwrap();

    assert_eq!(router.split(&target).await.unwrap(), Some(w(90, 10)));
}

#[tokio::test]
async fn without_v1alpha2_a_fresh_router_writes_v1alpha1_quantities() {
    let (api, client) = server().await;
    let (_, _, target) = onboard(&client).await;
    api.set_served("split.smi-spec.io/v1alpha2", false);
    let router = SmiRouter::new(client.clone()).await.unwrap();
    assert_eq!(router.cached_version(), Some(SmiVersion::V1Alpha1));
    assert_eq!(
        router.route_resource().map(|r| r.api_version),
        Some("split.smi-spec.io/v1alpha1".to_string())
    );

    router.ensure(&target, w(90, 10)).await.unwrap();

    let ts = stored_split(&client, SmiVersion::V1Alpha1).await;
    assert_eq!(ts["apiVersion"], "split.smi-spec.io/v1alpha1");
    assert_eq!(
        ts["spec"]["backends"][0],
        json!({"service": "web-primary", "weight": "90"})
    );
    assert_eq!(
        ts["spec"]["backends"][1],
        json!({"service": "web-canary", "weight": "10"})
    );
    assert_eq!(router.split(&target).await.unwrap(), Some(w(90, 10)));
}

#[tokio::test]
async fn a_router_follows_the_served_version_when_it_changes() {
    let (api, client) = server().await;
    let (_, _, target) = onboard(&client).await;
    let router = SmiRouter::new(client.clone()).await.unwrap();
    router.ensure(&target, w(60, 40)).await.unwrap();

    api.set_served("split.smi-spec.io/v1alpha2", false);

    assert_eq!(router.split(&target).await.unwrap(), Some(w(60, 40)));
    assert_eq!(router.cached_version(), Some(SmiVersion::V1Alpha1));
    router.ensure(&target, w(50, 50)).await.unwrap();
    let ts = stored_split(&client, SmiVersion::V1Alpha1).await;
    assert_eq!(ts["spec"]["backends"][1]["weight"], "50");
}

#[tokio::test]
async fn neither_version_served_is_not_served_until_linkerd_smi_is_installed() {
    let (api, client) = server().await;
    let (_, _, target) = onboard(&client).await;
    api.set_served("split.smi-spec.io/v1alpha2", false);
    api.set_served("split.smi-spec.io/v1alpha1", false);
    let router = SmiRouter::new(client.clone()).await.unwrap();
    assert_eq!(router.cached_version(), None);
    assert!(router.route_resource().is_none());

    let err = router
        .ensure(&target, Weights::AT_REST.into())
        .await
        .unwrap_err();
    assert!(matches!(err, RoutingError::NotServed { .. }), "{err}");
    assert!(
        err.to_string().contains("TrafficSplit default/web"),
        "{err}"
    );
    assert!(err.to_string().contains("linkerd-smi"), "{err}");
    let err = router.split(&target).await.unwrap_err();
    assert_eq!(err.metric_label(), "not_served");

    api.set_served("split.smi-spec.io/v1alpha2", true);
    router
        .ensure(&target, Weights::AT_REST.into())
        .await
        .unwrap();
    assert_eq!(
        router.split(&target).await.unwrap(),
        Some(Weights::AT_REST.into())
    );
}

#[tokio::test]
async fn weights_that_do_not_sum_to_100_are_refused_without_a_write() {
    let (api, client) = server().await;
    let (_, _, target) = onboard(&client).await;
    let router = SmiRouter::new(client.clone()).await.unwrap();
    let err = router.ensure(&target, w(50, 60)).await.unwrap_err();
    assert_eq!(err.metric_label(), "invalid_weights");
    assert_eq!(api.request_counts().get("patch"), None);
    assert_eq!(router.split(&target).await.unwrap(), None);
}

fn selector(svc: &Service) -> BTreeMap<String, String> {
    svc.spec
        .as_ref()
        .unwrap()
        .selector
        .clone()
        .unwrap_or_default()
}

#[tokio::test]
async fn generated_objects_are_accepted_and_collected_with_the_app() {
    let (_api, client) = server().await;
    let (app, apex, target) = onboard(&client).await;
    let deploys = Api::<Deployment>::namespaced(client.clone(), NS);
    let services = Api::<Service>::namespaced(client.clone(), NS);
    let stable = app.spec.as_ref().unwrap().template.clone();
    let pp = PostParams::default();

    deploys
        .create(&pp, &primary_deployment(&app, &stable).unwrap())
        .await
        .unwrap();
    services
        .create(&pp, &primary_service(&app, &apex).unwrap())
        .await
        .unwrap();
    services
        .create(&pp, &canary_service(&app, &apex).unwrap())
        .await
        .unwrap();
    let router = SmiRouter::new(client.clone()).await.unwrap();
    router
        .ensure(&target, Weights::ALL_PRIMARY.into())
        .await
        .unwrap();

    let primary = deploys.get("web-primary").await.unwrap();
    let spec = primary.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        spec.selector.match_labels.unwrap()["app"],
        "web-primary".to_string()
    );
    assert_eq!(
        selector(&services.get("web-primary").await.unwrap())["app"],
        "web-primary"
    );
    assert_eq!(
        selector(&services.get("web-canary").await.unwrap())["app"],
        "web"
    );

    // The apex points at the primary pods while the rollout runs, then goes back.
    let patch = apex_rollout_patch(&apex, &app).unwrap().unwrap();
    let during = services
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(selector(&during)["app"], "web-primary");
    assert_eq!(
        during.metadata.annotations.as_ref().unwrap()[APEX_SELECTOR_ANNOTATION],
        r#"{"app":"web"}"#
    );
    assert_eq!(apex_rollout_patch(&during, &app).unwrap(), None);
    let patch = apex_restore_patch(&during).unwrap().unwrap();
    let after = services
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(selector(&after), selector(&apex));
    assert!(
        !after
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(APEX_SELECTOR_ANNOTATION)
    );

    deploys
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();

    let left: Vec<String> = deploys
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.metadata.name.unwrap())
        .collect();
    assert_eq!(left, Vec::<String>::new());
    let mut svcs: Vec<String> = services
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.metadata.name.unwrap())
        .collect();
    svcs.sort();
    assert!(
        !svcs.iter().any(|s| s == "web-primary" || s == "web-canary"),
        "generated Services are collected, left: {svcs:?}"
    );
    assert!(svcs.contains(&"web".to_string()), "the apex is the user's");
    assert!(
        splits(&client, SmiVersion::V1Alpha2)
            .get_opt("web")
            .await
            .unwrap()
            .is_none(),
        "the route is collected"
    );
}

fn gateway_target(target: &RouteTarget) -> RouteTarget {
    RouteTarget {
        router: RouterKind::GatewayApi,
        ..target.clone()
    }
}

async fn stored_route(client: &kube::Client) -> Value {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &gateway::api_resource());
    serde_json::to_value(api.get("web").await.unwrap()).unwrap()
}

#[tokio::test]
async fn the_gateway_router_writes_an_httproute_on_the_apex_port_once_per_change() {
    let (api, client) = server().await;
    let (app, _, target) = onboard(&client).await;
    let target = gateway_target(&target);
    let router = GatewayRouter::new(client.clone()).await.unwrap();
    assert_eq!(router.kind(), "gateway-api");
    assert_eq!(
        router.route_resource().map(|r| r.api_version),
        Some("gateway.networking.k8s.io/v1".to_string())
    );
    assert_eq!(router.unserved().await.unwrap(), None);
    assert_eq!(router.split(&target).await.unwrap(), None);

    router
        .ensure(&target, Weights::AT_REST.into())
        .await
        .unwrap();

    let r = stored_route(&client).await;
    assert_eq!(r["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(
        r["spec"]["parentRefs"],
        json!([{"group": "", "kind": "Service", "name": "web", "port": 80}])
    );
    let backends = &r["spec"]["rules"][0]["backendRefs"];
    assert_eq!(backends[0]["name"], "web-primary");
    assert_eq!(backends[0]["port"], 80);
    assert_eq!(backends[0]["weight"], 0);
    assert_eq!(backends[1]["name"], "web-canary");
    assert_eq!(backends[1]["weight"], 100);
    assert_eq!(
        r["metadata"]["ownerReferences"][0]["uid"],
        json!(app.metadata.uid)
    );

    // The API server added the CRD's defaults; the route still counts as written.
    let patches = api.request_counts().get("patch").copied();
    router
        .ensure(&target, Weights::AT_REST.into())
        .await
        .unwrap();
    assert_eq!(api.request_counts().get("patch").copied(), patches);
    assert_eq!(
        stored_route(&client).await["metadata"]["resourceVersion"],
        r["metadata"]["resourceVersion"]
    );

    router.ensure(&target, w(80, 20)).await.unwrap();
    assert_eq!(router.split(&target).await.unwrap(), Some(w(80, 20)));
}

#[tokio::test]
async fn one_any_router_writes_each_deployments_route_with_the_router_it_names() {
    let (_api, client) = server().await;
    let (_, _, smi_target) = onboard(&client).await;
    let router = AnyRouter::new(client.clone()).await.unwrap();
    let resources: Vec<String> = router
        .route_resources()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(resources, ["TrafficSplit", "HTTPRoute", "Ingress"]);

    router.ensure(&smi_target, w(70, 30)).await.unwrap();
    assert_eq!(
        stored_split(&client, SmiVersion::V1Alpha2).await["spec"]["backends"][1]["weight"],
        30
    );
    let routes: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &gateway::api_resource());
    assert!(
        routes.get_opt("web").await.unwrap().is_none(),
        "SMI wrote no HTTPRoute"
    );

    let gw_target = gateway_target(&smi_target);
    router.ensure(&gw_target, w(60, 40)).await.unwrap();
    assert_eq!(router.split(&gw_target).await.unwrap(), Some(w(60, 40)));
    assert_eq!(
        router.split(&smi_target).await.unwrap(),
        None,
        "the TrafficSplit Sluice wrote is removed once the Deployment moves to gateway-api"
    );

    let nginx = RouteTarget {
        router: RouterKind::Nginx,
        ..smi_target.clone()
    };
    assert_eq!(router.unserved(RouterKind::Nginx).await.unwrap(), None);
    let err = router.ensure(&nginx, w(60, 40)).await.unwrap_err();
    assert_eq!(err.metric_label(), "ingress");
    let blocked = router
        .problem(RouterKind::Nginx, NS, "web", "web")
        .await
        .unwrap()
        .expect("no Ingress web: Blocked");
    assert!(
        blocked.contains("Ingress default/web does not exist"),
        "{blocked}"
    );
    assert!(blocked.contains("sluice.dev/ingress"), "{blocked}");

    ingresses(&client)
        .create(&PostParams::default(), &user_ingress())
        .await
        .unwrap();
    assert_eq!(
        router
            .problem(RouterKind::Nginx, NS, "web", "web")
            .await
            .unwrap(),
        None
    );
    router.ensure(&nginx, w(60, 40)).await.unwrap();
    assert_eq!(router.split(&nginx).await.unwrap(), Some(w(60, 40)));
    assert_eq!(
        router.split(&gw_target).await.unwrap(),
        None,
        "the HTTPRoute Sluice wrote is removed once the Deployment moves to nginx"
    );
}

fn ingresses(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), NS, &nginx::api_resource())
}

/// The user's Ingress `web`: `/` of shop.example.com to the apex `web` on port 80.
fn user_ingress() -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn the_nginx_router_writes_a_canary_ingress_once_per_change_and_leaves_the_users_alone() {
    let (api, client) = server().await;
    let (app, _, target) = onboard(&client).await;
    let target = RouteTarget {
        router: RouterKind::Nginx,
        ..target
    };
    let user = ingresses(&client)
        .create(&PostParams::default(), &user_ingress())
        .await
        .unwrap();
    let router = NginxRouter::new(client.clone()).await.unwrap();
    assert_eq!(router.kind(), "nginx");
    assert_eq!(router.split(&target).await.unwrap(), None);

    router
        .ensure(&target, Weights::AT_REST.into())
        .await
        .unwrap();
    let canary = serde_json::to_value(ingresses(&client).get("web-canary").await.unwrap()).unwrap();
    let annotations = &canary["metadata"]["annotations"];
    assert_eq!(annotations[nginx::CANARY], "true");
    assert_eq!(annotations[nginx::CANARY_WEIGHT], "100");
    assert_eq!(
        canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"],
        json!({"name": "web-canary", "port": {"number": 80}})
    );
    assert_eq!(canary["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        canary["metadata"]["ownerReferences"][0]["uid"],
        json!(app.metadata.uid)
    );

    let patches = api.request_counts().get("patch").copied();
    router
        .ensure(&target, Weights::AT_REST.into())
        .await
        .unwrap();
    assert_eq!(api.request_counts().get("patch").copied(), patches);

    router.ensure(&target, w(80, 20)).await.unwrap();
    assert_eq!(router.split(&target).await.unwrap(), Some(w(80, 20)));
    let after = ingresses(&client).get("web").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, user.metadata.resource_version,
        "the user's Ingress is never edited"
    );
    assert!(router.remove(&target).await.unwrap());
    assert!(
        ingresses(&client)
            .get_opt("web-canary")
            .await
            .unwrap()
            .is_none()
    );
    assert!(ingresses(&client).get_opt("web").await.unwrap().is_some());
}

#[tokio::test]
async fn moving_to_another_router_removes_only_the_route_sluice_wrote() {
    let (_api, client) = server().await;
    let (_, _, smi_target) = onboard(&client).await;
    let router = AnyRouter::new(client.clone()).await.unwrap();
    // Someone else's TrafficSplit of the same name (no owner reference to the app).
    let foreign: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
        "metadata": {"name": "web"},
        "spec": {"service": "web", "backends": [{"service": "web-canary", "weight": 1}]}
    }))
    .unwrap();
    splits(&client, SmiVersion::V1Alpha2)
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();

    router
        .ensure(&gateway_target(&smi_target), Weights::AT_REST.into())
        .await
        .unwrap();
    assert!(
        splits(&client, SmiVersion::V1Alpha2)
            .get_opt("web")
            .await
            .unwrap()
            .is_some(),
        "a TrafficSplit Sluice did not write is left alone"
    );

    router
        .ensure(&smi_target, Weights::AT_REST.into())
        .await
        .unwrap();
    let routes: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &gateway::api_resource());
    assert!(
        routes.get_opt("web").await.unwrap().is_none(),
        "the HTTPRoute is removed once the Deployment moves back to smi"
    );
}

#[tokio::test]
async fn an_unserved_httproute_blocks_until_the_crd_is_installed() {
    let (api, client) = server().await;
    let (_, _, target) = onboard(&client).await;
    let target = gateway_target(&target);
    api.set_served("gateway.networking.k8s.io/v1", false);
    let discovery = Discovery::fetch(&client).await.unwrap();
    let refused = served(RouterKind::GatewayApi, &discovery).unwrap_err();
    assert!(
        refused.contains("gateway.networking.k8s.io/v1 httproutes"),
        "{refused}"
    );
    assert_eq!(served(RouterKind::Smi, &discovery), Ok(()));

    let router = AnyRouter::new(client.clone()).await.unwrap();
    assert_eq!(
        router.unserved(RouterKind::GatewayApi).await.unwrap(),
        Some(refused)
    );
    let watched: Vec<String> = router
        .route_resources()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        watched,
        ["TrafficSplit", "Ingress"],
        "HTTPRoutes are not watched"
    );
    let err = router
        .ensure(&target, Weights::AT_REST.into())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTPRoute default/web"), "{err}");
    assert!(err.to_string().contains("Blocked"), "{err}");

    api.set_served("gateway.networking.k8s.io/v1", true);
    assert_eq!(router.unserved(RouterKind::GatewayApi).await.unwrap(), None);
    router
        .ensure(&target, Weights::AT_REST.into())
        .await
        .unwrap();
    assert_eq!(
        router.split(&target).await.unwrap(),
        Some(Weights::AT_REST.into())
    );
}

#[tokio::test]
async fn a_serviceprofile_of_the_apex_is_warned_about_once_with_an_event_on_the_app() {
    let (_api, client) = server().await;
    let (_, _, target) = onboard(&client).await;
    let target = gateway_target(&target);
    let profiles: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &gateway::profile_resource());
    let profile: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "linkerd.io/v1alpha2", "kind": "ServiceProfile",
        "metadata": {"name": "web.default.svc.cluster.local"},
        "spec": {"dstOverrides": [{"authority": "web-primary.default.svc.cluster.local:80", "weight": "1"}]}
    }))
    .unwrap();
    profiles
        .create(&PostParams::default(), &profile)
        .await
        .unwrap();
    let router = GatewayRouter::new(client.clone()).await.unwrap();

    router
        .ensure(&target, Weights::AT_REST.into())
        .await
        .unwrap();
    router.ensure(&target, w(90, 10)).await.unwrap();

    let events = Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let warnings: Vec<&Event> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(gateway::PROFILE_EVENT_REASON))
        .collect();
    assert_eq!(warnings.len(), 1, "{events:?}");
    let e = warnings[0];
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("web")
    );
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.kind.as_deref()),
        Some("Deployment")
    );
    let note = e.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("ServiceProfile default/web.default.svc.cluster.local"),
        "{note}"
    );
}

/// The phase and message Sluice recorded on `default/web`, once `check` holds.
async fn wait_for_phase(
    deployments: &Api<Deployment>,
    what: &str,
    check: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let d = deployments.get("web").await.unwrap();
        if let Some(s) = RolloutStatus::from_annotations(d.metadata.annotations.as_ref())
            .ok()
            .flatten()
            && check(&s)
        {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}: {:?}",
            d.metadata.annotations
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits until `default/web` is Blocked with a reason saying each of `parts`.
async fn blocked_saying(deployments: &Api<Deployment>, parts: &[&str]) {
    let blocked = wait_for_phase(deployments, "the phase is Blocked", |s| {
        s.phase == Phase::Blocked
    })
    .await;
    for part in parts {
        assert!(
            blocked.message.contains(part),
            "{part:?} missing from {}",
            blocked.message
        );
    }
}

/// A sandbox whose pods are ready after 100 ms, with the built-in metrics.
async fn quick_sandbox() -> Sandbox {
    sluice::tls::install_crypto_provider();
    Sandbox::start(SandboxOptions {
        ready_delay: std::time::Duration::from_millis(100),
        metrics: MetricsBackend::Builtin,
    })
    .await
    .unwrap()
}

/// Creates the apex Service and `default/web` with `sluice.dev/router: router`; the
/// Deployments API and what was sent.
async fn create_routed_app(client: &kube::Client, router: &str) -> (Api<Deployment>, Deployment) {
    let mut app = app_manifest();
    app.metadata.annotations = Some([("sluice.dev/router".to_string(), router.to_string())].into());
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &apex_manifest())
        .await
        .unwrap();
    deployments
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    (deployments, app)
}

/// Wakes the Blocked `default/web` (it is looked at again every 30 s; a change to it wakes it
/// sooner), waits until it is Initialized, and returns its route `route` once written (the
/// status is written first, then the route: the effects follow the intent).
async fn initialized_with_route(
    deployments: &Api<Deployment>,
    routes: &Api<DynamicObject>,
    route: &str,
) -> DynamicObject {
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "shop"}}})),
        )
        .await
        .unwrap();
    wait_for_phase(deployments, "the phase is Initialized", |s| {
        s.phase == Phase::Initialized
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(obj) = routes.get_opt(route).await.unwrap() {
            return obj;
        }
        assert!(std::time::Instant::now() < deadline, "no route {route}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_whose_route_api_is_not_served_is_blocked_saying_so_until_it_is() {
    let sandbox = quick_sandbox().await;
    sandbox
        .api
        .set_served("gateway.networking.k8s.io/v1", false);
    let client = sandbox.client(Identity::Admin).await.unwrap();
    // Written before Sluice (and its webhook) runs, as a Deployment whose API went away is.
    let (deployments, app) = create_routed_app(&client, "gateway-api").await;
    let sluice = Embedded::start(&sandbox).await.unwrap();
    // Choosing the unserved router now is refused at admission, in the phase's words.
    let mut another = app.clone();
    another.metadata.name = Some("web-2".into());
    let refused = deployments
        .create(&PostParams::default(), &another)
        .await
        .unwrap_err()
        .to_string();
    for part in [
        "admission webhook \"validate.sluice.dev\" denied the request",
        "sluice.dev/router: gateway-api",
        "gateway.networking.k8s.io/v1 httproutes",
    ] {
        assert!(refused.contains(part), "{part:?} missing from {refused}");
    }

    blocked_saying(&deployments, &["gateway.networking.k8s.io/v1 httproutes"]).await;
    let routes: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &gateway::api_resource());

    sandbox.api.set_served("gateway.networking.k8s.io/v1", true);
    let route = initialized_with_route(&deployments, &routes, "web").await;
    assert_eq!(
        route.data["spec"]["rules"][0]["backendRefs"][1]["weight"],
        100
    );
    // The webhook judges from the discovery the controller refreshed: now it is admitted.
    deployments
        .create(&PostParams::default(), &another)
        .await
        .unwrap();
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nginx_routed_deployment_is_blocked_naming_its_missing_ingress_until_it_exists() {
    let sandbox = quick_sandbox().await;
    let sluice = Embedded::start(&sandbox).await.unwrap();
    let client = sandbox.client(Identity::Admin).await.unwrap();
    let (deployments, _) = create_routed_app(&client, "nginx").await;

    blocked_saying(
        &deployments,
        &["Ingress default/web does not exist", "sluice.dev/ingress"],
    )
    .await;

    ingresses(&client)
        .create(&PostParams::default(), &user_ingress())
        .await
        .unwrap();
    let canary = initialized_with_route(&deployments, &ingresses(&client), "web-canary").await;
    let annotations = canary.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get(nginx::CANARY_WEIGHT).map(String::as_str),
        Some("100"),
        "at rest everything goes to web-canary, which selects web's pods"
    );
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_named_apex_wakes_its_blocked_deployment_when_it_is_created() {
    let sandbox = quick_sandbox().await;
    let sluice = Embedded::start(&sandbox).await.unwrap();
    let client = sandbox.client(Identity::Admin).await.unwrap();
    let mut app = app_manifest();
    app.metadata.annotations =
        Some([("sluice.dev/service".to_string(), "web-apex".to_string())].into());
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    deployments
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    blocked_saying(
        &deployments,
        &["the apex Service default/web-apex does not exist"],
    )
    .await;

    // A Blocked Deployment looks again every 30 s (the default interval is longer); the
    // creation of the Service it names must wake it at once, as a same-named apex's does.
    // First let every other event that would wake it pass: its pods becoming ready.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while deployments
        .get("web")
        .await
        .unwrap()
        .status
        .and_then(|s| s.ready_replicas)
        != Some(2)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "web's pods never ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let mut apex = apex_manifest();
    apex.metadata.name = Some("web-apex".into());
    let created = std::time::Instant::now();
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &apex)
        .await
        .unwrap();
    wait_for_phase(&deployments, "the phase is Initialized", |s| {
        s.phase == Phase::Initialized
    })
    .await;
    assert!(
        created.elapsed() < std::time::Duration::from_secs(10),
        "Initialized {:?} after its apex was created: the creation did not wake it",
        created.elapsed()
    );
    sluice.shutdown().await;
    sandbox.shutdown().await;
}

/// `target` with the A/B rule `x-canary: insider`.
fn with_ab_rule(target: RouteTarget, router: RouterKind) -> RouteTarget {
    let rules: Vec<MatchRule> =
        serde_json::from_value(json!([{"headers": [{"name": "x-canary", "value": "insider"}]}]))
            .unwrap();
    RouteTarget { router, ..target }.with_matches(&rules)
}

#[tokio::test]
async fn a_matched_route_is_written_once_read_back_as_matched_and_undone_by_a_weighted_one() {
    let (api, client) = server().await;
    let (_, _, target) = onboard(&client).await;
    ingresses(&client)
        .create(&PostParams::default(), &user_ingress())
        .await
        .unwrap();
    let router = AnyRouter::new(client.clone()).await.unwrap();
    for kind in [RouterKind::GatewayApi, RouterKind::Nginx] {
        let target = with_ab_rule(target.clone(), kind);
        router.ensure(&target, Split::Matched).await.unwrap();
        let patches = api.request_counts().get("patch").copied();
        router.ensure(&target, Split::Matched).await.unwrap();
        assert_eq!(
            api.request_counts().get("patch").copied(),
            patches,
            "{kind}: the stored matched route is up to date"
        );
        assert_eq!(router.split(&target).await.unwrap(), Some(Split::Matched));
        // A rollback: all to the primary, nothing matched any more.
        router
            .ensure(&target, Weights::ALL_PRIMARY.into())
            .await
            .unwrap();
        assert_eq!(
            router.split(&target).await.unwrap(),
            Some(Weights::ALL_PRIMARY.into()),
            "{kind}"
        );
        if kind == RouterKind::GatewayApi {
            let route = stored_route(&client).await;
            assert_eq!(route["spec"]["rules"].as_array().map(Vec::len), Some(1));
        }
    }
    let canary = serde_json::to_value(ingresses(&client).get("web-canary").await.unwrap()).unwrap();
    assert_eq!(canary["metadata"]["annotations"][nginx::CANARY_WEIGHT], "0");
    assert!(
        canary["metadata"]["annotations"]
            .get(nginx::CANARY_BY_HEADER)
            .is_none(),
        "{canary}"
    );
    // SMI cannot match: refused, nothing written.
    let smi = with_ab_rule(target, RouterKind::Smi);
    let err = router.ensure(&smi, Split::Matched).await.unwrap_err();
    assert!(matches!(err, RoutingError::NoMatching { .. }), "{err}");
}
