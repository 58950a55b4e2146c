//! Kubernetes `Status` errors, worded exactly as kube-apiserver v1.36 words them
//! (`../shared/fixtures/apiserver/responses.json` is the reference).

use serde_json::{Value, json};

use super::resources::ResourceKind;

/// An error answered as a `Status` object with an HTTP code.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, ... (may be empty, as
    /// kube-apiserver leaves it for webhook denials).
    pub reason: String,
    pub message: String,
    /// `details` as kube-apiserver fills it, if any.
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

fn details(kind: &ResourceKind, name: &str, kind_field: &str) -> Value {
    let mut d = json!({ "name": name, "kind": kind_field });
    if !kind.group.is_empty() {
        d["group"] = json!(kind.group);
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `deployments.apps "nope" not found`
    pub fn not_found(kind: &ResourceKind, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.group_resource()),
        )
        .with_details(details(kind, name, kind.plural))
    }

    /// `deployments.apps "podinfo" already exists`
    pub fn already_exists(kind: &ResourceKind, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.group_resource()),
        )
        .with_details(details(kind, name, kind.plural))
    }

    /// The optimistic-concurrency conflict of an update with a stale resourceVersion.
    pub fn conflict(kind: &ResourceKind, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                kind.group_resource()
            ),
        )
        .with_details(details(kind, name, kind.plural))
    }

    /// 422 with one cause per invalid field: `(field, detail)` where detail reads
    /// `Invalid value: "Bad_Name": ...` or `Required value`.
    pub fn invalid(kind: &ResourceKind, name: &str, causes: &[(String, String)]) -> Self {
        let summary = causes
            .iter()
            .map(|(field, detail)| format!("{field}: {detail}"))
            .collect::<Vec<_>>()
            .join(", ");
        let summary = if causes.len() > 1 {
            format!("[{summary}]")
        } else {
            summary
        };
        let mut d = details(kind, name, kind.kind);
        d["causes"] = causes
            .iter()
            .map(|(field, detail)| json!({ "reason": "FieldValueInvalid", "message": detail, "field": field }))
            .collect();
        Self::new(
            422,
            "Invalid",
            format!(
                "{}.{} \"{name}\" is invalid: {summary}",
                kind.kind,
                kind.group_or_core()
            ),
        )
        .with_details(d)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(415, "UnsupportedMediaType", "415: Unsupported Media Type")
            .with_details(json!({}))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// The watch error for a resourceVersion older than the retained history.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// The `Status` object kube-apiserver sends.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            s["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}
