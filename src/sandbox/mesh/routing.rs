//! Where a request to an apex Service goes, decided the way Linkerd's proxies decide it, as
//! pure functions over the stored routing objects.
//!
//! ```text
//! request (namespace, apex, class) ──► TrafficSplit with spec.service = apex?  (SMI, wins)
//!                                  ──► ServiceProfile apex.ns.svc.*? dstOverrides, else the apex
//!                                      (HTTPRoutes of the apex are ignored: the profile wins)
//!                                  ──► HTTPRoute with parentRef = Service apex? (first match)
//!                                  ──► else the apex Service itself
//!        backends + weights ──► Swrr (smooth weighted round-robin) ──► backend Service
//! ```
//!
//! Where it knowingly differs from Linkerd:
//! - Requests have no path, method or query: path `/` and method `GET` are assumed, so
//!   path matches other than `/` and any query-parameter match never match.
//! - Only producer routes count: an HTTPRoute whose parent Service is in another namespace
//!   (a consumer route) is ignored, since simulated clients have no namespace.
//! - A request that matches no rule, or whose rule has no usable backend, is dropped
//!   (a real proxy answers 404 / 500 on the client side, which has no inbound metrics).
//! - A TrafficSplit weight that does not parse as a quantity counts as 0.
//! - A TrafficSplit acts directly, not through the ServiceProfile linkerd-smi's adaptor would
//!   write for it; the outcome (SMI wins over HTTPRoute) is the same.
//! - Of a ServiceProfile only `dstOverrides` is honoured (its routes, retries and timeouts
//!   are not simulated); an authority is read as `service.namespace.svc...[:port]`, and one
//!   that is not a Service of the cluster is skipped.

use std::collections::BTreeMap;

use serde_json::Value;

use regex::Regex;

/// A Service as routing needs it: its selector (`None` when it has none).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceInfo {
    pub selector: Option<BTreeMap<String, String>>,
}

/// One weighted destination Service.
#[derive(Clone, Debug, PartialEq)]
pub struct Backend {
    pub namespace: String,
    pub service: String,
    pub weight: f64,
}

/// A TrafficSplit, reduced to its apex and weighted backends.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub namespace: String,
    pub name: String,
    pub apex: String,
    pub backends: Vec<Backend>,
}

/// A Linkerd ServiceProfile, reduced to the Service it applies to and its `dstOverrides`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceProfile {
    pub namespace: String,
    /// The profile's name, `service.namespace.svc.<cluster domain>`.
    pub name: String,
    pub dst_overrides: Vec<Backend>,
}

impl ServiceProfile {
    /// Whether Linkerd applies this profile to Service `service` in `namespace`.
    pub fn applies_to(&self, namespace: &str, service: &str) -> bool {
        self.namespace == namespace
            && crate::routing::gateway::stray_profile(service, namespace, [self.name.as_str()])
                .is_some()
    }
}

/// Reads a ServiceProfile's `spec`.
pub fn parse_profile(namespace: &str, name: &str, spec: &Value) -> ServiceProfile {
    let dst_overrides = items(spec, "dstOverrides")
        .filter_map(|o| {
            let authority = str_at(o, "authority")?;
            let host = authority.split(':').next().unwrap_or(authority);
            let mut labels = host.split('.');
            let (service, ns, svc) = (labels.next()?, labels.next()?, labels.next()?);
            (svc == "svc").then(|| Backend {
                namespace: ns.to_string(),
                service: service.to_string(),
                weight: o.get("weight").map_or(0.0, parse_weight),
            })
        })
        .collect();
    ServiceProfile {
        namespace: namespace.into(),
        name: name.into(),
        dst_overrides,
    }
}

/// An HTTPRoute's attachment to Services and its rules.
#[derive(Clone, Debug)]
pub struct HttpRoute {
    pub namespace: String,
    pub name: String,
    /// RFC 3339 creation time, for Gateway API's tie-break (oldest route first).
    pub created: String,
    /// `(namespace, name)` of every parent that is a core Service.
    pub parents: Vec<(String, String)>,
    pub rules: Vec<Rule>,
}

/// One HTTPRoute rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Empty means "match everything" (an implicit `PathPrefix /`).
    pub matches: Vec<RouteMatch>,
    pub backends: Vec<Backend>,
}

/// One entry of `rules[].matches[]`: every present condition must hold.
#[derive(Clone, Debug, Default)]
pub struct RouteMatch {
    pub path: Option<PathMatch>,
    pub headers: Vec<HeaderMatch>,
    pub has_query_params: bool,
    pub method: Option<String>,
}

/// `matches[].path`.
#[derive(Clone, Debug, PartialEq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// `matches[].headers[]`: the name is lower-cased; a value pattern that cannot be compiled
/// never matches.
#[derive(Clone, Debug)]
pub struct HeaderMatch {
    pub name: String,
    pub value: HeaderValue,
}

#[derive(Clone, Debug)]
pub enum HeaderValue {
    Exact(String),
    Regex(Option<Regex>),
}

/// The headers a simulated request carries (lower-case names), cookies already folded into
/// a `cookie` header.
pub type Headers = BTreeMap<String, String>;

/// Where one request goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Pick one of these; `route` names the routing state (for the round-robin memory).
    Backends {
        route: String,
        backends: Vec<Backend>,
    },
    /// A route is attached but nothing takes the request.
    Dropped,
}

/// Every routing object of the cluster, as last seen.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    pub services: BTreeMap<(String, String), ServiceInfo>,
    pub splits: Vec<Split>,
    pub profiles: Vec<ServiceProfile>,
    pub http_routes: Vec<HttpRoute>,
    /// Ingresses, for traffic that enters through one ([`super::ingress`]).
    pub ingresses: Vec<super::ingress::IngressRoute>,
}

/// A problem with a stored routing object (the object is skipped).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error(
        "{kind} {namespace}/{name} has no {field}; the mesh simulator ignores it until it does"
    )]
    Missing {
        kind: &'static str,
        namespace: String,
        name: String,
        field: &'static str,
    },
}

/// Parses a Kubernetes quantity (`1`, `500m`, `1.5k`, `2Ki`, `1e3`) into a number.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let base: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let v = base * factor;
    v.is_finite().then_some(v)
}

/// A TrafficSplit weight: an integer (v1alpha2) or an int-or-string quantity (v1alpha1).
pub fn parse_weight(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => parse_quantity(s).unwrap_or(0.0),
        _ => 0.0,
    }
    .max(0.0)
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// Reads a TrafficSplit's `spec` (any served version).
pub fn parse_split(namespace: &str, name: &str, spec: &Value) -> Result<Split, RouteError> {
    let apex = str_at(spec, "service").ok_or_else(|| RouteError::Missing {
        kind: "TrafficSplit",
        namespace: namespace.into(),
        name: name.into(),
        field: "spec.service",
    })?;
    let backends = items(spec, "backends")
        .filter_map(|b| {
            Some(Backend {
                namespace: namespace.to_string(),
                service: str_at(b, "service")?.to_string(),
                weight: b.get("weight").map_or(0.0, parse_weight),
            })
        })
        .collect();
    Ok(Split {
        namespace: namespace.into(),
        name: name.into(),
        apex: apex.into(),
        backends,
    })
}

/// Whether a reference's `group` names the core group. A parentRef's group defaults to the
/// Gateway API group (so it must be written), a backendRef's to the core group; like
/// Linkerd, `core` is accepted for `""`.
fn is_core_group(group: Option<&str>, absent_means_core: bool) -> bool {
    group.map_or(absent_means_core, |g| g.is_empty() || g == "core")
}

/// Reads an HTTPRoute's `spec`; only Service parents and Service backends are kept.
pub fn parse_http_route(namespace: &str, name: &str, created: &str, spec: &Value) -> HttpRoute {
    let parents = items(spec, "parentRefs")
        .filter(|p| {
            is_core_group(str_at(p, "group"), false) && str_at(p, "kind") == Some("Service")
        })
        .filter_map(|p| {
            let ns = str_at(p, "namespace").unwrap_or(namespace);
            Some((ns.to_string(), str_at(p, "name")?.to_string()))
        })
        .collect();
    let rules = items(spec, "rules")
        .map(|r| Rule {
            matches: items(r, "matches").map(parse_match).collect(),
            backends: items(r, "backendRefs")
                .filter(|b| {
                    is_core_group(str_at(b, "group"), true)
                        && str_at(b, "kind").unwrap_or("Service") == "Service"
                })
                .filter_map(|b| {
                    Some(Backend {
                        namespace: str_at(b, "namespace").unwrap_or(namespace).to_string(),
                        service: str_at(b, "name")?.to_string(),
                        weight: b
                            .get("weight")
                            .and_then(Value::as_f64)
                            .unwrap_or(1.0)
                            .max(0.0),
                    })
                })
                .collect(),
        })
        .collect();
    HttpRoute {
        namespace: namespace.into(),
        name: name.into(),
        created: created.into(),
        parents,
        rules,
    }
}

fn parse_match(m: &Value) -> RouteMatch {
    let path = m.get("path").map(|p| {
        let value = str_at(p, "value").unwrap_or("/").to_string();
        match str_at(p, "type").unwrap_or("PathPrefix") {
            "Exact" => PathMatch::Exact(value),
            "RegularExpression" => PathMatch::Regex(value),
            _ => PathMatch::Prefix(value),
        }
    });
    let headers = items(m, "headers")
        .filter_map(|h| {
            let name = str_at(h, "name")?.to_ascii_lowercase();
            let value = str_at(h, "value")?;
            let value = match str_at(h, "type").unwrap_or("Exact") {
                "RegularExpression" => HeaderValue::Regex(Regex::new(value).ok()),
                _ => HeaderValue::Exact(value.to_string()),
            };
            Some(HeaderMatch { name, value })
        })
        .collect();
    RouteMatch {
        path,
        headers,
        has_query_params: m
            .get("queryParams")
            .and_then(Value::as_array)
            .is_some_and(|q| !q.is_empty()),
        method: str_at(m, "method").map(str::to_string),
    }
}

const REQUEST_PATH: &str = "/";
const REQUEST_METHOD: &str = "GET";

impl RouteMatch {
    /// Whether a request with `headers` (path `/`, method GET, no query) matches.
    pub fn matches(&self, headers: &Headers) -> bool {
        let path_ok = match &self.path {
            None => true,
            Some(PathMatch::Exact(p)) => p == REQUEST_PATH,
            Some(PathMatch::Prefix(p)) => p.trim_end_matches('/').is_empty(),
            Some(PathMatch::Regex(p)) => {
                Regex::new(&format!("^(?:{p})$")).is_ok_and(|re| re.is_match(REQUEST_PATH))
            }
        };
        let method_ok = self.method.as_deref().is_none_or(|m| m == REQUEST_METHOD);
        let headers_ok = self.headers.iter().all(|h| {
            headers.get(&h.name).is_some_and(|v| match &h.value {
                HeaderValue::Exact(want) => v == want,
                HeaderValue::Regex(re) => re.as_ref().is_some_and(|re| re.is_match(v)),
            })
        });
        path_ok && method_ok && headers_ok && !self.has_query_params
    }

    /// Gateway API precedence: exact path, longer prefix, method, more headers, more query
    /// parameters (bigger is more specific).
    fn specificity(&self) -> (u8, usize, bool, usize, bool) {
        let (exact, len) = match &self.path {
            Some(PathMatch::Exact(p)) => (1, p.len()),
            Some(PathMatch::Prefix(p)) => (0, p.len()),
            Some(PathMatch::Regex(_)) => (0, 0),
            None => (0, 1),
        };
        (
            exact,
            len,
            self.method.is_some(),
            self.headers.len(),
            self.has_query_params,
        )
    }
}

impl RouteTable {
    /// Where a request of `headers` sent to Service `apex` in `namespace` goes.
    pub fn resolve(&self, namespace: &str, apex: &str, headers: &Headers) -> Decision {
        let split = self
            .splits
            .iter()
            .filter(|s| s.namespace == namespace && s.apex == apex)
            .min_by(|a, b| a.name.cmp(&b.name));
        if let Some(split) = split {
            return Decision::Backends {
                route: format!("trafficsplit/{}", split.name),
                backends: split.backends.clone(),
            };
        }
        let apex_itself = || Decision::Backends {
            route: "service".into(),
            backends: vec![Backend {
                namespace: namespace.into(),
                service: apex.into(),
                weight: 1.0,
            }],
        };
        let profile = self
            .profiles
            .iter()
            .filter(|p| p.applies_to(namespace, apex))
            .min_by(|a, b| a.name.cmp(&b.name));
        if let Some(profile) = profile {
            if profile.dst_overrides.is_empty() {
                return apex_itself();
            }
            return Decision::Backends {
                route: format!("serviceprofile/{}", profile.name),
                backends: profile.dst_overrides.clone(),
            };
        }
        let parent = (namespace.to_string(), apex.to_string());
        let attached: Vec<&HttpRoute> = self
            .http_routes
            .iter()
            .filter(|r| r.namespace == namespace && r.parents.contains(&parent))
            .collect();
        if attached.is_empty() {
            return apex_itself();
        }
        // Every (route, rule, match) that accepts the request, most specific first, then the
        // oldest route, then by name, then in rule order.
        let implicit = RouteMatch::default();
        let mut candidates: Vec<(&HttpRoute, usize, &RouteMatch)> = Vec::new();
        for route in attached {
            for (i, rule) in route.rules.iter().enumerate() {
                if rule.matches.is_empty() {
                    candidates.push((route, i, &implicit));
                }
                for m in rule.matches.iter().filter(|m| m.matches(headers)) {
                    candidates.push((route, i, m));
                }
            }
        }
        let best = candidates.into_iter().min_by(|a, b| {
            b.2.specificity()
                .cmp(&a.2.specificity())
                .then_with(|| a.0.created.cmp(&b.0.created))
                .then_with(|| a.0.name.cmp(&b.0.name))
                .then_with(|| a.1.cmp(&b.1))
        });
        match best {
            Some((route, i, _)) => Decision::Backends {
                route: format!("httproute/{}/{}", route.name, i),
                backends: route.rules[i].backends.clone(),
            },
            None => Decision::Dropped,
        }
    }

    /// The selector of Service `name` in `namespace`, if it exists and has a non-empty one.
    pub fn selector(&self, namespace: &str, name: &str) -> Option<&BTreeMap<String, String>> {
        self.services
            .get(&(namespace.to_string(), name.to_string()))
            .and_then(|s| s.selector.as_ref())
            .filter(|s| !s.is_empty())
    }
}

/// Smooth weighted round-robin (nginx's): over any window the picks follow the weights to
/// within one, deterministically.
#[derive(Clone, Debug, Default)]
pub struct Swrr {
    current: BTreeMap<String, f64>,
}

impl Swrr {
    /// Picks one of `(key, weight)`; `None` when every weight is zero.
    pub fn pick<'a>(&mut self, items: &[(&'a str, f64)]) -> Option<&'a str> {
        let total: f64 = items.iter().map(|(_, w)| w.max(0.0)).sum();
        if total <= 0.0 {
            return None;
        }
        self.current
            .retain(|k, _| items.iter().any(|(i, _)| i == k));
        let mut best: Option<(&'a str, f64)> = None;
        for (key, weight) in items {
            let c = self.current.entry((*key).to_string()).or_insert(0.0);
            *c += weight.max(0.0);
            if best.is_none_or(|(_, b)| *c > b) {
                best = Some((key, *c));
            }
        }
        let (key, _) = best?;
        if let Some(c) = self.current.get_mut(key) {
            *c -= total;
        }
        Some(key)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;

    /// Request headers from `(name, value)` pairs.
    pub(crate) fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `(service, weight)` of a decision's backends; none when dropped.
    pub(crate) fn backends(d: &Decision) -> Vec<(String, f64)> {
        match d {
            Decision::Backends { backends, .. } => backends
                .iter()
                .map(|b| (b.service.clone(), b.weight))
                .collect(),
            Decision::Dropped => Vec::new(),
        }
    }

    fn mk_route(name: &str, created: &str, spec: Value) -> HttpRoute {
        parse_http_route("ns", name, created, &spec)
    }

    #[test]
    fn smooth_round_robin_gives_90_10_within_every_ten_picks() {
        let mut swrr = Swrr::default();
        let items = [("primary", 90.0), ("canary", 10.0)];
        let picks: Vec<&str> = (0..1000)
            .map(|_| swrr.pick(&items).unwrap_or("none"))
            .collect();
        for window in picks.chunks(10) {
            assert_eq!(window.iter().filter(|p| **p == "canary").count(), 1);
        }
        // Any window of 100 consecutive picks is within one of the weights.
        for start in 0..900 {
            let canary = picks[start..start + 100]
                .iter()
                .filter(|p| **p == "canary")
                .count();
            assert!((9..=11).contains(&canary), "window at {start}: {canary}");
        }
    }

    #[test]
    fn smooth_round_robin_never_picks_a_zero_weight() {
        let mut swrr = Swrr::default();
        let items = [("a", 0.0), ("b", 3.0)];
        assert!((0..50).all(|_| swrr.pick(&items) == Some("b")));
        assert_eq!(swrr.pick(&[("a", 0.0)]), None);
        assert_eq!(swrr.pick(&[]), None);
    }

    #[test]
    fn int_or_string_weights_parse_as_quantities() {
        assert_eq!(parse_weight(&json!(90)), 90.0);
        assert_eq!(parse_weight(&json!("500m")), 0.5);
        assert_eq!(parse_weight(&json!("1")), 1.0);
        assert_eq!(parse_weight(&json!("1k")), 1000.0);
        assert_eq!(parse_weight(&json!("2Ki")), 2048.0);
        assert_eq!(parse_weight(&json!("1e2")), 100.0);
        assert_eq!(parse_weight(&json!("1.5")), 1.5);
        assert_eq!(parse_weight(&json!("ninety")), 0.0);
        assert_eq!(parse_weight(&json!(-5)), 0.0);
    }

    #[test]
    fn a_v1alpha1_split_weighs_its_backends_relatively() {
        let spec = json!({"service": "app", "backends": [
            {"service": "app-primary", "weight": "900m"},
            {"service": "app-canary", "weight": "100m"}]});
        let split = parse_split("ns", "app", &spec).expect("valid split");
        let table = RouteTable {
            splits: vec![split],
            ..Default::default()
        };
        let d = table.resolve("ns", "app", &Headers::new());
        assert_eq!(
            backends(&d),
            [("app-primary".into(), 0.9), ("app-canary".into(), 0.1)]
        );
    }

    #[test]
    fn a_split_without_an_apex_is_refused_with_its_name() {
        let err = parse_split("ns", "broken", &json!({"backends": []})).expect_err("no apex");
        assert!(err.to_string().contains("ns/broken"), "{err}");
    }

    fn ab_route() -> Value {
        json!({
            "parentRefs": [{"group": "", "kind": "Service", "name": "app", "port": 80}],
            "rules": [
                {"matches": [{"headers": [{"name": "X-Canary", "value": "always"}]},
                             {"headers": [{"name": "cookie", "type": "RegularExpression",
                                           "value": "(^|;\\s*)canary=always(;|$)"}]}],
                 "backendRefs": [{"name": "app-canary", "port": 80}]},
                {"backendRefs": [{"name": "app-primary", "port": 80, "weight": 100},
                                 {"name": "app-canary", "port": 80, "weight": 0}]}
            ]
        })
    }

    #[test]
    fn an_httproute_sends_requests_matching_a_header_to_its_rule() {
        let table = RouteTable {
            http_routes: vec![mk_route("app", "2026-01-01T00:00:00Z", ab_route())],
            ..Default::default()
        };
        let canary = table.resolve("ns", "app", &headers(&[("x-canary", "always")]));
        assert_eq!(backends(&canary), [("app-canary".into(), 1.0)]);
        let cookie = table.resolve("ns", "app", &headers(&[("cookie", "a=1; canary=always")]));
        assert_eq!(backends(&cookie), [("app-canary".into(), 1.0)]);
        let other = table.resolve("ns", "app", &headers(&[("x-canary", "never")]));
        assert_eq!(
            backends(&other),
            [("app-primary".into(), 100.0), ("app-canary".into(), 0.0)]
        );
    }

    #[test]
    fn a_trafficsplit_takes_precedence_over_an_httproute() {
        let split = parse_split(
            "ns",
            "app",
            &json!({"service": "app", "backends": [
            {"service": "app-primary", "weight": 1}]}),
        )
        .expect("valid split");
        let table = RouteTable {
            splits: vec![split],
            http_routes: vec![mk_route("app", "2026-01-01T00:00:00Z", ab_route())],
            ..Default::default()
        };
        let d = table.resolve("ns", "app", &headers(&[("x-canary", "always")]));
        assert_eq!(backends(&d), [("app-primary".into(), 1.0)]);
    }

    fn weighted_route() -> Value {
        json!({"parentRefs": [{"group": "", "kind": "Service", "name": "app", "port": 9898}],
            "rules": [{"backendRefs": [
                {"name": "app-primary", "port": 9898, "weight": 0},
                {"name": "app-canary", "port": 9898, "weight": 100}]}]})
    }

    #[test]
    fn an_httproute_whose_parent_is_the_apex_splits_its_traffic_by_weight() {
        let table = RouteTable {
            http_routes: vec![mk_route("app", "2026-01-01T00:00:00Z", weighted_route())],
            ..Default::default()
        };
        let d = table.resolve("ns", "app", &Headers::new());
        assert_eq!(
            backends(&d),
            [("app-primary".into(), 0.0), ("app-canary".into(), 100.0)]
        );
    }

    #[test]
    fn a_serviceprofile_of_the_apex_silently_overrides_its_httproutes() {
        let bare = parse_profile("ns", "app.ns.svc.cluster.local", &json!({"routes": []}));
        let table = RouteTable {
            profiles: vec![bare],
            http_routes: vec![mk_route("app", "2026-01-01T00:00:00Z", weighted_route())],
            ..Default::default()
        };
        assert_eq!(
            backends(&table.resolve("ns", "app", &Headers::new())),
            [("app".into(), 1.0)]
        );
        let overrides = parse_profile(
            "ns",
            "app.ns.svc.cluster.local",
            &json!({"dstOverrides": [
                {"authority": "app-primary.ns.svc.cluster.local:9898", "weight": 90},
                {"authority": "app-canary.ns.svc.cluster.local:9898", "weight": "10"},
                {"authority": "example.com", "weight": 1}]}),
        );
        let table = RouteTable {
            profiles: vec![overrides],
            http_routes: vec![mk_route("app", "2026-01-01T00:00:00Z", weighted_route())],
            ..Default::default()
        };
        assert_eq!(
            backends(&table.resolve("ns", "app", &Headers::new())),
            [("app-primary".into(), 90.0), ("app-canary".into(), 10.0)]
        );
    }

    #[test]
    fn a_serviceprofile_of_another_service_changes_nothing() {
        let other = parse_profile("ns", "app-canary.ns.svc.cluster.local", &json!({}));
        let table = RouteTable {
            profiles: vec![other],
            http_routes: vec![mk_route("app", "2026-01-01T00:00:00Z", weighted_route())],
            ..Default::default()
        };
        assert_eq!(
            backends(&table.resolve("ns", "app", &Headers::new())).len(),
            2
        );
    }

    #[test]
    fn without_a_route_the_apex_service_takes_everything() {
        let table = RouteTable::default();
        let d = table.resolve("ns", "app", &Headers::new());
        assert_eq!(backends(&d), [("app".into(), 1.0)]);
    }

    #[test]
    fn routes_for_other_parents_kinds_or_namespaces_do_not_apply() {
        let gateway_parent = json!({"parentRefs": [{"name": "app"}, {"kind": "Service", "name": "app"}],
            "rules": [{"backendRefs": [{"name": "x"}]}]});
        let table = RouteTable {
            http_routes: vec![mk_route("gw", "2026-01-01T00:00:00Z", gateway_parent)],
            ..Default::default()
        };
        assert_eq!(
            backends(&table.resolve("ns", "app", &Headers::new())),
            [("app".into(), 1.0)]
        );
        assert_eq!(
            backends(&table.resolve("other", "app", &Headers::new())),
            [("app".into(), 1.0)]
        );
    }

    #[test]
    fn a_parent_in_the_core_group_spelled_core_is_a_service_parent() {
        let route = mk_route(
            "app",
            "",
            json!({
            "parentRefs": [{"group": "core", "kind": "Service", "name": "app", "namespace": "ns"}],
            "rules": [{"backendRefs": [{"group": "core", "kind": "Service", "name": "a"}]}]}),
        );
        assert_eq!(route.parents, [("ns".to_string(), "app".to_string())]);
        assert_eq!(route.rules[0].backends.len(), 1);
    }

    #[test]
    fn a_request_no_rule_matches_is_dropped() {
        let spec = json!({"parentRefs": [{"group": "", "kind": "Service", "name": "app"}],
            "rules": [{"matches": [{"headers": [{"name": "x-team", "value": "a"}]}],
                       "backendRefs": [{"name": "app-a"}]}]});
        let table = RouteTable {
            http_routes: vec![mk_route("app", "2026-01-01T00:00:00Z", spec)],
            ..Default::default()
        };
        assert_eq!(
            table.resolve("ns", "app", &Headers::new()),
            Decision::Dropped
        );
        let d = table.resolve("ns", "app", &headers(&[("x-team", "a")]));
        assert_eq!(backends(&d), [("app-a".into(), 1.0)]);
    }

    #[test]
    fn the_more_specific_match_wins_across_routes_then_the_older_route() {
        let catch_all = json!({"parentRefs": [{"group": "", "kind": "Service", "name": "app"}],
            "rules": [{"backendRefs": [{"name": "app-primary"}]}]});
        let by_header = json!({"parentRefs": [{"group": "", "kind": "Service", "name": "app"}],
            "rules": [{"matches": [{"headers": [{"name": "x-canary", "value": "1"}]}],
                       "backendRefs": [{"name": "app-canary"}]}]});
        let table = RouteTable {
            http_routes: vec![
                mk_route("a-catch-all", "2026-01-01T00:00:00Z", catch_all.clone()),
                mk_route("b-header", "2026-01-02T00:00:00Z", by_header),
                mk_route(
                    "c-newer-catch-all",
                    "2026-01-03T00:00:00Z",
                    json!({
                    "parentRefs": [{"group": "", "kind": "Service", "name": "app"}],
                    "rules": [{"backendRefs": [{"name": "elsewhere"}]}]}),
                ),
            ],
            ..Default::default()
        };
        let canary = table.resolve("ns", "app", &headers(&[("x-canary", "1")]));
        assert_eq!(backends(&canary), [("app-canary".into(), 1.0)]);
        let rest = table.resolve("ns", "app", &Headers::new());
        assert_eq!(backends(&rest), [("app-primary".into(), 1.0)]);
    }

    #[test]
    fn matches_on_paths_methods_and_queries_follow_a_get_of_slash() {
        let m = |v: Value| parse_match(&v).matches(&Headers::new());
        assert!(m(json!({"path": {"type": "PathPrefix", "value": "/"}})));
        assert!(!m(json!({"path": {"type": "PathPrefix", "value": "/api"}})));
        assert!(m(json!({"path": {"type": "Exact", "value": "/"}})));
        assert!(m(json!({"method": "GET"})));
        assert!(!m(json!({"method": "POST"})));
        assert!(!m(json!({"queryParams": [{"name": "a", "value": "b"}]})));
    }

    #[test]
    fn a_backend_weight_defaults_to_one_and_non_services_are_skipped() {
        let route = mk_route(
            "app",
            "",
            json!({
            "parentRefs": [{"group": "", "kind": "Service", "name": "app"}],
            "rules": [{"backendRefs": [{"name": "a"}, {"name": "b", "weight": 3},
                {"group": "example.com", "kind": "Bucket", "name": "c"}]}]}),
        );
        let w: Vec<(String, f64)> = route.rules[0]
            .backends
            .iter()
            .map(|b| (b.service.clone(), b.weight))
            .collect();
        assert_eq!(w, [("a".into(), 1.0), ("b".into(), 3.0)]);
    }
}
