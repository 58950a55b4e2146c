//! SMI TrafficSplit as the linkerd-smi extension serves it (REFERENCE.md "SMI TrafficSplit").
//!
//! ```text
//!  SmiRouter::new ── GET /apis/split.smi-spec.io/v1alpha2 ── trafficsplits? ─► v1alpha2
//!                     └ else GET …/v1alpha1 ────────────── trafficsplits? ─► v1alpha1
//!                                                             else ─────────► NotServed (Blocked)
//!  ensure(t, w) ── GET route ── is_up_to_date? ── yes ─► no write
//!                                           └─ no ──► SSA apply desired_trafficsplit(t, w, v)
//! ```
//!
//! The route `app` is `{spec: {service: apex, backends: [{service: app-primary, weight: P},
//! {service: app-canary, weight: C}]}}` with P + C = 100, labelled
//! `app.kubernetes.io/managed-by: sluice` and owned by `app`.
//!
//! Choices where DESIGN.md and REFERENCE.md are silent:
//! - v1alpha2 is preferred; v1alpha1 is used only when v1alpha2 is not served. v1alpha1 weights
//!   are written as decimal quantity strings of the percent (`"90"`, `"0"`), the form
//!   `resource.Quantity` itself serialises to, so linkerd-smi reads them exactly.
//! - Reading accepts both forms under either version (the CRD's `conversion: None` leaves stored
//!   values as they were written): integers, JSON numbers, and quantities (`90`, `500m`, `1k`,
//!   `1Ki`, `5e2`). Weights are relative, so they are normalised to percent (canary rounded to
//!   the nearest percent, primary the rest). Backends other than the two are an error if they
//!   take traffic; a missing one of the two takes none.
//! - The served version is discovered once and cached. When neither is served, every call
//!   discovers again, so installing linkerd-smi unblocks rollouts without a restart. Since a
//!   version that is no longer served answers 404 like an absent route, an absent route is
//!   confirmed by discovering again before it is created or reported as absent.
//! - A TrafficSplit has no header matching: [`Split::Matched`] (A/B testing) is refused with
//!   [`RoutingError::NoMatching`] before anything is read or written, rather than written as
//!   weights that would send users the rules exclude to the new version (admission refuses
//!   `strategy: ab-testing` with `router: smi` first).
//! - "Equal" means: same apex, the two backends in order with the same weights (compared as
//!   quantities, so `"90"` equals `90`), the managed-by label and the owner reference to `app`.
//!   Fields others added are left alone.

use kube::api::ApiResource;
use serde_json::{Value, json};

use super::{
    RouteClient, RouteTarget, Router, RoutingError, Split, Weights, check_split,
    is_owned_and_labelled, percent_split, route_metadata,
};
use crate::policy::values::RouterKind;

/// API group of TrafficSplit.
pub const GROUP: &str = "split.smi-spec.io";
/// Kind of the route object.
pub const KIND: &str = "TrafficSplit";
/// Plural resource name of TrafficSplit.
pub const PLURAL: &str = "trafficsplits";

/// A TrafficSplit version linkerd-smi serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SmiVersion {
    /// Integer weights; preferred.
    V1Alpha2,
    /// Quantity weights (`"90"`, `"500m"`); linkerd-smi's storage version.
    V1Alpha1,
}

impl SmiVersion {
    /// In order of preference.
    pub const PREFERRED: [SmiVersion; 2] = [SmiVersion::V1Alpha2, SmiVersion::V1Alpha1];

    /// `v1alpha2` / `v1alpha1`.
    pub fn as_str(self) -> &'static str {
        match self {
            SmiVersion::V1Alpha2 => "v1alpha2",
            SmiVersion::V1Alpha1 => "v1alpha1",
        }
    }

    /// `split.smi-spec.io/v1alpha2`.
    pub fn api_version(self) -> String {
        format!("{GROUP}/{}", self.as_str())
    }

    /// The backend weight as this version writes it.
    fn weight(self, percent: u32) -> Value {
        match self {
            SmiVersion::V1Alpha2 => json!(percent),
            SmiVersion::V1Alpha1 => json!(percent.to_string()),
        }
    }

    /// The TrafficSplit resource in this version (for `Api::namespaced_with` and watches).
    pub fn api_resource(self) -> ApiResource {
        ApiResource {
            group: GROUP.to_string(),
            version: self.as_str().to_string(),
            api_version: self.api_version(),
            kind: KIND.to_string(),
            plural: PLURAL.to_string(),
        }
    }
}

/// The TrafficSplit `target` should be for `weights`, in `version`'s form (for server-side apply).
pub fn desired_trafficsplit(target: &RouteTarget, weights: Weights, version: SmiVersion) -> Value {
    json!({
        "apiVersion": version.api_version(),
        "kind": KIND,
        "metadata": route_metadata(target),
        "spec": {
            "service": target.apex,
            "backends": [
                {"service": target.primary_service, "weight": version.weight(weights.primary)},
                {"service": target.canary_service, "weight": version.weight(weights.canary)},
            ],
        },
    })
}

/// A weight as thousandths (`"500m"` → 500, `90` → 90000). Integers, JSON numbers and
/// Kubernetes quantity strings; negative values and garbage are errors.
pub fn weight_milli(weight: &Value) -> Result<u128, String> {
    match weight {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(u128::from(u) * 1000);
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f >= 0.0 => Ok((f * 1000.0).round() as u128),
                _ => Err(format!("weight {n} is negative")),
            }
        }
        Value::String(s) => quantity_milli(s),
        other => Err(format!("weight {other} is neither a number nor a quantity")),
    }
}

fn quantity_milli(s: &str) -> Result<u128, String> {
    let bad = |why: &str| format!("weight {s:?} is not a quantity ({why})");
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let number = number.strip_prefix('+').unwrap_or(number);
    if s.starts_with('-') {
        return Err(bad("weights cannot be negative"));
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return Err(bad("no number"));
    }
    if frac.len() > 9 {
        return Err(bad("more than 9 decimal places"));
    }
    // Multiplier of one unit, in thousandths.
    let multiplier: u128 = match suffix {
        "m" => 1,
        "" => 1000,
        "k" => 1000 * 1000,
        "M" => 1000u128.pow(3),
        "G" => 1000u128.pow(4),
        "T" => 1000u128.pow(5),
        "P" => 1000u128.pow(6),
        "E" => 1000u128.pow(7),
        "Ki" => 1000 << 10,
        "Mi" => 1000 << 20,
        "Gi" => 1000 << 30,
        "Ti" => 1000 << 40,
        "Pi" => 1000 << 50,
        "Ei" => 1000 << 60,
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| bad("bad suffix"))?;
            match e {
                -3..=0 => 1000 / 10u128.pow(e.unsigned_abs()),
                1..=18 => 1000 * 10u128.pow(e as u32),
                _ => return Err(bad("exponent out of range")),
            }
        }
        _ => return Err(bad("unknown suffix")),
    };
    let digits: u128 = format!("{int}{frac}")
        .parse()
        .map_err(|_| bad("too many digits"))?;
    let scale = 10u128.pow(frac.len() as u32);
    digits
        .checked_mul(multiplier)
        .map(|m| (m + scale / 2) / scale)
        .ok_or_else(|| bad("too large"))
}

/// The weights a stored TrafficSplit splits `target`'s traffic by, in percent.
pub fn parse_weights(obj: &Value, target: &RouteTarget) -> Result<Weights, RoutingError> {
    let bad = |reason: String| RoutingError::bad_route(KIND, target, reason);
    let backends = obj["spec"]["backends"]
        .as_array()
        .ok_or_else(|| bad("spec.backends is missing".to_string()))?;
    let weighed = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let milli =
                weight_milli(&b["weight"]).map_err(|e| bad(format!("backends[{i}]: {e}")))?;
            Ok((b["service"].as_str().unwrap_or_default(), milli))
        })
        .collect::<Result<Vec<_>, RoutingError>>()?;
    percent_split(weighed, target).map_err(bad)
}

/// Whether the stored route `current` already is `desired` (see the module doc for "equal").
pub fn is_up_to_date(current: &Value, desired: &Value) -> bool {
    let same_backends = match (
        current["spec"]["backends"].as_array(),
        desired["spec"]["backends"].as_array(),
    ) {
        (Some(c), Some(d)) => {
            c.len() == d.len()
                && c.iter().zip(d).all(|(c, d)| {
                    c["service"] == d["service"]
                        && matches!(
                            (weight_milli(&c["weight"]), weight_milli(&d["weight"])),
                            (Ok(a), Ok(b)) if a == b
                        )
                })
        }
        _ => false,
    };
    let owned = is_owned_and_labelled(current, desired);
    same_backends && owned && current["spec"]["service"] == desired["spec"]["service"]
}

/// Routes by SMI TrafficSplit, in the newest version the cluster serves.
#[derive(Clone, Debug)]
pub struct SmiRouter {
    routes: RouteClient<SmiVersion>,
}

impl SmiRouter {
    /// A router on `client`, after discovering which TrafficSplit version is served. Neither
    /// being served is not an error here: every call then reports [`RoutingError::NotServed`]
    /// until linkerd-smi is installed.
    pub async fn new(client: kube::Client) -> Result<SmiRouter, RoutingError> {
        let version = discover(&client).await?;
        Ok(SmiRouter {
            routes: RouteClient::new(client, KIND, version),
        })
    }

    /// The version discovered so far (`None`: neither is served).
    pub fn cached_version(&self) -> Option<SmiVersion> {
        self.routes.cached()
    }

    /// The cached version, or the one discovered now.
    async fn rediscover(&self) -> Result<Option<SmiVersion>, RoutingError> {
        if let Some(v) = self.cached_version() {
            return Ok(Some(v));
        }
        let found = discover(self.routes.client()).await?;
        self.routes.set(found);
        Ok(found)
    }

    fn not_served(target: &RouteTarget) -> RoutingError {
        RoutingError::NotServed {
            router: RouterKind::Smi,
            route: target.key(),
        }
    }

    async fn current(
        &self,
        target: &RouteTarget,
        version: SmiVersion,
    ) -> Result<Option<Value>, RoutingError> {
        self.routes.get(target, &version.api_resource()).await
    }

    /// The served version and the stored route. A version that stopped being served also
    /// answers 404, so an absent route is confirmed by discovering again (this happens only
    /// before the route is first written, or after linkerd-smi changed).
    async fn stored(
        &self,
        target: &RouteTarget,
    ) -> Result<(SmiVersion, Option<Value>), RoutingError> {
        let version = self
            .rediscover()
            .await?
            .ok_or_else(|| Self::not_served(target))?;
        if let Some(obj) = self.current(target, version).await? {
            return Ok((version, Some(obj)));
        }
        let found = discover(self.routes.client()).await?;
        self.routes.set(found);
        match found {
            None => Err(Self::not_served(target)),
            Some(v) if v == version => Ok((v, None)),
            Some(v) => Ok((v, self.current(target, v).await?)),
        }
    }
}

/// The preferred TrafficSplit version the cluster serves, if any.
async fn discover(client: &kube::Client) -> Result<Option<SmiVersion>, RoutingError> {
    for version in SmiVersion::PREFERRED {
        let plurals = super::served::fetch_group_version(client, &version.api_version()).await?;
        if plurals.iter().any(|p| p == PLURAL) {
            return Ok(Some(version));
        }
    }
    Ok(None)
}

impl Router for SmiRouter {
    fn kind(&self) -> &'static str {
        RouterKind::Smi.as_str()
    }

    fn route_resource(&self) -> Option<ApiResource> {
        self.cached_version().map(SmiVersion::api_resource)
    }

    async fn unserved(&self) -> Result<Option<String>, RoutingError> {
        Ok(self
            .rediscover()
            .await?
            .is_none()
            .then(|| super::served::unserved_reason(RouterKind::Smi)))
    }

    async fn ensure(&self, target: &RouteTarget, split: Split) -> Result<(), RoutingError> {
        check_split(target, split)?;
        let weights = weights_only(target, split)?;
        let (version, current) = self.stored(target).await?;
        let desired = desired_trafficsplit(target, weights, version);
        if let Some(current) = current
            && is_up_to_date(&current, &desired)
        {
            return Ok(());
        }
        self.routes
            .apply(target, &version.api_resource(), &desired)
            .await
    }

    async fn remove(&self, target: &RouteTarget) -> Result<bool, RoutingError> {
        match self.cached_version() {
            Some(v) => self.routes.delete_ours(target, &v.api_resource()).await,
            None => Ok(false),
        }
    }

    async fn split(&self, target: &RouteTarget) -> Result<Option<Split>, RoutingError> {
        let (_, current) = self.stored(target).await?;
        current
            .map(|obj| parse_weights(&obj, target).map(Split::Weighted))
            .transpose()
    }
}

/// The weights of `split`; a matched split is an error, since a TrafficSplit cannot match
/// requests.
fn weights_only(target: &RouteTarget, split: Split) -> Result<Weights, RoutingError> {
    split.weights().ok_or_else(|| RoutingError::NoMatching {
        route: target.key(),
        reason: "an SMI TrafficSplit has no header matching; set sluice.dev/router: \
                 gateway-api (or nginx for an app exposed through an NGINX Ingress)"
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::objects::MANAGED_BY_LABEL;

    fn mk_target() -> RouteTarget {
        crate::routing::mk_target(RouterKind::Smi)
    }

    #[test]
    fn a_matched_split_is_refused_rather_than_written_as_weights() {
        let err = weights_only(&mk_target(), Split::Matched).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("shop/web"), "{msg}");
        assert!(msg.contains("no header matching"), "{msg}");
        assert!(msg.contains("sluice.dev/router: gateway-api"), "{msg}");
        assert_eq!(err.metric_label(), "no_matching");
        assert_eq!(
            weights_only(&mk_target(), Weights::AT_REST.into()).unwrap(),
            Weights::AT_REST
        );
    }

    fn split(backends: Value) -> Value {
        json!({"spec": {"service": "storefront", "backends": backends}})
    }

    fn w(primary: u32, canary: u32) -> Weights {
        Weights { primary, canary }
    }

    #[test]
    fn v1alpha2_split_has_integer_weights_primary_first() {
        let ts = desired_trafficsplit(&mk_target(), w(90, 10), SmiVersion::V1Alpha2);
        assert_eq!(ts["apiVersion"], "split.smi-spec.io/v1alpha2");
        assert_eq!(ts["kind"], "TrafficSplit");
        assert_eq!(ts["metadata"]["name"], "web");
        assert_eq!(ts["metadata"]["namespace"], "shop");
        assert_eq!(ts["metadata"]["labels"][MANAGED_BY_LABEL], "sluice");
        assert_eq!(
            ts["spec"],
            json!({"service": "storefront", "backends": [
                {"service": "web-primary", "weight": 90},
                {"service": "web-canary", "weight": 10},
            ]})
        );
    }

    #[test]
    fn v1alpha1_split_has_quantity_string_weights() {
        let ts = desired_trafficsplit(&mk_target(), Weights::AT_REST, SmiVersion::V1Alpha1);
        assert_eq!(ts["apiVersion"], "split.smi-spec.io/v1alpha1");
        assert_eq!(ts["spec"]["backends"][0]["weight"], "0");
        assert_eq!(ts["spec"]["backends"][1]["weight"], "100");
    }

    #[test]
    fn split_is_owned_by_the_deployment() {
        let ts = desired_trafficsplit(&mk_target(), w(50, 50), SmiVersion::V1Alpha2);
        let owner = &ts["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Deployment");
        assert_eq!(owner["name"], "web");
        assert_eq!(owner["uid"], "uid-web");
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
    }

    #[test]
    fn reads_back_what_either_version_writes() {
        for v in SmiVersion::PREFERRED {
            for weights in [w(90, 10), Weights::AT_REST, Weights::ALL_PRIMARY, w(1, 99)] {
                let ts = desired_trafficsplit(&mk_target(), weights, v);
                assert_eq!(parse_weights(&ts, &mk_target()).unwrap(), weights, "{v:?}");
            }
        }
    }

    #[test]
    fn relative_quantity_weights_are_normalised_to_percent() {
        let ts = split(json!([
            {"service": "web-primary", "weight": "900m"},
            {"service": "web-canary", "weight": "100m"},
        ]));
        assert_eq!(parse_weights(&ts, &mk_target()).unwrap(), w(90, 10));
        let ts = split(json!([
            {"service": "web-primary", "weight": 2},
            {"service": "web-canary", "weight": "1"},
        ]));
        assert_eq!(parse_weights(&ts, &mk_target()).unwrap(), w(67, 33));
    }

    #[test]
    fn a_missing_backend_takes_no_traffic() {
        let ts = split(json!([{"service": "web-canary", "weight": 5}]));
        assert_eq!(parse_weights(&ts, &mk_target()).unwrap(), Weights::AT_REST);
    }

    #[test]
    fn refuses_splits_that_send_traffic_elsewhere_or_nowhere() {
        let t = mk_target();
        let elsewhere = split(json!([
            {"service": "web-primary", "weight": 50},
            {"service": "other", "weight": 50},
        ]));
        let err = parse_weights(&elsewhere, &t).unwrap_err();
        assert_eq!(err.metric_label(), "bad_route");
        assert!(err.to_string().contains("\"other\" takes traffic"), "{err}");
        let nowhere = split(json!([
            {"service": "web-primary", "weight": "0"},
            {"service": "web-canary", "weight": 0},
        ]));
        assert!(parse_weights(&nowhere, &t).is_err());
        let twice = split(json!([
            {"service": "web-canary", "weight": 1},
            {"service": "web-canary", "weight": 1},
        ]));
        assert!(parse_weights(&twice, &t).is_err());
        assert!(parse_weights(&json!({"spec": {}}), &t).is_err());
        let huge = split(json!([
            {"service": "web-primary", "weight": "9999999999999999Ei"},
            {"service": "web-canary", "weight": "9999999999999999Ei"},
        ]));
        let err = parse_weights(&huge, &t).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[test]
    fn quantities_parse_like_kubernetes() {
        let q = |s: &str| weight_milli(&json!(s));
        assert_eq!(q("90"), Ok(90_000));
        assert_eq!(q("500m"), Ok(500));
        assert_eq!(q("0.5"), Ok(500));
        assert_eq!(q("1k"), Ok(1_000_000));
        assert_eq!(q("1Ki"), Ok(1_024_000));
        assert_eq!(q("5e2"), Ok(500_000));
        assert_eq!(q("1E"), Ok(1_000_000_000_000_000_000_000));
        assert_eq!(weight_milli(&json!(7)), Ok(7000));
        assert_eq!(weight_milli(&json!(0.25)), Ok(250));
    }

    #[test]
    fn garbage_weights_are_errors_naming_the_value() {
        for bad in ["-1", "ten", "", "1x", "1.2.3", "m"] {
            let err = weight_milli(&json!(bad)).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(weight_milli(&json!(-3)).is_err());
        assert!(weight_milli(&json!(null)).is_err());
    }

    #[test]
    fn a_route_with_the_same_weights_in_the_other_form_is_up_to_date() {
        let t = mk_target();
        let desired = desired_trafficsplit(&t, w(90, 10), SmiVersion::V1Alpha2);
        let stored = desired_trafficsplit(&t, w(90, 10), SmiVersion::V1Alpha1);
        assert!(is_up_to_date(&stored, &desired));
        let moved = desired_trafficsplit(&t, w(80, 20), SmiVersion::V1Alpha2);
        assert!(!is_up_to_date(&moved, &desired));
    }

    #[test]
    fn a_route_without_the_owner_or_label_or_apex_is_not_up_to_date() {
        let t = mk_target();
        let desired = desired_trafficsplit(&t, w(90, 10), SmiVersion::V1Alpha2);
        let mut orphan = desired.clone();
        orphan["metadata"]["ownerReferences"] = json!([]);
        assert!(!is_up_to_date(&orphan, &desired));
        let mut unlabelled = desired.clone();
        unlabelled["metadata"]["labels"] = json!({});
        assert!(!is_up_to_date(&unlabelled, &desired));
        let mut other_apex = desired.clone();
        other_apex["spec"]["service"] = json!("web");
        assert!(!is_up_to_date(&other_apex, &desired));
    }
}
