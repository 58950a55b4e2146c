//! Routing: one [`Router`] trait that moves traffic between `app-primary` and `app-canary`,
//! with the route kinds behind it ([`smi`]: SMI TrafficSplit as linkerd-smi serves it).
//!
//! ```text
//!  controller ──ensure(target, Weights{primary, canary})──► AnyRouter ──► SmiRouter
//!                                                                          │ get route `app`
//!                                                                          │ equal? no write
//!                                                                          └ else SSA apply
//!                                                                            (manager "sluice", force)
//! ```
//!
//! The controller holds an [`AnyRouter`] and never branches on the route kind; a new kind is a
//! new variant here. Every route carries an owner reference to `app`, so deleting `app`
//! collects it.

pub mod smi;

use std::future::Future;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ApiResource;

pub use smi::{SmiRouter, SmiVersion};

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
    /// Owner reference to `app`.
    pub owner: OwnerReference,
}

impl RouteTarget {
    /// `namespace/name`, for messages.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Why a route could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error(
        "the cluster serves neither split.smi-spec.io/v1alpha2 nor v1alpha1, so the TrafficSplit \
         {route} cannot be written and the rollout is Blocked; install the linkerd-smi extension \
         (`linkerd smi install | kubectl apply -f -`) or set sluice.dev/router: gateway-api"
    )]
    NotServed { route: String },
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
}

impl RoutingError {
    /// Short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RoutingError::NotServed { .. } => "not_served",
            RoutingError::Discovery { .. } => "discovery",
            RoutingError::Api { .. } => "api",
            RoutingError::BadRoute { .. } => "bad_route",
            RoutingError::InvalidWeights { .. } => "invalid_weights",
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

    /// Creates or updates the route so that it splits by `weights`; writes nothing when the
    /// stored route already does (server-side apply, field manager `sluice`, forced).
    fn ensure(
        &self,
        target: &RouteTarget,
        weights: Weights,
    ) -> impl Future<Output = Result<(), RoutingError>> + Send;

    /// The weights the stored route splits by now, in percent; `None` when there is no route.
    fn weights(
        &self,
        target: &RouteTarget,
    ) -> impl Future<Output = Result<Option<Weights>, RoutingError>> + Send;
}

/// Every router kind, chosen per Deployment; the controller holds this and never branches.
#[derive(Clone, Debug)]
pub enum AnyRouter {
    /// SMI TrafficSplit.
    Smi(SmiRouter),
}

impl From<SmiRouter> for AnyRouter {
    fn from(r: SmiRouter) -> Self {
        AnyRouter::Smi(r)
    }
}

impl Router for AnyRouter {
    fn kind(&self) -> &'static str {
        match self {
            AnyRouter::Smi(r) => r.kind(),
        }
    }

    fn route_resource(&self) -> Option<ApiResource> {
        match self {
            AnyRouter::Smi(r) => r.route_resource(),
        }
    }

    async fn ensure(&self, target: &RouteTarget, weights: Weights) -> Result<(), RoutingError> {
        match self {
            AnyRouter::Smi(r) => r.ensure(target, weights).await,
        }
    }

    async fn weights(&self, target: &RouteTarget) -> Result<Option<Weights>, RoutingError> {
        match self {
            AnyRouter::Smi(r) => r.weights(target).await,
        }
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
    fn not_served_tells_a_person_what_to_install() {
        let err = RoutingError::NotServed {
            route: "shop/web".into(),
        };
        let msg = err.to_string();
        assert!(msg.contains("TrafficSplit shop/web"), "{msg}");
        assert!(msg.contains("linkerd smi install"), "{msg}");
        assert!(msg.contains("Blocked"), "{msg}");
        assert_eq!(err.metric_label(), "not_served");
    }
}
