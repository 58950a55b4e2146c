//! Discovery of the route APIs: which of them the cluster serves, and the one answer to "can
//! router X write its route here?" that the controller (phase `Blocked`) and the validating
//! webhook (refusal at apply time) both give, in the same words.
//!
//! ```text
//!  Discovery::fetch(client) ── GET /apis/{gv} for every gv in GROUP_VERSIONS ──► Discovery
//!                              (404 = not served; any other error is an error)
//!  served(kind, &Discovery) ──► Ok(()) | Err("… is not served …; install … or set sluice.dev/router: …")
//! ```
//!
//! `served` is pure, so the webhook can answer from a Discovery it refreshed off the hot path.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ApiResource;

use crate::policy::values::RouterKind;

use super::RoutingError;

/// A group version and the resource (lower-case plural) a router writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteApi {
    /// `split.smi-spec.io/v1alpha2`.
    pub group_version: &'static str,
    /// `trafficsplits`.
    pub plural: &'static str,
}

/// The APIs each router can write, in order of preference; any one of them will do.
pub fn route_apis(kind: RouterKind) -> &'static [RouteApi] {
    match kind {
        RouterKind::Smi => &[
            RouteApi {
                group_version: "split.smi-spec.io/v1alpha2",
                plural: "trafficsplits",
            },
            RouteApi {
                group_version: "split.smi-spec.io/v1alpha1",
                plural: "trafficsplits",
            },
        ],
        RouterKind::GatewayApi => &[RouteApi {
            group_version: "gateway.networking.k8s.io/v1",
            plural: "httproutes",
        }],
        RouterKind::Nginx => &[RouteApi {
            group_version: "networking.k8s.io/v1",
            plural: "ingresses",
        }],
    }
}

/// The kind of route object router `kind` writes (`TrafficSplit`, `HTTPRoute`, `Ingress`).
pub fn route_kind(kind: RouterKind) -> &'static str {
    match kind {
        RouterKind::Smi => "TrafficSplit",
        RouterKind::GatewayApi => "HTTPRoute",
        RouterKind::Nginx => "Ingress",
    }
}

/// Which resources the cluster serves, by group version (only those routing cares about).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    served: BTreeMap<String, BTreeSet<String>>,
}

impl Discovery {
    /// Every group version [`Discovery::fetch`] asks about.
    pub fn group_versions() -> BTreeSet<&'static str> {
        RouterKind::ALL
            .into_iter()
            .flat_map(route_apis)
            .map(|a| a.group_version)
            .collect()
    }

    /// Records that `group_version` serves `plural`.
    pub fn insert(&mut self, group_version: &str, plural: &str) {
        self.served
            .entry(group_version.to_string())
            .or_default()
            .insert(plural.to_string());
    }

    /// Builder form of [`insert`](Self::insert).
    pub fn with(mut self, group_version: &str, plural: &str) -> Discovery {
        self.insert(group_version, plural);
        self
    }

    /// Whether `group_version` serves `plural`.
    pub fn serves(&self, group_version: &str, plural: &str) -> bool {
        self.served
            .get(group_version)
            .is_some_and(|p| p.contains(plural))
    }

    /// The first of `kind`'s APIs that is served, in order of preference.
    pub fn preferred(&self, kind: RouterKind) -> Option<RouteApi> {
        route_apis(kind)
            .iter()
            .copied()
            .find(|a| self.serves(a.group_version, a.plural))
    }

    /// Asks the API server about every group version of [`Discovery::group_versions`]; a
    /// group version it does not know (404) serves nothing.
    pub async fn fetch(client: &kube::Client) -> Result<Discovery, RoutingError> {
        let mut d = Discovery::default();
        for gv in Discovery::group_versions() {
            for plural in fetch_group_version(client, gv).await? {
                d.insert(gv, &plural);
            }
        }
        Ok(d)
    }
}

/// The resources `group_version` serves; none when the API server does not know it.
pub(crate) async fn fetch_group_version(
    client: &kube::Client,
    group_version: &str,
) -> Result<Vec<String>, RoutingError> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(source) => Err(RoutingError::Discovery {
            group_version: group_version.to_string(),
            source: Box::new(source),
        }),
    }
}

/// Whether `group_version` serves `plural` (an unknown group version serves nothing).
pub(crate) async fn serves(
    client: &kube::Client,
    group_version: &str,
    plural: &str,
) -> Result<bool, RoutingError> {
    let plurals = fetch_group_version(client, group_version).await?;
    Ok(plurals.iter().any(|p| p == plural))
}

/// The `ApiResource` of a namespaced kind, for `Api::namespaced_with` and watches.
pub(crate) fn api_resource_of(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: format!("{group}/{version}"),
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

/// Whether router `kind` can write its route on a cluster that serves `discovery`; the error
/// says what is missing and what to do, for the phase `Blocked` and for an admission refusal.
pub fn served(kind: RouterKind, discovery: &Discovery) -> Result<(), String> {
    match discovery.preferred(kind) {
        Some(_) => Ok(()),
        None => Err(unserved_reason(kind)),
    }
}

/// What is missing when none of `kind`'s APIs is served, and what to do.
pub fn unserved_reason(kind: RouterKind) -> String {
    let key = crate::policy::keys::Setting::Router;
    let key = format!("sluice.dev/{}", key.as_str());
    match kind {
        RouterKind::Smi => format!(
            "the cluster serves neither split.smi-spec.io/v1alpha2 nor v1alpha1 trafficsplits, \
             which {key}: smi writes; install the linkerd-smi extension \
             (`linkerd smi install | kubectl apply -f -`) or set {key}: gateway-api"
        ),
        RouterKind::GatewayApi => format!(
            "the cluster does not serve gateway.networking.k8s.io/v1 httproutes, which {key}: \
             gateway-api writes; install the Gateway API CRDs \
             (`kubectl apply --server-side -f deploy/crds/`, or gateway-api's \
             standard-install.yaml) or set {key}: smi"
        ),
        RouterKind::Nginx => format!(
            "the cluster does not serve networking.k8s.io/v1 ingresses, which {key}: nginx \
             writes; use a Kubernetes of 1.19 or later, or set {key}: gateway-api"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway_only() -> Discovery {
        Discovery::default().with("gateway.networking.k8s.io/v1", "httproutes")
    }

    #[test]
    fn a_router_is_served_when_one_of_its_apis_is() {
        assert_eq!(served(RouterKind::GatewayApi, &gateway_only()), Ok(()));
        let v1alpha1 = Discovery::default().with("split.smi-spec.io/v1alpha1", "trafficsplits");
        assert_eq!(served(RouterKind::Smi, &v1alpha1), Ok(()));
    }

    #[test]
    fn smi_prefers_v1alpha2_when_both_are_served() {
        let both = Discovery::default()
            .with("split.smi-spec.io/v1alpha1", "trafficsplits")
            .with("split.smi-spec.io/v1alpha2", "trafficsplits");
        assert_eq!(
            both.preferred(RouterKind::Smi).map(|a| a.group_version),
            Some("split.smi-spec.io/v1alpha2")
        );
    }

    #[test]
    fn an_unserved_router_is_refused_with_what_to_install_and_the_other_router() {
        let err = served(RouterKind::Smi, &gateway_only()).unwrap_err();
        assert!(err.contains("linkerd smi install"), "{err}");
        assert!(err.contains("sluice.dev/router: gateway-api"), "{err}");
        let err = served(RouterKind::GatewayApi, &Discovery::default()).unwrap_err();
        assert!(
            err.contains("gateway.networking.k8s.io/v1 httproutes"),
            "{err}"
        );
        assert!(err.contains("sluice.dev/router: smi"), "{err}");
    }

    #[test]
    fn a_group_version_without_the_resource_does_not_count() {
        let other = Discovery::default().with("gateway.networking.k8s.io/v1", "gateways");
        assert!(served(RouterKind::GatewayApi, &other).is_err());
    }

    #[test]
    fn discovery_asks_about_every_router_api_once() {
        let gvs = Discovery::group_versions();
        assert!(gvs.contains("split.smi-spec.io/v1alpha1"));
        assert!(gvs.contains("gateway.networking.k8s.io/v1"));
        assert!(gvs.contains("networking.k8s.io/v1"));
        assert_eq!(gvs.len(), 4);
    }
}
