//! Admission call-outs, as kube-apiserver makes them: Mutating then Validating
//! WebhookConfigurations, AdmissionReview v1 over HTTPS.
//!
//! BASE-COMMIT PLACEHOLDER: no webhook is called until this module lands.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::resources::ResourceKind;
use super::status::ApiError;

/// The authenticated user, as it appears in `request.userInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// Everything the server knows about one write that admission needs.
#[derive(Clone, Debug)]
pub struct AdmissionAttributes {
    /// The resource addressed (for `deployments/scale`, the Deployment's kind entry).
    pub kind: ResourceKind,
    /// `scale`, `status`, or `None` for the main resource.
    pub sub_resource: Option<String>,
    /// The object's own kind when it differs from `kind.kind` (for `scale`:
    /// `("autoscaling", "v1", "Scale")`).
    pub object_kind: Option<(String, String, String)>,
    pub operation: Operation,
    pub name: String,
    pub namespace: Option<String>,
    pub user: UserInfo,
    pub dry_run: bool,
    /// `CreateOptions`, `UpdateOptions`, `PatchOptions` or `DeleteOptions` as sent.
    pub options: Option<Value>,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    /// Labels of the object's Namespace (or of the Namespace itself), for `namespaceSelector`.
    pub namespace_labels: BTreeMap<String, String>,
}

/// A `service` clientConfig reference: namespace, name and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: u16,
}

/// Resolves a webhook's `service` reference to a local address.
pub type ServiceResolver = Arc<dyn Fn(&ServiceRef) -> Option<SocketAddr> + Send + Sync>;

/// The outcome of the mutating phase: the (possibly patched) object and webhook warnings.
#[derive(Clone, Debug, Default)]
pub struct Admitted {
    pub object: Option<Value>,
    pub warnings: Vec<String>,
}

/// Calls registered webhooks.
pub struct Admitter {
    _resolver: ServiceResolver,
}

impl Admitter {
    pub fn new(resolver: ServiceResolver) -> Self {
        Self {
            _resolver: resolver,
        }
    }

    /// Runs the mutating webhooks of `configs` (MutatingWebhookConfiguration objects) in order.
    pub async fn mutate(
        &self,
        _configs: &[Value],
        attrs: &AdmissionAttributes,
    ) -> Result<Admitted, ApiError> {
        Ok(Admitted {
            object: attrs.object.clone(),
            warnings: Vec::new(),
        })
    }

    /// Runs the validating webhooks of `configs` (ValidatingWebhookConfiguration objects).
    pub async fn validate(
        &self,
        _configs: &[Value],
        _attrs: &AdmissionAttributes,
    ) -> Result<Vec<String>, ApiError> {
        Ok(Vec::new())
    }
}
