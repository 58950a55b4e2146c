//! Where a request that enters through an Ingress goes, decided the way ingress-nginx decides
//! it, as pure functions over the stored Ingresses (`networking.k8s.io/v1`).
//!
//! ```text
//! request via Ingress `name` ──► its host (first rule's), path `/` ──► main backend Service
//!    canary Ingress (`nginx.ingress.kubernetes.io/canary: "true"`) for the same host and path?
//!      no  ──► main backend
//!      yes ──► canary-by-header: header = canary-by-header-value (if set) ─► canary
//!                                        ~ canary-by-header-pattern (if set, no value) ─► canary
//!                                        = always / never (if neither is set) ─► canary / main
//!              canary-by-cookie: cookie  = always / never ─► canary / main
//!              else canary-weight out of canary-weight-total (default 100), by Swrr
//! ```
//!
//! The precedence (header, then cookie, then weight) and the meaning of each annotation are
//! ingress-nginx's. Where it knowingly differs from ingress-nginx:
//! - Requests have a host (the first rule's host of the Ingress the load enters through, or
//!   none) and path `/` only; a path rule other than `/` (Prefix, Exact or
//!   ImplementationSpecific) never matches, and the Ingress's `defaultBackend` takes what no
//!   rule does.
//! - The chosen Service's READY pods answer directly, as ingress-nginx sends to endpoints (no
//!   `service-upstream`): TrafficSplits and HTTPRoutes of that Service are not applied.
//! - `canary-by-header-pattern` is searched for in the header value (unanchored, as ingress-nginx's
//!   `ngx.re.match`) with Rust's `regex` rather than PCRE; a pattern that does not compile
//!   matches nothing.
//! - Session affinity and `canary-weight` on anything but the first matching canary (by name)
//!   are not simulated.

use serde_json::Value;

use super::routing::{Backend, Decision, Headers, RouteTable};

/// The annotations of a canary Ingress.
pub use crate::routing::nginx::{
    CANARY, CANARY_BY_COOKIE, CANARY_BY_HEADER, CANARY_BY_HEADER_PATTERN, CANARY_BY_HEADER_VALUE,
    CANARY_WEIGHT, CANARY_WEIGHT_TOTAL,
};

/// An Ingress's canary rules, from its annotations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CanaryRules {
    /// `canary-weight` (0 when absent or not a number).
    pub weight: f64,
    /// `canary-weight-total` (100 when absent).
    pub total: f64,
    /// `canary-by-header`, lower-cased.
    pub by_header: Option<String>,
    /// `canary-by-header-value`.
    pub by_header_value: Option<String>,
    /// `canary-by-header-pattern` (used when no value is set).
    pub by_header_pattern: Option<String>,
    /// `canary-by-cookie`.
    pub by_cookie: Option<String>,
}

/// One `rules[].http.paths[]` entry, reduced to its path and backend Service.
#[derive(Clone, Debug, PartialEq)]
pub struct IngressPath {
    pub path: String,
    pub service: String,
}

/// An Ingress as routing needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct IngressRoute {
    pub namespace: String,
    pub name: String,
    /// `Some` when it carries `nginx.ingress.kubernetes.io/canary: "true"`.
    pub canary: Option<CanaryRules>,
    /// `(host, paths)` of every rule (`None`: any host).
    pub rules: Vec<(Option<String>, Vec<IngressPath>)>,
    /// `spec.defaultBackend.service.name`.
    pub default_backend: Option<String>,
}

fn annotation<'a>(metadata: &'a Value, key: &str) -> Option<&'a str> {
    metadata["annotations"][key].as_str()
}

/// Reads an Ingress from its `metadata` and `spec`.
pub fn parse_ingress(namespace: &str, name: &str, metadata: &Value, spec: &Value) -> IngressRoute {
    let number = |key: &str| annotation(metadata, key).and_then(|v| v.trim().parse::<f64>().ok());
    let canary = (annotation(metadata, CANARY) == Some("true")).then(|| CanaryRules {
        weight: number(CANARY_WEIGHT).unwrap_or(0.0).max(0.0),
        total: number(CANARY_WEIGHT_TOTAL)
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0),
        by_header: annotation(metadata, CANARY_BY_HEADER).map(str::to_ascii_lowercase),
        by_header_value: annotation(metadata, CANARY_BY_HEADER_VALUE)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        by_header_pattern: annotation(metadata, CANARY_BY_HEADER_PATTERN)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        by_cookie: annotation(metadata, CANARY_BY_COOKIE).map(str::to_string),
    });
    let service = |backend: &Value| backend["service"]["name"].as_str().map(str::to_string);
    let rules = spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let paths = r["http"]["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some(IngressPath {
                        path: p["path"].as_str().unwrap_or("/").to_string(),
                        service: service(&p["backend"])?,
                    })
                })
                .collect();
            (r["host"].as_str().map(str::to_string), paths)
        })
        .collect();
    IngressRoute {
        namespace: namespace.into(),
        name: name.into(),
        canary,
        rules,
        default_backend: service(&spec["defaultBackend"]),
    }
}

impl IngressRoute {
    /// The host requests entering through this Ingress carry: its first rule's.
    pub fn request_host(&self) -> Option<&str> {
        self.rules.first().and_then(|(h, _)| h.as_deref())
    }

    /// The Service a request to `host`, path `/`, reaches through this Ingress.
    pub fn backend_for(&self, host: Option<&str>) -> Option<&str> {
        self.rules
            .iter()
            .filter(|(h, _)| h.is_none() || h.as_deref() == host)
            .flat_map(|(_, paths)| paths)
            .find(|p| p.path.trim_end_matches('/').is_empty())
            .map(|p| p.service.as_str())
            .or(self.default_backend.as_deref())
    }
}

/// The value of cookie `name` in a `cookie` header.
fn cookie<'a>(jar: &'a str, name: &str) -> Option<&'a str> {
    jar.split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl CanaryRules {
    /// Whether a request with `headers` goes to the canary (`Some(true)`), to the main backend
    /// (`Some(false)`), or by weight (`None`): header, then cookie, as ingress-nginx orders them.
    pub fn by_request(&self, headers: &Headers) -> Option<bool> {
        if let Some(value) = self.by_header.as_ref().and_then(|h| headers.get(h)) {
            match (&self.by_header_value, &self.by_header_pattern) {
                (Some(want), _) if want == value => return Some(true),
                (Some(_), _) => {}
                (None, Some(pattern)) => {
                    if regex::Regex::new(pattern).is_ok_and(|re| re.is_match(value)) {
                        return Some(true);
                    }
                }
                (None, None) if value == "always" => return Some(true),
                (None, None) if value == "never" => return Some(false),
                (None, None) => {}
            }
        }
        let jar = headers.get("cookie").map(String::as_str).unwrap_or("");
        match self.by_cookie.as_deref().and_then(|c| cookie(jar, c)) {
            Some("always") => Some(true),
            Some("never") => Some(false),
            _ => None,
        }
    }
}

impl RouteTable {
    /// Where a request of `headers` that enters through Ingress `name` in `namespace` goes.
    pub fn resolve_ingress(&self, namespace: &str, name: &str, headers: &Headers) -> Decision {
        let Some(entry) = self
            .ingresses
            .iter()
            .find(|i| i.namespace == namespace && i.name == name)
        else {
            return Decision::Dropped;
        };
        let host = entry.request_host();
        let Some(main) = entry.backend_for(host) else {
            return Decision::Dropped;
        };
        let backend = |service: &str, weight: f64| Backend {
            namespace: namespace.to_string(),
            service: service.to_string(),
            weight,
        };
        let canary = self
            .ingresses
            .iter()
            .filter(|i| i.namespace == namespace && i.name != name)
            .filter_map(|i| Some((i, i.canary.as_ref()?, i.backend_for(host)?)))
            .min_by(|a, b| a.0.name.cmp(&b.0.name));
        let Some((canary_ing, rules, canary)) = canary else {
            return Decision::Backends {
                route: format!("ingress/{name}"),
                backends: vec![backend(main, 1.0)],
            };
        };
        match rules.by_request(headers) {
            Some(true) => Decision::Backends {
                route: format!("ingress/{}/matched", canary_ing.name),
                backends: vec![backend(canary, 1.0)],
            },
            Some(false) => Decision::Backends {
                route: format!("ingress/{name}/never"),
                backends: vec![backend(main, 1.0)],
            },
            None => {
                let weight = rules.weight.min(rules.total);
                Decision::Backends {
                    route: format!("ingress/{}/weighted", canary_ing.name),
                    backends: vec![backend(main, rules.total - weight), backend(canary, weight)],
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::routing::tests::{backends, headers};
    use super::*;

    fn to(service: &str) -> Value {
        json!({"service": {"name": service, "port": {"number": 80}}})
    }

    fn main_ingress() -> IngressRoute {
        parse_ingress(
            "ns",
            "app",
            &json!({}),
            &json!({"rules": [{"host": "app.example.com", "http": {"paths": [
                {"path": "/api", "pathType": "Prefix", "backend": to("api")},
                {"path": "/", "pathType": "Prefix", "backend": to("app")}]}}]}),
        )
    }

    fn canary_ingress(annotations: Value, host: &str) -> IngressRoute {
        parse_ingress(
            "ns",
            "app-canary",
            &json!({"annotations": annotations}),
            &json!({"rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": to("app-canary")}]}}]}),
        )
    }

    fn table(ingresses: Vec<IngressRoute>) -> RouteTable {
        RouteTable {
            ingresses,
            ..Default::default()
        }
    }

    #[test]
    fn without_a_canary_the_path_to_slash_takes_everything() {
        let t = table(vec![main_ingress()]);
        assert_eq!(
            backends(&t.resolve_ingress("ns", "app", &Headers::new())),
            [("app".into(), 1.0)]
        );
        assert_eq!(
            t.resolve_ingress("ns", "elsewhere", &Headers::new()),
            Decision::Dropped
        );
    }

    #[test]
    fn a_canary_weight_splits_against_the_main_backend() {
        let t = table(vec![
            main_ingress(),
            canary_ingress(
                json!({CANARY: "true", CANARY_WEIGHT: "30"}),
                "app.example.com",
            ),
        ]);
        assert_eq!(
            backends(&t.resolve_ingress("ns", "app", &Headers::new())),
            [("app".into(), 70.0), ("app-canary".into(), 30.0)]
        );
    }

    #[test]
    fn a_canary_for_another_host_or_without_the_canary_annotation_does_not_apply() {
        let other_host = canary_ingress(
            json!({CANARY: "true", CANARY_WEIGHT: "100"}),
            "other.example.com",
        );
        let not_canary = canary_ingress(json!({CANARY_WEIGHT: "100"}), "app.example.com");
        let t = table(vec![main_ingress(), other_host, not_canary]);
        assert_eq!(
            backends(&t.resolve_ingress("ns", "app", &Headers::new())),
            [("app".into(), 1.0)]
        );
    }

    #[test]
    fn the_header_decides_before_the_cookie_and_the_cookie_before_the_weight() {
        let rules = canary_ingress(
            json!({CANARY: "true", CANARY_WEIGHT: "50",
                CANARY_BY_HEADER: "X-Canary", CANARY_BY_COOKIE: "canary"}),
            "app.example.com",
        )
        .canary
        .unwrap();
        assert_eq!(
            rules.by_request(&headers(&[("x-canary", "always")])),
            Some(true)
        );
        assert_eq!(
            rules.by_request(&headers(&[("x-canary", "never")])),
            Some(false)
        );
        assert_eq!(
            rules.by_request(&headers(&[
                ("x-canary", "never"),
                ("cookie", "canary=always")
            ])),
            Some(false)
        );
        assert_eq!(
            rules.by_request(&headers(&[
                ("x-canary", "maybe"),
                ("cookie", "a=1; canary=always")
            ])),
            Some(true)
        );
        assert_eq!(
            rules.by_request(&headers(&[("cookie", "canary=never")])),
            Some(false)
        );
        assert_eq!(
            rules.by_request(&headers(&[("cookie", "canary=yes")])),
            None
        );
        assert_eq!(rules.by_request(&Headers::new()), None);
    }

    #[test]
    fn with_a_header_value_only_that_value_matches_and_always_means_nothing() {
        let rules = canary_ingress(
            json!({CANARY: "true", CANARY_BY_HEADER: "x-team", CANARY_BY_HEADER_VALUE: "beta"}),
            "app.example.com",
        )
        .canary
        .unwrap();
        assert_eq!(
            rules.by_request(&headers(&[("x-team", "beta")])),
            Some(true)
        );
        assert_eq!(rules.by_request(&headers(&[("x-team", "always")])), None);
        assert_eq!(rules.by_request(&headers(&[("x-team", "never")])), None);
    }

    #[test]
    fn a_header_pattern_is_searched_for_in_the_value_when_no_value_is_set() {
        let rules = canary_ingress(
            json!({CANARY: "true", CANARY_BY_HEADER: "Cookie",
                CANARY_BY_HEADER_PATTERN: "(^|; )beta=yes(;|$)"}),
            "app.example.com",
        )
        .canary
        .unwrap();
        let jar = |v: &str| headers(&[("cookie", v)]);
        assert_eq!(rules.by_request(&jar("a=1; beta=yes")), Some(true));
        assert_eq!(rules.by_request(&jar("beta=yes; a=1")), Some(true));
        assert_eq!(rules.by_request(&jar("beta=no")), None);
        assert_eq!(rules.by_request(&jar("always")), None, "not always/never");
        assert_eq!(rules.by_request(&Headers::new()), None);
    }

    #[test]
    fn a_matched_request_goes_to_the_canary_whatever_the_weight() {
        let t = table(vec![
            main_ingress(),
            canary_ingress(
                json!({CANARY: "true", CANARY_WEIGHT: "0", CANARY_BY_HEADER: "x-canary"}),
                "app.example.com",
            ),
        ]);
        let d = t.resolve_ingress("ns", "app", &headers(&[("x-canary", "always")]));
        assert_eq!(backends(&d), [("app-canary".into(), 1.0)]);
        let d = t.resolve_ingress("ns", "app", &Headers::new());
        assert_eq!(
            backends(&d),
            [("app".into(), 100.0), ("app-canary".into(), 0.0)]
        );
    }

    #[test]
    fn the_weight_is_out_of_the_weight_total_and_capped_by_it() {
        let parse = |a: Value| canary_ingress(a, "h").canary.unwrap();
        let r = parse(json!({CANARY: "true", CANARY_WEIGHT: "5", CANARY_WEIGHT_TOTAL: "1000"}));
        assert_eq!((r.weight, r.total), (5.0, 1000.0));
        let t = table(vec![
            main_ingress(),
            canary_ingress(
                json!({CANARY: "true", CANARY_WEIGHT: "150"}),
                "app.example.com",
            ),
        ]);
        assert_eq!(
            backends(&t.resolve_ingress("ns", "app", &Headers::new())),
            [("app".into(), 0.0), ("app-canary".into(), 100.0)]
        );
    }

    #[test]
    fn a_default_backend_takes_requests_no_rule_sends_anywhere() {
        let ing = parse_ingress(
            "ns",
            "app",
            &json!({}),
            &json!({"defaultBackend": to("app")}),
        );
        assert_eq!(ing.request_host(), None);
        assert_eq!(ing.backend_for(None), Some("app"));
        let only_api = parse_ingress(
            "ns",
            "app",
            &json!({}),
            &json!({"rules": [{"http": {"paths": [{"path": "/api", "backend": to("api")}]}}]}),
        );
        assert_eq!(only_api.backend_for(None), None);
    }
}
