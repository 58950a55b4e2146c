//! NGINX ingress canary routing, for apps exposed outside the mesh: traffic that enters
//! through the user's Ingress is split by ingress-nginx's own canary rules, and measured by
//! Linkerd's metrics of the pods that answer, as for the other routers.
//!
//! ```text
//!  ensure(t, w) ── served? (networking.k8s.io/v1 ingresses) ── no ─► NotServed (Blocked)
//!                  └ GET the user's Ingress `t.ingress` ── missing ─► NoIngress (Blocked)
//!                    └ desired_canary_ingress(user, t, w) ── GET `app-canary` ── up to date? ─► no write
//!                                                                            └─ no ─► SSA apply
//!
//!  request ─► user's Ingress (host/path) ─┬─ canary-weight C% ─► Service app-canary ─► app's pods
//!                                         └─ the rest ─────────► apex Service ─► (during a rollout)
//!                                                                 app-primary's pods
//! ```
//!
//! The user's Ingress (setting `ingress`, default the Deployment's name) is never edited.
//! Sluice writes a companion Ingress `app-canary`: the user's `ingressClassName`, TLS and
//! rules, keeping only the paths whose backend is the apex Service, with that backend switched
//! to `app-canary` on the same port (by number or by name: `app-canary` copies the apex's
//! ports), annotated `nginx.ingress.kubernetes.io/canary: "true"` and
//! `nginx.ingress.kubernetes.io/canary-weight: "<canary percent>"`, labelled managed-by
//! `sluice`, owned by `app`, and written by server-side apply under the field manager `sluice`.
//!
//! A/B testing ([`Split::Matched`]): the canary Ingress carries `canary-weight: "0"`, so requests
//! that match nothing stay on the main backend, and the one header condition of the one
//! `sluice.dev/match` rule (admission refuses more: [`nginx_unsupported`]) as
//! `canary-by-header: <name>` with `canary-by-header-value: <value>` for an `Exact` match or
//! `canary-by-header-pattern: <value>` for a `RegularExpression`. ingress-nginx checks the header
//! first: a request whose header has that value (or matches that pattern) goes to the canary.
//!
//! - Cookies: a rule on the `Cookie` header (e.g. `{name: Cookie, type: RegularExpression,
//!   value: '(^|; )beta=yes(;|$)'}`) is written the same way, as `canary-by-header: Cookie` with
//!   the pattern, which ingress-nginx applies to the raw `Cookie` header: the same requests reach
//!   the canary as through an HTTPRoute. `canary-by-cookie` is not used: it takes only the cookie
//!   values `always` and `never`, and would route by a value the user's rule never named (a rule
//!   that means it writes `beta=always` into its pattern).
//! - The pattern is passed as written: ingress-nginx searches the header value for it (not
//!   anchored), so a rule that means the whole value says `^…$`.
//! - ingress-nginx's `always` / `never` header values apply only when neither a value nor a
//!   pattern is set, which Sluice never writes.
//!
//! Choices where DESIGN.md is silent:
//! - `canary-weight` is always the canary's percent, at rest too: at rest (0/100) the canary
//!   Ingress says `canary-weight: "100"`, so every request goes to `app-canary`, which selects
//!   `app`'s pods, the same pods the apex selects at rest. One mapping in both directions keeps
//!   the weights read back equal to the weights written, the way the TrafficSplit and the
//!   HTTPRoute do (at rest: primary 0, canary 100). During a rollout the apex selects the
//!   primary's pods (DESIGN §3), so the ingress's main backend is the stable version and
//!   `canary-weight` is exactly the new version's share.
//! - The canary Ingress is re-rendered from the user's Ingress on every write, so a change to
//!   the user's hosts, paths or TLS reaches it at the next reconcile.
//! - Paths of the user's Ingress that lead to other Services are left out (NGINX applies a
//!   canary per host and path, and those are not this app's). A user's Ingress with no path
//!   (and no default backend) to the apex leaves nothing to split: that is phase `Blocked`.
//! - Weights are read back from the canary Ingress: `canary-weight` out of
//!   `canary-weight-total` (default 100), as NGINX reads them; an Ingress without
//!   `canary: "true"` is not a canary and cannot be read as a split. One with a non-empty
//!   `canary-by-header` and weight 0 reads back as [`Split::Matched`].
//! - Up to date also means no `canary-by-*` annotation Sluice writes for A/B is left over when
//!   the split is weighted again (a leftover header would keep sending matching requests to
//!   the canary during a rollback).
//! - The Ingress API is discovered once and cached like the route APIs; it is served by every
//!   Kubernetes since 1.19.

use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::{Map, Value, json};

use super::served::{api_resource_of, serves, unserved_reason};
use super::{
    RouteClient, RouteTarget, Router, RoutingError, Split, Weights, check_split,
    is_owned_and_labelled, percent_split, route_metadata,
};
use crate::policy::keys::Setting;
use crate::policy::values::{MatchType, RouterKind, nginx_unsupported};

/// API group of Ingress.
pub const GROUP: &str = "networking.k8s.io";
/// The version Sluice reads and writes.
pub const VERSION: &str = "v1";
/// Kind of the route object.
pub const KIND: &str = "Ingress";
/// Plural resource name of Ingress.
pub const PLURAL: &str = "ingresses";

/// Marks an Ingress as a canary of the Ingress with the same host and path.
pub const CANARY: &str = "nginx.ingress.kubernetes.io/canary";
/// Percent (out of [`CANARY_WEIGHT_TOTAL`]) of requests the canary takes.
pub const CANARY_WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";
/// The total `canary-weight` is out of (default 100).
pub const CANARY_WEIGHT_TOTAL: &str = "nginx.ingress.kubernetes.io/canary-weight-total";
/// Header whose value `always` / `never` (or [`CANARY_BY_HEADER_VALUE`]) picks the canary.
pub const CANARY_BY_HEADER: &str = "nginx.ingress.kubernetes.io/canary-by-header";
/// The value of [`CANARY_BY_HEADER`] that sends a request to the canary.
pub const CANARY_BY_HEADER_VALUE: &str = "nginx.ingress.kubernetes.io/canary-by-header-value";
/// A regular expression the [`CANARY_BY_HEADER`] value is searched for (when no
/// [`CANARY_BY_HEADER_VALUE`] is set).
pub const CANARY_BY_HEADER_PATTERN: &str = "nginx.ingress.kubernetes.io/canary-by-header-pattern";
/// Cookie whose value `always` / `never` picks the canary.
pub const CANARY_BY_COOKIE: &str = "nginx.ingress.kubernetes.io/canary-by-cookie";
/// The ingress class annotation older installations use instead of `ingressClassName`.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The Ingress resource.
pub fn api_resource() -> ApiResource {
    api_resource_of(GROUP, VERSION, KIND, PLURAL)
}

/// The target of the canary Ingress `app-canary` (the route's name is the Deployment's).
fn canary_target(target: &RouteTarget) -> RouteTarget {
    RouteTarget {
        name: crate::controller::objects::canary_name(&target.name),
        ..target.clone()
    }
}

/// Why the user's Ingress cannot be mirrored, for phase `Blocked` (`None`: it can).
pub fn ingress_problem(
    namespace: &str,
    ingress: &str,
    apex: &str,
    user: Option<&Value>,
) -> Option<String> {
    let key = Setting::Ingress.annotation();
    let Some(user) = user else {
        return Some(format!(
            "the Ingress {namespace}/{ingress} does not exist, and sluice.dev/router: nginx \
             splits the traffic that enters through it; create it, or name the app's Ingress \
             with {key}"
        ));
    };
    if canary_spec(user, apex, "-").is_none() {
        return Some(format!(
            "the Ingress {namespace}/{ingress} sends no path to the apex Service \
             {namespace}/{apex}, so there is nothing for sluice.dev/router: nginx to split; \
             point one of its backends at {apex}, or name the app's Ingress with {key}"
        ));
    }
    None
}

/// A backend with `service.name == apex` switched to `canary`; `None` for any other backend.
fn switched_backend(backend: &Value, apex: &str, canary: &str) -> Option<Value> {
    (backend["service"]["name"] == apex).then(|| {
        let mut b = backend.clone();
        b["service"]["name"] = json!(canary);
        b
    })
}

/// The user's Ingress `spec` with only the paths to `apex`, switched to `canary`; `None`
/// when no path (and no default backend) leads to `apex`.
fn canary_spec(user: &Value, apex: &str, canary: &str) -> Option<Value> {
    let spec = &user["spec"];
    let mut out = Map::new();
    let rules: Vec<Value> = spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| {
            let paths: Vec<Value> = rule["http"]["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let backend = switched_backend(&p["backend"], apex, canary)?;
                    let mut p = p.clone();
                    p["backend"] = backend;
                    Some(p)
                })
                .collect();
            (!paths.is_empty()).then(|| {
                let mut r = rule.clone();
                r["http"] = json!({"paths": paths});
                r
            })
        })
        .collect();
    let default = switched_backend(&spec["defaultBackend"], apex, canary);
    if rules.is_empty() && default.is_none() {
        return None;
    }
    if let Some(class) = spec.get("ingressClassName").filter(|c| !c.is_null()) {
        out.insert("ingressClassName".into(), class.clone());
    }
    if let Some(default) = default {
        out.insert("defaultBackend".into(), default);
    }
    if !rules.is_empty() {
        out.insert("rules".into(), Value::Array(rules));
    }
    if let Some(tls) = spec["tls"].as_array().filter(|t| !t.is_empty()) {
        out.insert("tls".into(), Value::Array(tls.clone()));
    }
    Some(Value::Object(out))
}

/// The annotations Sluice writes for A/B testing: absent from a weighted canary Ingress.
const MATCH_ANNOTATIONS: [&str; 4] = [
    CANARY_BY_HEADER,
    CANARY_BY_HEADER_VALUE,
    CANARY_BY_HEADER_PATTERN,
    CANARY_BY_COOKIE,
];

/// The `canary-by-header*` annotations for `target`'s A/B rules; an error when an NGINX canary
/// cannot express them (admission refuses those first).
fn match_annotations(target: &RouteTarget) -> Result<Map<String, Value>, RoutingError> {
    let no = |reason: String| RoutingError::NoMatching {
        route: canary_target(target).key(),
        reason,
    };
    if let Some(what) = nginx_unsupported(&target.matches) {
        return Err(no(format!(
            "the match {what}, and an NGINX canary Ingress matches one header only; keep one \
             rule with one header, or set sluice.dev/router: gateway-api"
        )));
    }
    let header = target
        .matches
        .first()
        .and_then(|rule| rule.headers.first())
        .ok_or_else(|| {
            no(
                "no header rule is set; add one to sluice.dev/match, or set \
                sluice.dev/strategy: canary"
                    .to_string(),
            )
        })?;
    let mut out = Map::new();
    out.insert(CANARY_BY_HEADER.into(), json!(header.name));
    let key = match header.kind {
        MatchType::Exact => CANARY_BY_HEADER_VALUE,
        MatchType::RegularExpression => CANARY_BY_HEADER_PATTERN,
    };
    out.insert(key.into(), json!(header.value));
    Ok(out)
}

/// The canary Ingress `app-canary` for `split`, mirroring the user's Ingress `user`.
pub fn desired_canary_ingress(
    target: &RouteTarget,
    user: &Value,
    split: impl Into<Split>,
) -> Result<Value, RoutingError> {
    let split = split.into();
    let ct = canary_target(target);
    let spec = canary_spec(user, &target.apex, &target.canary_service).ok_or_else(|| {
        RoutingError::IngressUnusable {
            reason: ingress_problem(&target.namespace, &target.ingress, &target.apex, Some(user))
                .unwrap_or_default(),
        }
    })?;
    let mut metadata = route_metadata(&ct);
    let mut annotations = Map::new();
    annotations.insert(CANARY.into(), json!("true"));
    let weights = match split {
        Split::Weighted(weights) => weights,
        Split::Matched => {
            annotations.extend(match_annotations(target)?);
            Weights::ALL_PRIMARY
        }
    };
    annotations.insert(CANARY_WEIGHT.into(), json!(weights.canary.to_string()));
    if let Some(class) = user["metadata"]["annotations"][CLASS_ANNOTATION].as_str() {
        annotations.insert(CLASS_ANNOTATION.into(), json!(class));
    }
    metadata["annotations"] = Value::Object(annotations);
    Ok(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": metadata,
        "spec": spec,
    }))
}

/// Whether the stored canary Ingress `current` already is `desired`: owner and label, every
/// annotation Sluice writes, and the spec fields it writes.
pub fn is_up_to_date(current: &Value, desired: &Value) -> bool {
    let annotations_ok = desired["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| &current["metadata"]["annotations"][k] == v);
    let no_leftover = MATCH_ANNOTATIONS.iter().all(|k| {
        desired["metadata"]["annotations"].get(*k).is_some()
            || current["metadata"]["annotations"].get(*k).is_none()
    });
    let spec_ok = ["ingressClassName", "defaultBackend", "rules", "tls"]
        .iter()
        .all(|k| current["spec"][k] == desired["spec"][k]);
    is_owned_and_labelled(current, desired) && annotations_ok && no_leftover && spec_ok
}

/// How a stored canary Ingress splits: [`Split::Matched`] when it routes by a header with
/// weight 0, otherwise its weights ([`parse_weights`]).
pub fn parse_split(obj: &Value, target: &RouteTarget) -> Result<Split, RoutingError> {
    let weights = parse_weights(obj, target)?;
    let by_header = obj["metadata"]["annotations"][CANARY_BY_HEADER]
        .as_str()
        .is_some_and(|h| !h.trim().is_empty());
    Ok(match by_header && weights == Weights::ALL_PRIMARY {
        true => Split::Matched,
        false => Split::Weighted(weights),
    })
}

/// The weights a stored canary Ingress splits by, in percent, as NGINX reads it.
pub fn parse_weights(obj: &Value, target: &RouteTarget) -> Result<Weights, RoutingError> {
    let ct = canary_target(target);
    let bad = |reason: String| RoutingError::bad_route(KIND, &ct, reason);
    let annotations = &obj["metadata"]["annotations"];
    if annotations[CANARY] != "true" {
        return Err(bad(format!("it does not carry {CANARY}: \"true\"")));
    }
    let number = |key: &str, default: u64| -> Result<u64, RoutingError> {
        match annotations[key].as_str() {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| bad(format!("{key}: {v:?} is not a whole number"))),
        }
    };
    let total = number(CANARY_WEIGHT_TOTAL, 100)?;
    let weight = number(CANARY_WEIGHT, 0)?.min(total);
    percent_split(
        [
            (target.primary_service.as_str(), u128::from(total - weight)),
            (target.canary_service.as_str(), u128::from(weight)),
        ],
        target,
    )
    .map_err(bad)
}

/// Routes by an NGINX canary Ingress (`networking.k8s.io/v1`).
#[derive(Clone, Debug)]
pub struct NginxRouter {
    /// `Some(())` once Ingress is known to be served.
    ingresses: RouteClient<()>,
}

/// Whether the cluster serves `networking.k8s.io/v1` ingresses.
async fn discover(client: &kube::Client) -> Result<bool, RoutingError> {
    serves(client, &format!("{GROUP}/{VERSION}"), PLURAL).await
}

impl NginxRouter {
    /// A router on `client`, after discovering whether Ingress is served (not being served
    /// is not an error here: every call then reports [`RoutingError::NotServed`]).
    pub async fn new(client: kube::Client) -> Result<NginxRouter, RoutingError> {
        let served = discover(&client).await?;
        Ok(NginxRouter {
            ingresses: RouteClient::new(client, KIND, served.then_some(())),
        })
    }

    /// Whether Ingress was served when last discovered.
    pub fn cached_served(&self) -> bool {
        self.ingresses.cached().is_some()
    }

    async fn check_served(&self, target: &RouteTarget) -> Result<(), RoutingError> {
        if !self.cached_served() {
            let served = discover(self.ingresses.client()).await?;
            self.ingresses.set(served.then_some(()));
            if !served {
                return Err(RoutingError::NotServed {
                    router: RouterKind::Nginx,
                    route: canary_target(target).key(),
                });
            }
        }
        Ok(())
    }

    /// The user's Ingress `namespace/name`, as JSON; `None` when it does not exist.
    async fn user_ingress(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, RoutingError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.ingresses.client().clone(), namespace, &api_resource());
        match api.get_opt(name).await {
            Ok(obj) => {
                Ok(obj.map(|o| serde_json::to_value(o).expect("a DynamicObject serialises")))
            }
            Err(source) => Err(RoutingError::Api {
                verb: "get",
                kind: KIND.to_string(),
                route: format!("{namespace}/{name}"),
                source: Box::new(source),
            }),
        }
    }

    /// `None` when the app's traffic can be split through the Ingress `ingress` (in
    /// `namespace`, to the apex Service `apex`); otherwise why not, for phase `Blocked`:
    /// Ingress not served, the Ingress missing, or sending nothing to the apex.
    pub async fn problem(
        &self,
        namespace: &str,
        ingress: &str,
        apex: &str,
    ) -> Result<Option<String>, RoutingError> {
        if let Some(reason) = self.unserved().await? {
            return Ok(Some(reason));
        }
        let user = self.user_ingress(namespace, ingress).await?;
        Ok(ingress_problem(namespace, ingress, apex, user.as_ref()))
    }
}

impl Router for NginxRouter {
    fn kind(&self) -> &'static str {
        RouterKind::Nginx.as_str()
    }

    fn route_resource(&self) -> Option<ApiResource> {
        self.cached_served().then(api_resource)
    }

    async fn unserved(&self) -> Result<Option<String>, RoutingError> {
        if self.cached_served() {
            return Ok(None);
        }
        let served = discover(self.ingresses.client()).await?;
        self.ingresses.set(served.then_some(()));
        Ok((!served).then(|| unserved_reason(RouterKind::Nginx)))
    }

    async fn ensure(&self, target: &RouteTarget, split: Split) -> Result<(), RoutingError> {
        check_split(target, split)?;
        self.check_served(target).await?;
        let Some(user) = self
            .user_ingress(&target.namespace, &target.ingress)
            .await?
        else {
            return Err(RoutingError::IngressUnusable {
                reason: ingress_problem(&target.namespace, &target.ingress, &target.apex, None)
                    .unwrap_or_default(),
            });
        };
        let desired = desired_canary_ingress(target, &user, split)?;
        let ct = canary_target(target);
        if let Some(current) = self.ingresses.get(&ct, &api_resource()).await?
            && is_up_to_date(&current, &desired)
        {
            return Ok(());
        }
        self.ingresses.apply(&ct, &api_resource(), &desired).await
    }

    async fn remove(&self, target: &RouteTarget) -> Result<bool, RoutingError> {
        if !self.cached_served() {
            return Ok(false);
        }
        self.ingresses
            .delete_ours(&canary_target(target), &api_resource())
            .await
    }

    async fn split(&self, target: &RouteTarget) -> Result<Option<Split>, RoutingError> {
        self.check_served(target).await?;
        self.ingresses
            .get(&canary_target(target), &api_resource())
            .await?
            .map(|obj| parse_split(&obj, target))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::objects::MANAGED_BY_LABEL;

    fn mk_target() -> RouteTarget {
        crate::routing::mk_target(RouterKind::Nginx)
    }

    fn w(primary: u32, canary: u32) -> Weights {
        Weights { primary, canary }
    }

    fn backend(service: &str, port: Value) -> Value {
        json!({"service": {"name": service, "port": port}})
    }

    /// The user's Ingress `public`: host shop.example.com, `/` to the apex `storefront`,
    /// `/admin` to another Service, TLS, class nginx.
    fn user_ingress() -> Value {
        json!({
            "metadata": {"name": "public", "namespace": "shop",
                "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                "rules": [
                    {"host": "shop.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix",
                         "backend": backend("storefront", json!({"number": 80}))},
                        {"path": "/admin", "pathType": "Prefix",
                         "backend": backend("admin", json!({"number": 8080}))},
                    ]}},
                    {"host": "admin.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix",
                         "backend": backend("admin", json!({"name": "http"}))},
                    ]}},
                ],
            }
        })
    }

    /// The target with one header rule of `kind`.
    fn ab_target(kind: MatchType, name: &str, value: &str) -> RouteTarget {
        use crate::policy::values::{MatchRule, ValueMatch};
        mk_target().with_matches(&[MatchRule {
            headers: vec![ValueMatch {
                kind,
                name: name.into(),
                value: value.into(),
            }],
            query_params: vec![],
        }])
    }

    #[test]
    fn a_matched_canary_routes_by_the_header_value_with_weight_zero() {
        let t = ab_target(MatchType::Exact, "x-canary", "insider");
        let ing = desired_canary_ingress(&t, &user_ingress(), Split::Matched).unwrap();
        assert_eq!(
            ing["metadata"]["annotations"],
            json!({CANARY: "true", CANARY_WEIGHT: "0",
                CANARY_BY_HEADER: "x-canary", CANARY_BY_HEADER_VALUE: "insider"})
        );
        assert_eq!(parse_split(&ing, &t).unwrap(), Split::Matched);
        assert_eq!(parse_weights(&ing, &t).unwrap(), Weights::ALL_PRIMARY);
    }

    #[test]
    fn a_cookie_rule_becomes_a_pattern_on_the_cookie_header_not_canary_by_cookie() {
        let t = ab_target(
            MatchType::RegularExpression,
            "Cookie",
            "(^|; )beta=yes(;|$)",
        );
        let ing = desired_canary_ingress(&t, &user_ingress(), Split::Matched).unwrap();
        assert_eq!(
            ing["metadata"]["annotations"],
            json!({CANARY: "true", CANARY_WEIGHT: "0", CANARY_BY_HEADER: "Cookie",
                CANARY_BY_HEADER_PATTERN: "(^|; )beta=yes(;|$)"})
        );
    }

    #[test]
    fn rules_an_nginx_canary_cannot_express_are_refused_rather_than_written() {
        let mut t = ab_target(MatchType::Exact, "x-canary", "insider");
        t.matches.push(t.matches[0].clone());
        let err = desired_canary_ingress(&t, &user_ingress(), Split::Matched).unwrap_err();
        assert_eq!(err.metric_label(), "no_matching");
        assert!(err.to_string().contains("shop/web-canary"), "{err}");
        assert!(err.to_string().contains("has 2 rules"), "{err}");
    }

    #[test]
    fn a_leftover_header_annotation_makes_a_weighted_canary_out_of_date() {
        let t = ab_target(MatchType::Exact, "x-canary", "insider");
        let matched = desired_canary_ingress(&t, &user_ingress(), Split::Matched).unwrap();
        let all_primary =
            desired_canary_ingress(&t, &user_ingress(), Weights::ALL_PRIMARY).unwrap();
        // Same weight 0, but the stored one still routes matching requests to the canary.
        assert!(!is_up_to_date(&matched, &all_primary));
        assert!(!is_up_to_date(&all_primary, &matched));
        assert!(is_up_to_date(&matched, &matched));
        assert_eq!(
            parse_split(&all_primary, &t).unwrap(),
            Split::Weighted(Weights::ALL_PRIMARY)
        );
    }

    #[test]
    fn the_canary_ingress_mirrors_the_apex_paths_with_the_backend_switched_to_the_canary() {
        let ing = desired_canary_ingress(&mk_target(), &user_ingress(), w(90, 10)).unwrap();
        assert_eq!(ing["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(ing["kind"], "Ingress");
        assert_eq!(ing["metadata"]["name"], "web-canary");
        assert_eq!(ing["metadata"]["namespace"], "shop");
        assert_eq!(ing["metadata"]["labels"][MANAGED_BY_LABEL], "sluice");
        assert_eq!(ing["metadata"]["ownerReferences"][0]["uid"], "uid-web");
        assert_eq!(
            ing["metadata"]["annotations"],
            json!({CANARY: "true", CANARY_WEIGHT: "10"})
        );
        assert_eq!(ing["spec"]["ingressClassName"], "nginx");
        assert_eq!(ing["spec"]["tls"], user_ingress()["spec"]["tls"]);
        assert_eq!(
            ing["spec"]["rules"],
            json!([{"host": "shop.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": backend("web-canary", json!({"number": 80}))},
            ]}}])
        );
    }

    #[test]
    fn a_default_backend_to_the_apex_and_a_port_by_name_are_kept() {
        let user = json!({"spec": {
            "defaultBackend": backend("storefront", json!({"name": "http"})),
        }});
        let ing = desired_canary_ingress(&mk_target(), &user, Weights::AT_REST).unwrap();
        assert_eq!(
            ing["spec"],
            json!({"defaultBackend": backend("web-canary", json!({"name": "http"}))})
        );
        assert_eq!(ing["metadata"]["annotations"][CANARY_WEIGHT], "100");
    }

    #[test]
    fn the_legacy_class_annotation_is_copied_so_the_same_controller_serves_the_canary() {
        let mut user = user_ingress();
        user["metadata"]["annotations"][CLASS_ANNOTATION] = json!("nginx-public");
        let ing = desired_canary_ingress(&mk_target(), &user, w(50, 50)).unwrap();
        assert_eq!(
            ing["metadata"]["annotations"][CLASS_ANNOTATION],
            "nginx-public"
        );
        assert!(
            ing["metadata"]["annotations"]
                .get("nginx.ingress.kubernetes.io/rewrite-target")
                .is_none()
        );
    }

    #[test]
    fn an_ingress_with_no_path_to_the_apex_is_refused_naming_it_and_the_key() {
        let mut user = user_ingress();
        user["spec"]["rules"][0]["http"]["paths"]
            .as_array_mut()
            .unwrap()
            .remove(0);
        let err = desired_canary_ingress(&mk_target(), &user, w(90, 10)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("Ingress shop/public"), "{msg}");
        assert!(msg.contains("apex Service shop/storefront"), "{msg}");
        assert!(msg.contains("sluice.dev/ingress"), "{msg}");
        assert_eq!(err.metric_label(), "ingress");
    }

    #[test]
    fn a_missing_ingress_is_a_problem_that_names_it_and_the_key() {
        let msg = ingress_problem("shop", "public", "storefront", None).unwrap();
        assert!(msg.contains("Ingress shop/public does not exist"), "{msg}");
        assert!(msg.contains("sluice.dev/ingress"), "{msg}");
        assert_eq!(
            ingress_problem("shop", "public", "storefront", Some(&user_ingress())),
            None
        );
    }

    #[test]
    fn reads_back_what_it_writes_at_rest_and_at_every_step() {
        for weights in [w(90, 10), Weights::AT_REST, Weights::ALL_PRIMARY, w(1, 99)] {
            let ing = desired_canary_ingress(&mk_target(), &user_ingress(), weights).unwrap();
            assert_eq!(parse_weights(&ing, &mk_target()).unwrap(), weights);
        }
    }

    #[test]
    fn weights_are_read_out_of_the_weight_total_and_an_absent_weight_is_zero() {
        let t = mk_target();
        let ing = |a: Value| json!({"metadata": {"annotations": a}});
        let of_1000 =
            ing(json!({CANARY: "true", CANARY_WEIGHT: "250", CANARY_WEIGHT_TOTAL: "1000"}));
        assert_eq!(parse_weights(&of_1000, &t).unwrap(), w(75, 25));
        let absent = ing(json!({CANARY: "true"}));
        assert_eq!(parse_weights(&absent, &t).unwrap(), Weights::ALL_PRIMARY);
        let above = ing(json!({CANARY: "true", CANARY_WEIGHT: "150"}));
        assert_eq!(parse_weights(&above, &t).unwrap(), Weights::AT_REST);
    }

    #[test]
    fn an_ingress_that_is_not_a_canary_or_has_a_bad_weight_cannot_be_read() {
        let t = mk_target();
        let plain = json!({"metadata": {"annotations": {CANARY_WEIGHT: "10"}}});
        let err = parse_weights(&plain, &t).unwrap_err();
        assert_eq!(err.metric_label(), "bad_route");
        assert!(err.to_string().contains("Ingress shop/web-canary"), "{err}");
        let garbage = json!({"metadata": {"annotations": {CANARY: "true", CANARY_WEIGHT: "ten"}}});
        assert!(
            parse_weights(&garbage, &t)
                .unwrap_err()
                .to_string()
                .contains("\"ten\"")
        );
    }

    #[test]
    fn a_stored_canary_with_other_annotations_is_up_to_date_until_the_weight_moves() {
        let t = mk_target();
        let desired = desired_canary_ingress(&t, &user_ingress(), w(80, 20)).unwrap();
        let mut stored = desired.clone();
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied"] = json!("{}");
        stored["status"] = json!({"loadBalancer": {}});
        assert!(is_up_to_date(&stored, &desired));
        let moved = desired_canary_ingress(&t, &user_ingress(), w(60, 40)).unwrap();
        assert!(!is_up_to_date(&stored, &moved));
        let mut host_changed = user_ingress();
        host_changed["spec"]["rules"][0]["host"] = json!("www.example.com");
        let rehosted = desired_canary_ingress(&t, &host_changed, w(80, 20)).unwrap();
        assert!(!is_up_to_date(&stored, &rehosted));
    }
}
