//! Gateway API HTTPRoute for the mesh (GAMMA), as Linkerd serves it (REFERENCE.md "Gateway
//! API HTTPRoute for mesh").
//!
//! ```text
//!  ensure(t, w) ── served? (GET /apis/gateway.networking.k8s.io/v1) ── no ─► NotServed (Blocked)
//!                  └ yes ── GET route ── is_up_to_date? ── yes ─► no write
//!                                                      └─ no ──► SSA apply desired_httproute(t, w)
//!                                                                 └► stray ServiceProfile? ─► Warning Event
//! ```
//!
//! The route `app` is
//! `{parentRefs: [{group: "", kind: Service, name: apex, port}], rules: [{matches: [{path:
//! PathPrefix /}], backendRefs: [{name: app-primary, port, weight: P}, {name: app-canary, port,
//! weight: C}]}]}` with P + C = 100, labelled `app.kubernetes.io/managed-by: sluice` and owned
//! by `app`. The apex port is the first port of the apex Service, and the backends use the same
//! port number, which `app-primary` and `app-canary` copy from the apex.
//!
//! A/B testing ([`Split::Matched`]) writes two rules: first the same default rule with
//! `app-primary` at 100 and `app-canary` at 0, then one rule whose `matches` are the
//! `sluice.dev/match` rules (each with the default path `PathPrefix /` made explicit; the matches
//! of one HTTPRoute rule are ORed, as the A/B rules are) with `app-primary` at 0 and
//! `app-canary` at 100. Gateway API picks the most specific match whatever the rule order, and
//! a match with headers or query parameters is more specific than the bare default, so a request
//! matching an A/B rule goes to the canary and every other request to the primary. The default
//! rule comes first so that a reader of the first rule's weights (as for a weighted route) sees
//! where the general traffic goes: all to the primary.
//!
//! Choices where DESIGN.md and REFERENCE.md are silent:
//! - The default rule carries the default match (`PathPrefix /`) explicitly, the value the CRD
//!   defaults it to, so what is stored is what was written.
//! - "Equal" compares `parentRefs` and `rules` after filling in the CRD's defaults on both
//!   sides (parentRef group/kind, backendRef group/kind/weight, the default match, a header or
//!   query match's `type: Exact`), plus the
//!   managed-by label and the owner reference to `app`; fields others added elsewhere are left
//!   alone. A zero weight is written as `0`, which Gateway API allows (no traffic).
//! - Weights are read from the first rule that matches every request (no header, query or
//!   method condition, path `/` prefix): that is the rule a request without A/B headers takes.
//!   Weights are relative (`weight` defaults to 1) and are normalised to percent like SMI's.
//!   A route whose default rule sends everything to the primary while another rule sends
//!   everything to the canary reads back as [`Split::Matched`]; whether its matches are the
//!   current `match` rules is the up-to-date check's business (it compares the whole rules).
//! - Whether the API is served is discovered once and cached; while it is not served, every
//!   call discovers again, so installing the CRDs unblocks rollouts without a restart.
//! - A Linkerd ServiceProfile for the apex Service (named `apex.ns.svc.<cluster domain>`) takes
//!   precedence over every HTTPRoute for it, so the weights written here would silently move
//!   nothing. When Sluice writes the route and such a profile exists, it publishes a Warning
//!   Event `ServiceProfileOverridesRoute` on `app`, once per profile per process (a restart
//!   warns again); `sluice explain` shows the same warning. Sluice does not delete the profile:
//!   it is not Sluice's, and may carry retries and timeouts someone wants.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::{Value, json};

use super::served::{api_resource_of, serves, unserved_reason};
use super::{
    RouteClient, RouteTarget, Router, RoutingError, Split, Weights, check_split,
    is_owned_and_labelled, percent_split, route_metadata,
};
use crate::policy::values::RouterKind;

/// API group of HTTPRoute.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The one version Sluice writes.
pub const VERSION: &str = "v1";
/// Kind of the route object.
pub const KIND: &str = "HTTPRoute";
/// Plural resource name of HTTPRoute.
pub const PLURAL: &str = "httproutes";

/// API group, version and plural of Linkerd's ServiceProfile.
pub const PROFILE_GROUP_VERSION: &str = "linkerd.io/v1alpha2";
/// Kind of Linkerd's ServiceProfile.
pub const PROFILE_KIND: &str = "ServiceProfile";
/// Plural resource name of ServiceProfile.
pub const PROFILE_PLURAL: &str = "serviceprofiles";
/// Reason of the Warning Event about a ServiceProfile that overrides the route.
pub const PROFILE_EVENT_REASON: &str = "ServiceProfileOverridesRoute";

/// The HTTPRoute resource (for `Api::namespaced_with` and watches).
pub fn api_resource() -> ApiResource {
    api_resource_of(GROUP, VERSION, KIND, PLURAL)
}

/// The ServiceProfile resource.
pub fn profile_resource() -> ApiResource {
    ApiResource {
        group: "linkerd.io".to_string(),
        version: "v1alpha2".to_string(),
        api_version: PROFILE_GROUP_VERSION.to_string(),
        kind: PROFILE_KIND.to_string(),
        plural: PROFILE_PLURAL.to_string(),
    }
}

/// The HTTPRoute `target` should be for `split` (for server-side apply): one weighted rule,
/// or for [`Split::Matched`] the default rule to the primary and the A/B rule to the canary.
pub fn desired_httproute(
    target: &RouteTarget,
    split: impl Into<Split>,
) -> Result<Value, RoutingError> {
    let port = target.port.ok_or_else(|| RoutingError::NoPort {
        route: target.key(),
        apex: format!("{}/{}", target.namespace, target.apex),
    })?;
    let backend = |name: &str, weight: u32| json!({"group": "", "kind": "Service", "name": name, "port": port, "weight": weight});
    let rule = |matches: Vec<Value>, weights: Weights| {
        json!({
            "matches": matches,
            "backendRefs": [
                backend(&target.primary_service, weights.primary),
                backend(&target.canary_service, weights.canary),
            ],
        })
    };
    let rules = match split.into() {
        Split::Weighted(weights) => vec![rule(vec![default_match()], weights)],
        Split::Matched => {
            let matches = target
                .matches
                .iter()
                .map(|m| {
                    let mut m = serde_json::to_value(m).expect("a match rule serialises");
                    m["path"] = default_match()["path"].clone();
                    m
                })
                .collect();
            vec![
                rule(vec![default_match()], Weights::ALL_PRIMARY),
                rule(matches, Weights::AT_REST),
            ]
        }
    };
    Ok(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": route_metadata(target),
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": target.apex, "port": port}],
            "rules": rules,
        },
    }))
}

/// The match the CRD gives a rule without one: every request.
fn default_match() -> Value {
    json!({"path": {"type": "PathPrefix", "value": "/"}})
}

fn or_default(v: &Value, default: Value) -> Value {
    if v.is_null() { default } else { v.clone() }
}

/// A rule's matches with the CRD's defaults filled in.
fn canonical_matches(rule: &Value) -> Value {
    let matches = match rule["matches"].as_array() {
        Some(m) if !m.is_empty() => m.clone(),
        _ => vec![default_match()],
    };
    Value::Array(
        matches
            .into_iter()
            .map(|mut m| {
                let path = &m["path"];
                m["path"] = json!({
                    "type": or_default(&path["type"], json!("PathPrefix")),
                    "value": or_default(&path["value"], json!("/")),
                });
                for key in ["headers", "queryParams"] {
                    if let Some(conditions) = m.get_mut(key).and_then(Value::as_array_mut) {
                        for c in conditions {
                            c["type"] = or_default(&c["type"], json!("Exact"));
                        }
                    }
                }
                m
            })
            .collect(),
    )
}

/// `parentRefs` and `rules` of an HTTPRoute spec with the CRD's defaults filled in, so a
/// stored route and a desired one compare equal when the API server only added defaults.
pub fn canonical_spec(spec: &Value) -> Value {
    let parents: Vec<Value> = spec["parentRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut p = p.clone();
            p["group"] = or_default(&p["group"], json!(GROUP));
            p["kind"] = or_default(&p["kind"], json!("Gateway"));
            p
        })
        .collect();
    let rules: Vec<Value> = spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut r = r.clone();
            r["matches"] = canonical_matches(&r);
            let backends: Vec<Value> = r["backendRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    let mut b = b.clone();
                    b["group"] = or_default(&b["group"], json!(""));
                    b["kind"] = or_default(&b["kind"], json!("Service"));
                    b["weight"] = or_default(&b["weight"], json!(1));
                    b
                })
                .collect();
            r["backendRefs"] = Value::Array(backends);
            r
        })
        .collect();
    json!({"parentRefs": parents, "rules": rules})
}

/// Whether a (canonical) match accepts every request: `PathPrefix /` and nothing else.
fn matches_everything(m: &Value) -> bool {
    let only_path = m.as_object().is_some_and(|o| o.keys().all(|k| k == "path"));
    only_path && m["path"]["type"] == "PathPrefix" && m["path"]["value"] == "/"
}

/// Whether a (canonical) rule matches every request: the rule requests without A/B headers
/// take.
fn is_default_rule(rule: &Value) -> bool {
    rule["matches"]
        .as_array()
        .is_some_and(|m| m.iter().any(matches_everything))
}

/// The canonical rules of a stored HTTPRoute, and its first rule that matches every request.
fn default_rule(obj: &Value, target: &RouteTarget) -> Result<(Vec<Value>, Value), RoutingError> {
    let spec = canonical_spec(&obj["spec"]);
    let rules = spec["rules"].as_array().cloned().unwrap_or_default();
    let default = rules.iter().find(|r| is_default_rule(r)).cloned();
    let default = default.ok_or_else(|| {
        RoutingError::bad_route(KIND, target, "no rule matches every request".to_string())
    })?;
    Ok((rules, default))
}

/// How a stored HTTPRoute splits `target`'s traffic: the weights of the first rule that
/// matches every request, or [`Split::Matched`] when that rule sends everything to the primary
/// and another rule everything to the canary.
pub fn parse_split(obj: &Value, target: &RouteTarget) -> Result<Split, RoutingError> {
    let (rules, default) = default_rule(obj, target)?;
    let weights = rule_weights(&default, target)?;
    let to_canary = rules
        .iter()
        .filter(|r| !is_default_rule(r))
        .any(|r| rule_weights(r, target).is_ok_and(|w| w == Weights::AT_REST));
    Ok(match weights == Weights::ALL_PRIMARY && to_canary {
        true => Split::Matched,
        false => Split::Weighted(weights),
    })
}

/// The weights a stored HTTPRoute splits the requests without A/B headers by, in percent (from
/// the first rule that matches every request).
pub fn parse_weights(obj: &Value, target: &RouteTarget) -> Result<Weights, RoutingError> {
    rule_weights(&default_rule(obj, target)?.1, target)
}

/// The weights of one (canonical) rule's backends, in percent.
fn rule_weights(rule: &Value, target: &RouteTarget) -> Result<Weights, RoutingError> {
    let bad = |reason: String| RoutingError::bad_route(KIND, target, reason);
    let weighed = rule["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, b)| {
            let weight = b["weight"].as_u64().ok_or_else(|| {
                bad(format!(
                    "backendRefs[{i}].weight {} is not a whole number",
                    b["weight"]
                ))
            })?;
            let service = if b["group"] == "" && b["kind"] == "Service" {
                b["name"].as_str().unwrap_or_default()
            } else {
                ""
            };
            Ok((service, u128::from(weight) * 1000))
        })
        .collect::<Result<Vec<_>, RoutingError>>()?;
    percent_split(weighed, target).map_err(bad)
}

/// Whether the stored route `current` already is `desired` (see the module doc for "equal").
pub fn is_up_to_date(current: &Value, desired: &Value) -> bool {
    let owned = is_owned_and_labelled(current, desired);
    owned && canonical_spec(&current["spec"]) == canonical_spec(&desired["spec"])
}

/// The ServiceProfile among `profile_names` (in `namespace`) that Linkerd would apply to the
/// apex Service `apex`: the one named `apex.namespace.svc.<cluster domain>`.
pub fn stray_profile<'a>(
    apex: &str,
    namespace: &str,
    profile_names: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let prefix = format!("{apex}.{namespace}.svc.");
    profile_names.into_iter().find(|n| {
        n.strip_prefix(&prefix)
            .is_some_and(|domain| !domain.is_empty())
    })
}

/// The warning about a ServiceProfile that overrides the HTTPRoute, for the Event and
/// `sluice explain`.
pub fn profile_warning(namespace: &str, apex: &str, route: &str, profile: &str) -> String {
    format!(
        "ServiceProfile {namespace}/{profile} exists for the apex Service {namespace}/{apex}, and \
         Linkerd lets a ServiceProfile override every HTTPRoute of its Service: the weights Sluice \
         writes to HTTPRoute {namespace}/{route} move no traffic while it exists. Delete the \
         ServiceProfile (a leftover of linkerd-smi, if a TrafficSplit made it) or set \
         sluice.dev/router: smi"
    )
}

/// Names of the ServiceProfiles in `namespace`; none when Linkerd's CRD is not served.
pub async fn profile_names(
    client: &kube::Client,
    namespace: &str,
) -> Result<Vec<String>, RoutingError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &profile_resource());
    match api.list_metadata(&ListParams::default()).await {
        Ok(list) => Ok(list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(source) => Err(RoutingError::Api {
            verb: "list",
            kind: PROFILE_KIND.to_string(),
            route: namespace.to_string(),
            source: Box::new(source),
        }),
    }
}

/// Routes by Gateway API HTTPRoute (`gateway.networking.k8s.io/v1`).
#[derive(Clone, Debug)]
pub struct GatewayRouter {
    /// `Some(())` once HTTPRoute is known to be served.
    routes: RouteClient<()>,
    /// `route/profile` pairs already warned about.
    warned: Arc<Mutex<BTreeSet<String>>>,
}

impl GatewayRouter {
    /// A router on `client`, after discovering whether HTTPRoute is served. Not being served
    /// is not an error here: every call then reports [`RoutingError::NotServed`] until the
    /// CRD is installed.
    pub async fn new(client: kube::Client) -> Result<GatewayRouter, RoutingError> {
        let served = discover(&client).await?;
        Ok(GatewayRouter {
            routes: RouteClient::new(client, KIND, served.then_some(())),
            warned: Arc::default(),
        })
    }

    /// Whether HTTPRoute was served when last discovered.
    pub fn cached_served(&self) -> bool {
        self.routes.cached().is_some()
    }

    /// Whether HTTPRoute is served, discovering again when it was not.
    async fn check_served(&self) -> Result<bool, RoutingError> {
        if self.cached_served() {
            return Ok(true);
        }
        let served = discover(self.routes.client()).await?;
        self.routes.set(served.then_some(()));
        Ok(served)
    }

    async fn current(&self, target: &RouteTarget) -> Result<Option<Value>, RoutingError> {
        if !self.check_served().await? {
            return Err(RoutingError::NotServed {
                router: RouterKind::GatewayApi,
                route: target.key(),
            });
        }
        self.routes.get(target, &api_resource()).await
    }

    /// After a write: a Warning Event on `app` if a ServiceProfile overrides the route, once
    /// per profile. A failure to look or to publish is logged, never fatal: the route is
    /// written either way.
    async fn warn_about_profiles(&self, target: &RouteTarget) {
        let names = match profile_names(self.routes.client(), &target.namespace).await {
            Ok(names) => names,
            Err(err) => {
                tracing::warn!(route = %target.key(), "looking for ServiceProfiles: {err}");
                return;
            }
        };
        let Some(profile) = stray_profile(
            &target.apex,
            &target.namespace,
            names.iter().map(String::as_str),
        ) else {
            return;
        };
        let key = format!("{}/{profile}", target.key());
        if !self
            .warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key)
        {
            return;
        }
        let message = profile_warning(&target.namespace, &target.apex, &target.name, profile);
        tracing::warn!(route = %target.key(), "{message}");
        let reference = ObjectReference {
            api_version: Some(target.owner.api_version.clone()),
            kind: Some(target.owner.kind.clone()),
            name: Some(target.owner.name.clone()),
            namespace: Some(target.namespace.clone()),
            uid: Some(target.owner.uid.clone()),
            ..ObjectReference::default()
        };
        let recorder = Recorder::new(
            self.routes.client().clone(),
            Reporter {
                controller: "sluice".into(),
                instance: None,
            },
        );
        let event = Event {
            type_: EventType::Warning,
            reason: PROFILE_EVENT_REASON.into(),
            note: Some(message),
            action: "Route".into(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, &reference).await {
            tracing::warn!(route = %target.key(), "publishing event {PROFILE_EVENT_REASON}: {err}");
        }
    }
}

/// Whether the cluster serves HTTPRoute at `gateway.networking.k8s.io/v1`.
async fn discover(client: &kube::Client) -> Result<bool, RoutingError> {
    serves(client, &format!("{GROUP}/{VERSION}"), PLURAL).await
}

impl Router for GatewayRouter {
    fn kind(&self) -> &'static str {
        RouterKind::GatewayApi.as_str()
    }

    fn route_resource(&self) -> Option<ApiResource> {
        self.cached_served().then(api_resource)
    }

    async fn unserved(&self) -> Result<Option<String>, RoutingError> {
        Ok((!self.check_served().await?).then(|| unserved_reason(RouterKind::GatewayApi)))
    }

    async fn ensure(&self, target: &RouteTarget, split: Split) -> Result<(), RoutingError> {
        check_split(target, split)?;
        let desired = desired_httproute(target, split)?;
        if let Some(current) = self.current(target).await?
            && is_up_to_date(&current, &desired)
        {
            return Ok(());
        }
        self.routes.apply(target, &api_resource(), &desired).await?;
        self.warn_about_profiles(target).await;
        Ok(())
    }

    async fn remove(&self, target: &RouteTarget) -> Result<bool, RoutingError> {
        if !self.cached_served() {
            return Ok(false);
        }
        self.routes.delete_ours(target, &api_resource()).await
    }

    async fn split(&self, target: &RouteTarget) -> Result<Option<Split>, RoutingError> {
        self.current(target)
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
        crate::routing::mk_target(RouterKind::GatewayApi)
    }

    fn w(primary: u32, canary: u32) -> Weights {
        Weights { primary, canary }
    }

    fn route(rules: Value) -> Value {
        json!({"spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "storefront", "port": 80}],
            "rules": rules}})
    }

    #[test]
    fn the_route_attaches_to_the_apex_service_port_and_weighs_both_backends() {
        let r = desired_httproute(&mk_target(), w(90, 10)).unwrap();
        assert_eq!(r["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(r["kind"], "HTTPRoute");
        assert_eq!(r["metadata"]["name"], "web");
        assert_eq!(r["metadata"]["namespace"], "shop");
        assert_eq!(r["metadata"]["labels"][MANAGED_BY_LABEL], "sluice");
        assert_eq!(r["metadata"]["ownerReferences"][0]["uid"], "uid-web");
        assert_eq!(
            r["spec"]["parentRefs"],
            json!([{"group": "", "kind": "Service", "name": "storefront", "port": 80}])
        );
        assert_eq!(
            r["spec"]["rules"][0]["backendRefs"],
            json!([
                {"group": "", "kind": "Service", "name": "web-primary", "port": 80, "weight": 90},
                {"group": "", "kind": "Service", "name": "web-canary", "port": 80, "weight": 10},
            ])
        );
    }

    #[test]
    fn a_target_without_a_port_is_refused_naming_the_apex() {
        let mut t = mk_target();
        t.port = None;
        let err = desired_httproute(&t, Weights::AT_REST).unwrap_err();
        assert_eq!(err.metric_label(), "no_port");
        assert!(err.to_string().contains("shop/storefront"), "{err}");
    }

    #[test]
    fn reads_back_what_it_writes() {
        for weights in [w(90, 10), Weights::AT_REST, Weights::ALL_PRIMARY, w(1, 99)] {
            let r = desired_httproute(&mk_target(), weights).unwrap();
            assert_eq!(parse_weights(&r, &mk_target()).unwrap(), weights);
        }
    }

    /// The target with one exact header rule and one regular-expression cookie rule.
    fn ab_target() -> RouteTarget {
        use crate::policy::values::{MatchRule, MatchType, ValueMatch};
        let header = |kind, name: &str, value: &str| ValueMatch {
            kind,
            name: name.into(),
            value: value.into(),
        };
        mk_target().with_matches(&[
            MatchRule {
                headers: vec![header(MatchType::Exact, "x-canary", "insider")],
                query_params: vec![],
            },
            MatchRule {
                headers: vec![header(
                    MatchType::RegularExpression,
                    "Cookie",
                    "(^|; )beta=yes(;|$)",
                )],
                query_params: vec![],
            },
        ])
    }

    #[test]
    fn a_matched_route_sends_the_rules_to_the_canary_and_the_rest_to_the_primary() {
        let r = desired_httproute(&ab_target(), Split::Matched).unwrap();
        let rules = r["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2, "{r}");
        assert_eq!(rules[0]["matches"], json!([default_match()]));
        assert_eq!(rules[0]["backendRefs"][0]["weight"], 100);
        assert_eq!(rules[0]["backendRefs"][1]["weight"], 0);
        assert_eq!(
            rules[1]["matches"],
            json!([
                {"path": {"type": "PathPrefix", "value": "/"},
                 "headers": [{"type": "Exact", "name": "x-canary", "value": "insider"}]},
                {"path": {"type": "PathPrefix", "value": "/"},
                 "headers": [{"type": "RegularExpression", "name": "Cookie", "value": "(^|; )beta=yes(;|$)"}]},
            ])
        );
        assert_eq!(rules[1]["backendRefs"][0]["weight"], 0);
        assert_eq!(rules[1]["backendRefs"][1]["weight"], 100);
        // A reader of the first rule's weights sees where the general traffic goes.
        assert_eq!(
            parse_weights(&r, &ab_target()).unwrap(),
            Weights::ALL_PRIMARY
        );
    }

    #[test]
    fn reads_back_a_matched_route_as_matched_and_a_weighted_one_as_weighted() {
        let t = ab_target();
        let matched = desired_httproute(&t, Split::Matched).unwrap();
        assert_eq!(parse_split(&matched, &t).unwrap(), Split::Matched);
        for weights in [Weights::ALL_PRIMARY, Weights::AT_REST, w(70, 30)] {
            let r = desired_httproute(&t, weights).unwrap();
            assert_eq!(parse_split(&r, &t).unwrap(), Split::Weighted(weights));
        }
    }

    #[test]
    fn a_matched_route_is_up_to_date_only_for_the_same_rules_and_split() {
        let t = ab_target();
        let desired = desired_httproute(&t, Split::Matched).unwrap();
        // The API server fills in the header match type and the backend defaults.
        let mut stored = desired.clone();
        stored["spec"]["rules"][1]["matches"][0]["headers"][0]
            .as_object_mut()
            .unwrap()
            .remove("type");
        stored["metadata"]["resourceVersion"] = json!("7");
        assert!(is_up_to_date(&stored, &desired));
        let all_primary = desired_httproute(&t, Weights::ALL_PRIMARY).unwrap();
        assert!(!is_up_to_date(&stored, &all_primary));
        assert!(!is_up_to_date(&all_primary, &desired));
        let fewer_rules = t.clone().with_matches(&t.matches[..1]);
        let other = desired_httproute(&fewer_rules, Split::Matched).unwrap();
        assert!(!is_up_to_date(&stored, &other));
    }

    #[test]
    fn a_matched_split_without_rules_is_refused_before_any_write() {
        let err = check_split(&mk_target(), Split::Matched).unwrap_err();
        assert_eq!(err.metric_label(), "no_matching");
        assert!(err.to_string().contains("shop/web"), "{err}");
        assert!(check_split(&ab_target(), Split::Matched).is_ok());
    }

    #[test]
    fn weights_default_to_one_and_are_relative() {
        let r = route(json!([{"backendRefs": [
            {"name": "web-primary", "port": 80},
            {"name": "web-canary", "port": 80, "weight": 3},
        ]}]));
        assert_eq!(parse_weights(&r, &mk_target()).unwrap(), w(25, 75));
    }

    #[test]
    fn weights_come_from_the_rule_that_takes_unmatched_requests() {
        let r = route(json!([
            {"matches": [{"headers": [{"name": "x-canary", "value": "1"}]}],
             "backendRefs": [{"name": "web-canary", "port": 80}]},
            {"backendRefs": [{"name": "web-primary", "port": 80, "weight": 1}]},
        ]));
        assert_eq!(
            parse_weights(&r, &mk_target()).unwrap(),
            Weights::ALL_PRIMARY
        );
        let only_matched = route(json!([
            {"matches": [{"headers": [{"name": "x-canary", "value": "1"}]}],
             "backendRefs": [{"name": "web-canary", "port": 80}]},
        ]));
        let err = parse_weights(&only_matched, &mk_target()).unwrap_err();
        assert!(
            err.to_string().contains("no rule matches every request"),
            "{err}"
        );
    }

    #[test]
    fn refuses_routes_that_send_traffic_elsewhere_or_nowhere() {
        let t = mk_target();
        let elsewhere = route(json!([{"backendRefs": [
            {"name": "web-primary", "port": 80, "weight": 1},
            {"name": "other", "port": 80, "weight": 1},
        ]}]));
        let err = parse_weights(&elsewhere, &t).unwrap_err();
        assert_eq!(err.metric_label(), "bad_route");
        assert!(err.to_string().contains("\"other\" takes traffic"), "{err}");
        let nowhere = route(json!([{"backendRefs": [
            {"name": "web-primary", "port": 80, "weight": 0},
        ]}]));
        assert!(parse_weights(&nowhere, &t).is_err());
        let not_a_service = route(json!([{"backendRefs": [
            {"group": "example.com", "kind": "Bucket", "name": "web-canary", "weight": 1},
        ]}]));
        assert!(parse_weights(&not_a_service, &t).is_err());
        let fraction = route(json!([{"backendRefs": [{"name": "web-canary", "weight": 0.5}]}]));
        assert!(parse_weights(&fraction, &t).is_err());
    }

    #[test]
    fn a_stored_route_with_only_the_crd_defaults_added_is_up_to_date() {
        let t = mk_target();
        let desired = desired_httproute(&t, w(80, 20)).unwrap();
        let mut stored = desired.clone();
        stored["spec"]["rules"][0]
            .as_object_mut()
            .unwrap()
            .remove("matches");
        for b in stored["spec"]["rules"][0]["backendRefs"]
            .as_array_mut()
            .unwrap()
        {
            b.as_object_mut().unwrap().remove("group");
            b.as_object_mut().unwrap().remove("kind");
        }
        assert!(is_up_to_date(&stored, &desired));
        let moved = desired_httproute(&t, w(60, 40)).unwrap();
        assert!(!is_up_to_date(&moved, &desired));
    }

    #[test]
    fn a_route_attached_to_a_gateway_is_not_up_to_date() {
        let desired = desired_httproute(&mk_target(), w(90, 10)).unwrap();
        let mut gateway_parent = desired.clone();
        gateway_parent["spec"]["parentRefs"] = json!([{"name": "storefront"}]);
        assert!(!is_up_to_date(&gateway_parent, &desired));
    }

    #[test]
    fn the_profile_of_the_apex_is_found_whatever_the_cluster_domain() {
        let names = [
            "web.shop.svc.cluster.local",
            "storefront.other.svc.cluster.local",
            "storefront.shop.svc.corp.example",
        ];
        assert_eq!(
            stray_profile("storefront", "shop", names),
            Some("storefront.shop.svc.corp.example")
        );
        assert_eq!(stray_profile("cart", "shop", names), None);
        assert_eq!(
            stray_profile("storefront", "shop", ["storefront.shop.svc."]),
            None
        );
    }

    #[test]
    fn the_profile_warning_names_the_profile_the_route_and_what_to_do() {
        let msg = profile_warning(
            "shop",
            "storefront",
            "web",
            "storefront.shop.svc.cluster.local",
        );
        assert!(
            msg.contains("ServiceProfile shop/storefront.shop.svc.cluster.local"),
            "{msg}"
        );
        assert!(msg.contains("HTTPRoute shop/web"), "{msg}");
        assert!(msg.contains("Delete the ServiceProfile"), "{msg}");
    }
}
