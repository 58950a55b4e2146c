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
//! - "Equal" means: same apex, the two backends in order with the same weights (compared as
//!   quantities, so `"90"` equals `90`), the managed-by label and the owner reference to `app`.
//!   Fields others added are left alone.

use std::sync::{Arc, Mutex};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::{FIELD_MANAGER, RouteTarget, Router, RoutingError, Weights};
use crate::controller::objects::{MANAGED_BY, MANAGED_BY_LABEL};

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
        "metadata": {
            "name": target.name,
            "namespace": target.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [target.owner],
        },
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
    let bad = |reason: String| RoutingError::BadRoute {
        kind: KIND.to_string(),
        route: target.key(),
        primary: target.primary_service.clone(),
        canary: target.canary_service.clone(),
        reason,
    };
    let backends = obj["spec"]["backends"]
        .as_array()
        .ok_or_else(|| bad("spec.backends is missing".to_string()))?;
    let (mut primary, mut canary) = (None, None);
    for (i, b) in backends.iter().enumerate() {
        let service = b["service"].as_str().unwrap_or_default();
        let milli = weight_milli(&b["weight"]).map_err(|e| bad(format!("backends[{i}]: {e}")))?;
        let slot = if service == target.primary_service {
            &mut primary
        } else if service == target.canary_service {
            &mut canary
        } else if milli > 0 {
            return Err(bad(format!(
                "backend {service:?} takes traffic but is neither of the two"
            )));
        } else {
            continue;
        };
        if slot.replace(milli).is_some() {
            return Err(bad(format!("backend {service:?} is listed twice")));
        }
    }
    let (p, c) = (primary.unwrap_or(0), canary.unwrap_or(0));
    let too_large = || bad("the weights are too large to compare".to_string());
    let total = p.checked_add(c).ok_or_else(too_large)?;
    if total == 0 {
        return Err(bad("no backend has a weight above 0".to_string()));
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
    let owner_uid = &desired["metadata"]["ownerReferences"][0]["uid"];
    let owned = current["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| &r["uid"] == owner_uid));
    same_backends
        && owned
        && current["spec"]["service"] == desired["spec"]["service"]
        && current["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
}

/// Routes by SMI TrafficSplit, in the newest version the cluster serves.
#[derive(Clone)]
pub struct SmiRouter {
    client: kube::Client,
    version: Arc<Mutex<Option<SmiVersion>>>,
}

impl std::fmt::Debug for SmiRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmiRouter")
            .field("version", &self.cached_version())
            .finish_non_exhaustive()
    }
}

impl SmiRouter {
    /// A router on `client`, after discovering which TrafficSplit version is served. Neither
    /// being served is not an error here: every call then reports [`RoutingError::NotServed`]
    /// until linkerd-smi is installed.
    pub async fn new(client: kube::Client) -> Result<SmiRouter, RoutingError> {
        let version = discover(&client).await?;
        Ok(SmiRouter {
            client,
            version: Arc::new(Mutex::new(version)),
        })
    }

    /// The version discovered so far (`None`: neither is served).
    pub fn cached_version(&self) -> Option<SmiVersion> {
        *self.version.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_version(&self, v: Option<SmiVersion>) {
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    async fn version(&self, target: &RouteTarget) -> Result<SmiVersion, RoutingError> {
        if let Some(v) = self.cached_version() {
            return Ok(v);
        }
        let found = discover(&self.client).await?;
        self.set_version(found);
        found.ok_or_else(|| RoutingError::NotServed {
            route: target.key(),
        })
    }

    fn api(&self, target: &RouteTarget, version: SmiVersion) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &target.namespace,
            &version.api_resource(),
        )
    }

    fn api_error(&self, verb: &'static str, target: &RouteTarget, e: kube::Error) -> RoutingError {
        if matches!(&e, kube::Error::Api(s) if s.code == 404) {
            // The version went away (a 404 on a get is mapped to None before this).
            self.set_version(None);
        }
        RoutingError::Api {
            verb,
            kind: KIND.to_string(),
            route: target.key(),
            source: Box::new(e),
        }
    }

    async fn current(
        &self,
        target: &RouteTarget,
        version: SmiVersion,
    ) -> Result<Option<Value>, RoutingError> {
        let obj = self
            .api(target, version)
            .get_opt(&target.name)
            .await
            .map_err(|e| self.api_error("get", target, e))?;
        Ok(obj.map(|o| serde_json::to_value(o).expect("a DynamicObject serialises")))
    }

    /// The served version and the stored route. A version that stopped being served also
    /// answers 404, so an absent route is confirmed by discovering again (this happens only
    /// before the route is first written, or after linkerd-smi changed).
    async fn stored(
        &self,
        target: &RouteTarget,
    ) -> Result<(SmiVersion, Option<Value>), RoutingError> {
        let version = self.version(target).await?;
        if let Some(obj) = self.current(target, version).await? {
            return Ok((version, Some(obj)));
        }
        let found = discover(&self.client).await?;
        self.set_version(found);
        match found {
            None => Err(RoutingError::NotServed {
                route: target.key(),
            }),
            Some(v) if v == version => Ok((v, None)),
            Some(v) => Ok((v, self.current(target, v).await?)),
        }
    }
}

/// The preferred TrafficSplit version the cluster serves, if any.
async fn discover(client: &kube::Client) -> Result<Option<SmiVersion>, RoutingError> {
    for version in SmiVersion::PREFERRED {
        match client
            .list_api_group_resources(&version.api_version())
            .await
        {
            Ok(list) if list.resources.iter().any(|r| r.name == PLURAL) => {
                return Ok(Some(version));
            }
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(RoutingError::Discovery {
                    group_version: version.api_version(),
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(None)
}

impl Router for SmiRouter {
    fn kind(&self) -> &'static str {
        "smi"
    }

    fn route_resource(&self) -> Option<ApiResource> {
        self.cached_version().map(SmiVersion::api_resource)
    }

    async fn ensure(&self, target: &RouteTarget, weights: Weights) -> Result<(), RoutingError> {
        if !weights.is_valid() {
            return Err(RoutingError::InvalidWeights {
                route: target.key(),
                weights,
            });
        }
        let (version, current) = self.stored(target).await?;
        let desired = desired_trafficsplit(target, weights, version);
        if let Some(current) = current
            && is_up_to_date(&current, &desired)
        {
            return Ok(());
        }
        self.api(target, version)
            .patch(
                &target.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await
            .map_err(|e| self.api_error("apply", target, e))?;
        Ok(())
    }

    async fn weights(&self, target: &RouteTarget) -> Result<Option<Weights>, RoutingError> {
        let (_, current) = self.stored(target).await?;
        current.map(|obj| parse_weights(&obj, target)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn mk_target() -> RouteTarget {
        RouteTarget {
            namespace: "shop".into(),
            name: "web".into(),
            apex: "storefront".into(),
            primary_service: "web-primary".into(),
            canary_service: "web-canary".into(),
            port: Some(80),
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
