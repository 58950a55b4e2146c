//! The AdmissionReview as the webhook reads it: only the fields a decision needs.
//!
//! A Deployment update review is 8-14 KB, most of it `managedFields`, `status` and kubectl's
//! `last-applied-configuration`, twice (object and oldObject). Parsing it into
//! `AdmissionReview<DynamicObject>` would build all of that as owned values on every call;
//! [`Review::from_slice`] skips it instead (serde's `IgnoredAny`, which only scans) and keeps
//! labels, the `sluice.dev/` annotations, `spec.paused`, and `spec.template` as the JSON text
//! it arrived in ([`Template`]): most updates leave the template byte-equal, and only a changed
//! one is ever parsed (see [`revision`](mod@super::revision)). Responses are kube's own
//! [`AdmissionResponse`](kube::core::admission::AdmissionResponse).

use std::collections::BTreeMap;
use std::fmt;

use kube::core::admission::Operation;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use super::revision::Template;
use crate::policy::keys::PREFIX;

/// `admission.k8s.io/v1`, the version Sluice registers and answers in.
pub const ADMISSION_V1: &str = "admission.k8s.io/v1";

/// An AdmissionReview as received.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// `admission.k8s.io/v1` (the response echoes it).
    #[serde(default)]
    pub api_version: String,
    /// Absent in a malformed review, which is answered with an error response.
    #[serde(default)]
    pub request: Option<Request>,
}

impl Review {
    /// Parses a review body. The error says what is wrong with it.
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// `request` of an AdmissionReview.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Echoed in the response.
    pub uid: String,
    /// The kind of the object (`autoscaling/v1 Scale` for the scale subresource).
    pub kind: GroupVersionKind,
    /// The resource addressed (`apps/v1 deployments`).
    pub resource: GroupVersionResource,
    /// `scale`, `status`, or absent for the main resource.
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: Operation,
    pub user_info: UserInfo,
    #[serde(default)]
    pub object: Option<Object>,
    #[serde(default)]
    pub old_object: Option<Object>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl Request {
    /// `apps/v1 deployments`, the main resource (no subresource).
    pub fn is_deployment(&self) -> bool {
        self.resource.group == "apps"
            && self.resource.version == "v1"
            && self.resource.resource == "deployments"
            && self.kind.kind == "Deployment"
            && self.sub_resource.as_deref().is_none_or(str::is_empty)
    }

    /// `NAMESPACE/NAME`, for messages.
    pub fn object_ref(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// `group`, `version`, `kind`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

/// `group`, `version`, `resource`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct GroupVersionResource {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub resource: String,
}

/// `request.userInfo`; only the user name matters to Sluice.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
}

/// The parts of an object (Deployment or Scale) that admission decisions read.
#[derive(Clone, Debug, Default)]
pub struct Object {
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The `sluice.dev/` annotations only; others are skipped while parsing.
    pub annotations: BTreeMap<String, String>,
    /// Whether `metadata.annotations` exists at all (a JSON patch must create it if not).
    pub has_annotations: bool,
    /// `spec.paused`.
    pub paused: Option<bool>,
    /// `spec.template`, as received.
    pub template: Option<Template>,
    // --- Read for enforcement (DESIGN §6), beside the Deployment fields above ---------------
    /// `data` of a ConfigMap (the `sluice-policy` keys); empty for other kinds.
    pub data: BTreeMap<String, String>,
    /// `spec.selector` as sent: a Service's label map, a Deployment's LabelSelector.
    pub selector: Option<serde_json::Value>,
    /// `metadata.ownerReferences` entries that are a controlling Deployment, by name.
    pub controller_deployment: Option<String>,
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            metadata: Option<Meta>,
            #[serde(default)]
            spec: Option<Spec>,
            // --- enforcement (DESIGN §6) ---
            #[serde(default)]
            data: Option<BTreeMap<String, String>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Meta {
            #[serde(default)]
            labels: Option<BTreeMap<String, String>>,
            #[serde(default)]
            annotations: Option<SluiceAnnotations>,
            // --- enforcement (DESIGN §6) ---
            #[serde(default)]
            owner_references: Option<Vec<Owner>>,
        }
        #[derive(Deserialize)]
        struct Spec {
            #[serde(default)]
            paused: Option<bool>,
            #[serde(default)]
            template: Option<Template>,
            // --- enforcement (DESIGN §6) ---
            #[serde(default)]
            selector: Option<serde_json::Value>,
        }
        #[derive(Deserialize)]
        struct Owner {
            #[serde(default)]
            kind: String,
            #[serde(default)]
            name: String,
            #[serde(default)]
            controller: Option<bool>,
        }
        let raw = Raw::deserialize(d)?;
        let (labels, annotations, owners) = raw
            .metadata
            .map(|m| {
                (
                    m.labels.unwrap_or_default(),
                    m.annotations,
                    m.owner_references,
                )
            })
            .unwrap_or_default();
        let spec = raw.spec.unwrap_or(Spec {
            paused: None,
            template: None,
            selector: None,
        });
        // --- enforcement (DESIGN §6) ---
        let controller_deployment = owners
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.kind == "Deployment" && o.controller == Some(true))
            .map(|o| o.name);
        Ok(Object {
            labels,
            has_annotations: annotations.is_some(),
            annotations: annotations.map(|a| a.0).unwrap_or_default(),
            paused: spec.paused,
            template: spec.template,
            data: raw.data.unwrap_or_default(),
            selector: spec.selector,
            controller_deployment,
        })
    }
}

/// `metadata.annotations`, keeping only the `sluice.dev/` keys.
struct SluiceAnnotations(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for SluiceAnnotations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keep;
        impl<'de> Visitor<'de> for Keep {
            type Value = SluiceAnnotations;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of annotation keys to string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut kept = BTreeMap::new();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key.starts_with(PREFIX) {
                        kept.insert(key.into_owned(), map.next_value::<String>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(SluiceAnnotations(kept))
            }
        }
        d.deserialize_map(Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: &str =
        include_str!("../../tests/fixtures/admission/deployment-update-image.json");
    const SCALE: &str =
        include_str!("../../tests/fixtures/admission/deployment-scale-subresource.json");

    #[test]
    fn reads_what_a_decision_needs_from_a_captured_update() {
        let review = Review::from_slice(UPDATE.as_bytes()).unwrap();
        assert_eq!(review.api_version, ADMISSION_V1);
        let req = review.request.unwrap();
        assert_eq!(req.uid, "7a532e0f-89cf-4d7b-82e7-738e5e714fed");
        assert!(req.is_deployment());
        assert_eq!(req.operation, Operation::Update);
        assert_eq!(req.user_info.username, "admin");
        assert_eq!(req.object_ref(), "shop/podinfo");
        let new = req.object.unwrap();
        assert_eq!(new.labels.get("app").map(String::as_str), Some("podinfo"));
        assert!(new.has_annotations);
        assert!(new.annotations.is_empty(), "{:?}", new.annotations);
        let image = &new.template.unwrap().to_value().unwrap()["spec"]["containers"][0]["image"];
        assert!(image.as_str().unwrap().ends_with("6.0.1"), "{image}");
    }

    #[test]
    fn the_scale_subresource_is_not_the_deployment() {
        let req = Review::from_slice(SCALE.as_bytes())
            .unwrap()
            .request
            .unwrap();
        assert!(!req.is_deployment());
    }

    #[test]
    fn keeps_only_sluice_annotations_and_notices_missing_ones() {
        let o: Object = serde_json::from_str(
            r#"{"metadata":{"annotations":{"a":"1","sluice.dev/retry":"true"}},"spec":{"paused":true}}"#,
        )
        .unwrap();
        assert_eq!(
            o.annotations,
            BTreeMap::from([("sluice.dev/retry".to_string(), "true".to_string())])
        );
        assert_eq!(o.paused, Some(true));
        let bare: Object = serde_json::from_str(r#"{"metadata":{"annotations":null}}"#).unwrap();
        assert!(!bare.has_annotations);
    }

    #[test]
    fn reads_configmap_data_service_selectors_and_the_controlling_deployment() {
        let o: Object = serde_json::from_str(
            r#"{"metadata":{"ownerReferences":[{"kind":"ReplicaSet","name":"x","controller":false},
                {"kind":"Deployment","name":"web","controller":true}]},
                "spec":{"selector":{"app":"web"}},"data":{"interval":"2m"}}"#,
        )
        .unwrap();
        assert_eq!(o.controller_deployment.as_deref(), Some("web"));
        assert_eq!(o.selector, Some(serde_json::json!({"app": "web"})));
        assert_eq!(o.data.get("interval").map(String::as_str), Some("2m"));
    }

    #[test]
    fn a_malformed_body_is_an_error() {
        assert!(Review::from_slice(b"{\"request\": 5}").is_err());
        assert!(Review::from_slice(b"not json").is_err());
    }
}
