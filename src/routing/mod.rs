//! Routing: one [`Router`] trait that moves traffic between `app-primary` and `app-canary`,
//! with the route kinds behind it ([`smi`]: SMI TrafficSplit as linkerd-smi serves it;
//! [`gateway`]: Gateway API HTTPRoute; [`nginx`]: a canary Ingress for ingress-nginx), and
//! [`served`]: which route APIs the cluster serves.
//!
//! ```text
//!  controller ──ensure(target, Split::Weighted(Weights{primary, canary}) | Split::Matched)──►
//!    AnyRouter ──target.router──► SmiRouter (Matched: NoMatching error)
//!                              ├─► GatewayRouter
//!                              └─► NginxRouter
//!                                  each: get route `app`, equal? no write,
//!                                  else SSA apply (manager "sluice", force)
//! ```
//!
//! What a route does with the requests is a [`Split`]: weighted between the two Services
//! (`Split::Weighted`, every strategy's at-rest, preparing, canary-step, promotion and rollback
//! route), or by the A/B rules of `sluice.dev/match` (`Split::Matched`, during the iterations
//! of `strategy: ab-testing`): requests matching any rule go 100% to `app-canary`, every other
//! request 100% to `app-primary`. The rules travel in [`RouteTarget::matches`]. Each kind says
//! in its module doc how it writes and reads back a matched route; SMI has no header matching,
//! so [`smi`] refuses `Matched` ([`RoutingError::NoMatching`]) rather than write weights.
//!
//! The router is chosen per Deployment (`sluice.dev/router`, carried in [`RouteTarget`]): the
//! controller holds one [`AnyRouter`], passes it the target, and never branches on the kind.
//! A kind whose API is not served (and, with `nginx`, a user's Ingress that is missing or sends
//! nothing to the apex) makes [`AnyRouter::problem`] give the reason, which the controller
//! shows as phase `Blocked`. Every route carries an owner reference to `app`, so deleting `app`
//! collects it.
//!
//! When a Deployment moves to another router, the route the previous kind wrote for it (owned
//! by `app`, labelled managed-by `sluice`) is deleted after the new one is written: a
//! TrafficSplit left behind becomes a ServiceProfile in Linkerd, which overrides the HTTPRoute.
//! This is checked once per route and kind per process, so it costs nothing on later passes.

pub mod gateway;
pub mod nginx;
pub mod served;
pub mod smi;

use std::future::Future;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;

pub use gateway::GatewayRouter;
pub use nginx::NginxRouter;
pub use served::{Discovery, served};
pub use smi::{SmiRouter, SmiVersion};

use crate::controller::objects::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::policy::values::{MatchRule, RouterKind};

/// Field manager of every write Sluice makes.
pub const FIELD_MANAGER: &str = "sluice";

/// Traffic split in percent; `primary + canary == 100`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Weights {
    /// Percent of requests to `app-primary`.
    pub primary: u32,
    /// Percent of requests to `app-canary` (the user's Deployment).
    pub canary: u32,
}

impl Weights {
    /// At rest (DESIGN §3): everything to `app`, which serves through `app-canary`.
    pub const AT_REST: Weights = Weights {
        primary: 0,
        canary: 100,
    };
    /// During preparation and rollback: everything to the primary.
    pub const ALL_PRIMARY: Weights = Weights {
        primary: 100,
        canary: 0,
    };

    /// `canary` percent to the canary, the rest to the primary; `None` above 100.
    pub fn canary(canary: u32) -> Option<Weights> {
        (canary <= 100).then(|| Weights {
            primary: 100 - canary,
            canary,
        })
    }

    /// Whether the weights sum to 100.
    pub fn is_valid(self) -> bool {
        self.primary.checked_add(self.canary) == Some(100)
    }
}

impl std::fmt::Display for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "primary {}% / canary {}%", self.primary, self.canary)
    }
}

/// What a route does with the requests of the apex Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Every request goes to the primary or the canary by these weights.
    Weighted(Weights),
    /// A/B testing: requests matching any of [`RouteTarget::matches`] go 100% to the canary,
    /// all others 100% to the primary.
    Matched,
}

impl Split {
    /// The weights of a weighted split; `None` for a matched one.
    pub fn weights(self) -> Option<Weights> {
        match self {
            Split::Weighted(w) => Some(w),
            Split::Matched => None,
        }
    }
}

impl From<Weights> for Split {
    fn from(w: Weights) -> Split {
        Split::Weighted(w)
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Split::Weighted(w) => w.fmt(f),
            Split::Matched => write!(
                f,
                "requests matching the A/B rules to the canary, all others to the primary"
            ),
        }
    }
}

/// The route for Deployment `app`: where it lives, what it splits, and who owns it.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteTarget {
    /// Namespace of `app` and of every object here.
    pub namespace: String,
    /// Name of the route: the Deployment's name, `app`.
    pub name: String,
    /// The apex Service whose traffic is split (setting `service`).
    pub apex: String,
    /// `app-primary`.
    pub primary_service: String,
    /// `app-canary`.
    pub canary_service: String,
    /// The apex port the route applies to (HTTPRoute needs it; SMI ignores it).
    pub port: Option<i32>,
    /// Which router writes the route (setting `router`).
    pub router: RouterKind,
    /// With `nginx`: the user's Ingress the canary Ingress mirrors (setting `ingress`).
    pub ingress: String,
    /// The A/B rules (setting `match`) a [`Split::Matched`] route sends to the canary.
    pub matches: Vec<MatchRule>,
    /// Owner reference to `app`.
    pub owner: OwnerReference,
}

impl RouteTarget {
    /// The same target with the user's Ingress `ingress` (setting `ingress`).
    pub fn with_ingress(self, ingress: &str) -> RouteTarget {
        RouteTarget {
            ingress: ingress.to_string(),
            ..self
        }
    }

    /// The same target with the A/B rules `matches` (setting `match`).
    pub fn with_matches(self, matches: &[MatchRule]) -> RouteTarget {
        RouteTarget {
            matches: matches.to_vec(),
            ..self
        }
    }

    /// `namespace/name`, for messages.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Why a route could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error(
        "the {} {route} cannot be written and the rollout is Blocked: {}",
        served::route_kind(*router),
        served::unserved_reason(*router)
    )]
    NotServed { router: RouterKind, route: String },
    #[error("{reason}")]
    IngressUnusable { reason: String },
    #[error(
        "the apex Service {apex} of route {route} has no port, and an HTTPRoute's parentRef and \
         backendRefs need one; add a port to the Service"
    )]
    NoPort { route: String, apex: String },
    #[error(
        "cannot discover whether {group_version} is served: {source}; check that the API server \
         is reachable and Sluice may read discovery"
    )]
    Discovery {
        group_version: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot {verb} {kind} {route}: {source}")]
    Api {
        verb: &'static str,
        kind: String,
        route: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "{kind} {route} cannot be read as a split between {primary} and {canary}: {reason}; \
         delete it and Sluice writes it again"
    )]
    BadRoute {
        kind: String,
        route: String,
        primary: String,
        canary: String,
        reason: String,
    },
    #[error("weights {weights} for {route} do not sum to 100; this is a bug in Sluice")]
    InvalidWeights { route: String, weights: Weights },
    #[error("route {route} cannot send requests by the A/B rules of sluice.dev/match: {reason}")]
    NoMatching { route: String, reason: String },
}

impl RoutingError {
    /// A stored route of `kind` that cannot be read as a split of `target`, and why.
    pub fn bad_route(kind: &str, target: &RouteTarget, reason: String) -> RoutingError {
        RoutingError::BadRoute {
            kind: kind.to_string(),
            route: target.key(),
            primary: target.primary_service.clone(),
            canary: target.canary_service.clone(),
            reason,
        }
    }

    /// Short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RoutingError::NotServed { .. } => "not_served",
            RoutingError::IngressUnusable { .. } => "ingress",
            RoutingError::NoPort { .. } => "no_port",
            RoutingError::Discovery { .. } => "discovery",
            RoutingError::Api { .. } => "api",
            RoutingError::BadRoute { .. } => "bad_route",
            RoutingError::InvalidWeights { .. } => "invalid_weights",
            RoutingError::NoMatching { .. } => "no_matching",
        }
    }
}

/// Moves traffic between the primary and the canary of one Deployment.
pub trait Router: Send + Sync {
    /// The `sluice.dev/router` value this router serves (`smi`).
    fn kind(&self) -> &'static str;

    /// The resource routes are stored as, for the controller to watch them; `None` while the
    /// route API is not served.
    fn route_resource(&self) -> Option<ApiResource>;

    /// `None` when the route API is served; otherwise what is missing and what to do (the
    /// reason of phase `Blocked`). Discovers again while it is not served.
    fn unserved(&self) -> impl Future<Output = Result<Option<String>, RoutingError>> + Send;

    /// Creates or updates the route so that it splits by `split`; writes nothing when the
    /// stored route already does (server-side apply, field manager `sluice`, forced).
    fn ensure(
        &self,
        target: &RouteTarget,
        split: Split,
    ) -> impl Future<Output = Result<(), RoutingError>> + Send;

    /// Deletes the route of `target` if Sluice wrote it (owned by `app`, managed-by label);
    /// nothing when the API is not served. Whether it deleted one.
    fn remove(
        &self,
        target: &RouteTarget,
    ) -> impl Future<Output = Result<bool, RoutingError>> + Send;

    /// How the stored route splits now (weights in percent, or by the A/B rules); `None` when
    /// there is no route.
    fn split(
        &self,
        target: &RouteTarget,
    ) -> impl Future<Output = Result<Option<Split>, RoutingError>> + Send;
}

/// What each router shares between its clones: the client, and the route API it discovered
/// (`None` while not served), reset by a 404 so the next call discovers again.
#[derive(Clone)]
pub(crate) struct RouteClient<T> {
    client: kube::Client,
    /// `TrafficSplit` / `HTTPRoute`, for messages.
    kind: &'static str,
    discovered: Arc<Mutex<Option<T>>>,
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for RouteClient<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteClient")
            .field("kind", &self.kind)
            .field("discovered", &self.cached())
            .finish_non_exhaustive()
    }
}

impl<T: Copy> RouteClient<T> {
    pub(crate) fn new(client: kube::Client, kind: &'static str, found: Option<T>) -> Self {
        RouteClient {
            client,
            kind,
            discovered: Arc::new(Mutex::new(found)),
        }
    }

    pub(crate) fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The API discovered so far; `None`: not served.
    pub(crate) fn cached(&self) -> Option<T> {
        *self.discovered.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set(&self, found: Option<T>) {
        *self.discovered.lock().unwrap_or_else(|e| e.into_inner()) = found;
    }

    fn api(&self, target: &RouteTarget, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &target.namespace, resource)
    }

    fn api_error(&self, verb: &'static str, target: &RouteTarget, e: kube::Error) -> RoutingError {
        if matches!(&e, kube::Error::Api(s) if s.code == 404) {
            // The API went away (a 404 on a get is mapped to None before this).
            self.set(None);
        }
        RoutingError::Api {
            verb,
            kind: self.kind.to_string(),
            route: target.key(),
            source: Box::new(e),
        }
    }

    /// The stored route, as JSON; `None` when there is none.
    pub(crate) async fn get(
        &self,
        target: &RouteTarget,
        resource: &ApiResource,
    ) -> Result<Option<Value>, RoutingError> {
        let obj = self
            .api(target, resource)
            .get_opt(&target.name)
            .await
            .map_err(|e| self.api_error("get", target, e))?;
        Ok(obj.map(|o| serde_json::to_value(o).expect("a DynamicObject serialises")))
    }

    /// Server-side apply of `desired` under the field manager `sluice`, forced.
    pub(crate) async fn apply(
        &self,
        target: &RouteTarget,
        resource: &ApiResource,
        desired: &Value,
    ) -> Result<(), RoutingError> {
        self.api(target, resource)
            .patch(
                &target.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(desired),
            )
            .await
            .map_err(|e| self.api_error("apply", target, e))?;
        Ok(())
    }
}

/// The metadata of every route: name and namespace of `app`, the managed-by label, and the
/// owner reference to `app`.
pub(crate) fn route_metadata(target: &RouteTarget) -> Value {
    serde_json::json!({
        "name": target.name,
        "namespace": target.namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY},
        "ownerReferences": [target.owner],
    })
}

/// Whether the stored route `current` carries `desired`'s owner reference to `app` and the
/// managed-by label.
pub(crate) fn is_owned_and_labelled(current: &Value, desired: &Value) -> bool {
    let owner_uid = &desired["metadata"]["ownerReferences"][0]["uid"];
    current["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| &r["uid"] == owner_uid))
        && current["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
}

impl<T: Copy> RouteClient<T> {
    /// Deletes `target`'s route in `resource` if Sluice wrote it for this `app` (owner
    /// reference and managed-by label); someone else's object of that name is left alone.
    /// Whether it deleted one.
    pub(crate) async fn delete_ours(
        &self,
        target: &RouteTarget,
        resource: &ApiResource,
    ) -> Result<bool, RoutingError> {
        let Some(current) = self.get(target, resource).await? else {
            return Ok(false);
        };
        let ours = serde_json::json!({"metadata": route_metadata(target)});
        if !is_owned_and_labelled(&current, &ours) {
            return Ok(false);
        }
        match self
            .api(target, resource)
            .delete(&target.name, &Default::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(self.api_error("delete", target, e)),
        }
    }
}

/// Refuses weights that do not sum to 100, and a matched split without rules (it would send
/// nothing to the canary while claiming to), before anything is read or written.
pub(crate) fn check_split(target: &RouteTarget, split: Split) -> Result<(), RoutingError> {
    match split {
        Split::Weighted(weights) if !weights.is_valid() => Err(RoutingError::InvalidWeights {
            route: target.key(),
            weights,
        }),
        Split::Matched if target.matches.is_empty() => Err(RoutingError::NoMatching {
            route: target.key(),
            reason: "no rules are set; add sluice.dev/match rules, or set \
                     sluice.dev/strategy: canary"
                .to_string(),
        }),
        _ => Ok(()),
    }
}

/// Relative weights of a route's backends, `(service, weight)` in any one unit, as percent to
/// the primary and the canary (canary rounded to the nearest percent). A backend that is
/// neither and takes traffic, a backend listed twice, or no traffic at all is an error (the
/// reason); a missing one of the two takes none.
pub(crate) fn percent_split<'a>(
    backends: impl IntoIterator<Item = (&'a str, u128)>,
    target: &RouteTarget,
) -> Result<Weights, String> {
    let (mut primary, mut canary) = (None, None);
    for (service, weight) in backends {
        let slot = if service == target.primary_service {
            &mut primary
        } else if service == target.canary_service {
            &mut canary
        } else if weight > 0 {
            return Err(format!(
                "backend {service:?} takes traffic but is neither of the two"
            ));
        } else {
            continue;
        };
        if slot.replace(weight).is_some() {
            return Err(format!("backend {service:?} is listed twice"));
        }
    }
    let (p, c) = (primary.unwrap_or(0), canary.unwrap_or(0));
    let too_large = || "the weights are too large to compare".to_string();
    let total = p.checked_add(c).ok_or_else(too_large)?;
    if total == 0 {
        return Err("no backend has a weight above 0".to_string());
    }
    // Nearest percent: (200c + total) / 2total.
    let numerator = c
        .checked_mul(200)
        .and_then(|x| x.checked_add(total))
        .ok_or_else(too_large)?;
    let denominator = total.checked_mul(2).ok_or_else(too_large)?;
    let canary = (numerator / denominator) as u32;
    Ok(Weights {
        primary: 100 - canary,
        canary,
    })
}

/// How often [`AnyRouter::rediscover_soon`] asks the API server at most.
pub const REDISCOVER_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Every router, one per kind; the controller holds this and [`RouteTarget::router`] picks.
#[derive(Clone, Debug)]
pub struct AnyRouter {
    smi: SmiRouter,
    gateway: GatewayRouter,
    nginx: NginxRouter,
    /// When unserved route APIs were last discovered again for [`AnyRouter::rediscover_soon`].
    rediscovered: Arc<Mutex<Option<std::time::Instant>>>,
    /// Route key → the kind whose leftovers of the other kinds were already removed.
    swept: Arc<Mutex<std::collections::HashMap<String, RouterKind>>>,
}

impl AnyRouter {
    /// Every router on `client`, each after discovering its API (not being served is not an
    /// error: see [`AnyRouter::unserved`]).
    pub async fn new(client: kube::Client) -> Result<AnyRouter, RoutingError> {
        let (smi, gateway, nginx) = tokio::try_join!(
            SmiRouter::new(client.clone()),
            GatewayRouter::new(client.clone()),
            NginxRouter::new(client)
        )?;
        Ok(AnyRouter {
            smi,
            gateway,
            nginx,
            rediscovered: Arc::default(),
            swept: Arc::default(),
        })
    }

    /// The resources routes are stored as, one per served kind, for the controller to watch.
    pub fn route_resources(&self) -> Vec<ApiResource> {
        [
            self.smi.route_resource(),
            self.gateway.route_resource(),
            self.nginx.route_resource(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The route APIs served as last discovered, without asking the API server: what the
    /// webhook judges `sluice.dev/router` by ([`served`]).
    pub fn discovery(&self) -> Discovery {
        let mut d = Discovery::default();
        if let Some(v) = self.smi.cached_version() {
            d.insert(&v.api_version(), smi::PLURAL);
        }
        if self.gateway.cached_served() {
            d.insert(
                &format!("{}/{}", gateway::GROUP, gateway::VERSION),
                gateway::PLURAL,
            );
        }
        if self.nginx.cached_served() {
            d.insert(
                &format!("{}/{}", nginx::GROUP, nginx::VERSION),
                nginx::PLURAL,
            );
        }
        d
    }

    /// Discovers again, on a background task and at most once every [`REDISCOVER_EVERY`], the
    /// route APIs not served as last known, so that installing one is seen by
    /// [`discovery`](Self::discovery) without anyone waiting on the API server. Needs a Tokio
    /// runtime; without one it does nothing.
    pub fn rediscover_soon(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut last = self.rediscovered.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < REDISCOVER_EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let router = self.clone();
        runtime.spawn(async move {
            for kind in RouterKind::ALL {
                if let Err(err) = router.unserved(kind).await {
                    tracing::warn!(router = %kind, "discovering the route API again: {err}");
                }
            }
        });
    }

    /// `None` when router `kind` can write its route; otherwise why not (phase `Blocked`).
    pub async fn unserved(&self, kind: RouterKind) -> Result<Option<String>, RoutingError> {
        match kind {
            RouterKind::Smi => self.smi.unserved().await,
            RouterKind::GatewayApi => self.gateway.unserved().await,
            RouterKind::Nginx => self.nginx.unserved().await,
        }
    }

    /// `None` when router `kind` can route Deployment `namespace/…` whose apex Service is
    /// `apex` (and, with `nginx`, whose Ingress is `ingress`); otherwise why not (phase
    /// `Blocked`): [`unserved`](Self::unserved), or the user's Ingress missing or sending
    /// nothing to the apex.
    pub async fn problem(
        &self,
        kind: RouterKind,
        namespace: &str,
        ingress: &str,
        apex: &str,
    ) -> Result<Option<String>, RoutingError> {
        match kind {
            RouterKind::Nginx => self.nginx.problem(namespace, ingress, apex).await,
            _ => self.unserved(kind).await,
        }
    }

    /// Routes `target` by `split` with the router it names, then removes the route another
    /// kind of router wrote for the same Deployment (once per route and kind in this process):
    /// a TrafficSplit left behind would override the HTTPRoute (Linkerd turns it into a
    /// ServiceProfile), and an HTTPRoute left behind would be a stale second route.
    pub async fn ensure(&self, target: &RouteTarget, split: Split) -> Result<(), RoutingError> {
        match target.router {
            RouterKind::Smi => self.smi.ensure(target, split).await?,
            RouterKind::GatewayApi => self.gateway.ensure(target, split).await?,
            RouterKind::Nginx => self.nginx.ensure(target, split).await?,
        }
        self.sweep(target).await
    }

    async fn sweep(&self, target: &RouteTarget) -> Result<(), RoutingError> {
        let key = target.key();
        let done = |swept: &std::collections::HashMap<String, RouterKind>| {
            swept.get(&key) == Some(&target.router)
        };
        if done(&self.swept.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(());
        }
        let mut removed = Vec::new();
        if target.router != RouterKind::Smi && self.smi.remove(target).await? {
            removed.push(smi::KIND);
        }
        if target.router != RouterKind::GatewayApi && self.gateway.remove(target).await? {
            removed.push(gateway::KIND);
        }
        if target.router != RouterKind::Nginx && self.nginx.remove(target).await? {
            removed.push("canary Ingress");
        }
        for kind in removed {
            tracing::info!(
                route = %key,
                router = %target.router,
                "removed the {kind} Sluice wrote before sluice.dev/router changed"
            );
        }
        self.swept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, target.router);
        Ok(())
    }

    /// How `target`'s route splits now; `None` when there is no route.
    pub async fn split(&self, target: &RouteTarget) -> Result<Option<Split>, RoutingError> {
        match target.router {
            RouterKind::Smi => self.smi.split(target).await,
            RouterKind::GatewayApi => self.gateway.split(target).await,
            RouterKind::Nginx => self.nginx.split(target).await,
        }
    }
}

/// The route of Deployment `shop/web` with apex `storefront` on port 80 and Ingress `public`,
/// for unit tests.
#[cfg(test)]
pub(crate) fn mk_target(router: RouterKind) -> RouteTarget {
    RouteTarget {
        namespace: "shop".into(),
        name: "web".into(),
        apex: "storefront".into(),
        primary_service: "web-primary".into(),
        canary_service: "web-canary".into(),
        port: Some(80),
        router,
        ingress: "public".into(),
        matches: Vec::new(),
        owner: OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: "uid-web".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_weight_leaves_the_rest_to_the_primary() {
        assert_eq!(
            Weights::canary(30),
            Some(Weights {
                primary: 70,
                canary: 30
            })
        );
        assert_eq!(Weights::canary(100), Some(Weights::AT_REST));
        assert_eq!(Weights::canary(0), Some(Weights::ALL_PRIMARY));
        assert_eq!(Weights::canary(101), None);
    }

    #[test]
    fn weights_are_valid_only_when_they_sum_to_100() {
        assert!(Weights::AT_REST.is_valid());
        assert!(
            !Weights {
                primary: 50,
                canary: 60
            }
            .is_valid()
        );
        assert!(
            !Weights {
                primary: u32::MAX,
                canary: 101
            }
            .is_valid()
        );
    }

    #[test]
    fn a_route_without_the_owner_or_the_label_is_not_sluices() {
        let t = mk_target(RouterKind::GatewayApi);
        let desired = serde_json::json!({"metadata": route_metadata(&t)});
        assert!(is_owned_and_labelled(&desired, &desired));
        let mut orphan = desired.clone();
        orphan["metadata"]["ownerReferences"] = serde_json::json!([]);
        assert!(!is_owned_and_labelled(&orphan, &desired));
        let mut unlabelled = desired.clone();
        unlabelled["metadata"]["labels"] = serde_json::json!({});
        assert!(!is_owned_and_labelled(&unlabelled, &desired));
    }

    #[test]
    fn not_served_tells_a_person_what_to_install() {
        let err = RoutingError::NotServed {
            router: RouterKind::Smi,
            route: "shop/web".into(),
        };
        let msg = err.to_string();
        assert!(msg.contains("TrafficSplit shop/web"), "{msg}");
        assert!(msg.contains("linkerd smi install"), "{msg}");
        assert!(msg.contains("Blocked"), "{msg}");
        assert_eq!(err.metric_label(), "not_served");
    }
}
