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

/// The kind of a validation failure (`field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CauseKind {
    Invalid,
    TypeInvalid,
    Required,
    NotSupported,
    Duplicate,
    Forbidden,
    TooLong,
    TooMany,
}

impl CauseKind {
    /// The cause `reason` in the Status details.
    pub fn reason(self) -> &'static str {
        match self {
            CauseKind::Invalid => "FieldValueInvalid",
            CauseKind::TypeInvalid => "FieldValueTypeInvalid",
            CauseKind::Required => "FieldValueRequired",
            CauseKind::NotSupported => "FieldValueNotSupported",
            CauseKind::Duplicate => "FieldValueDuplicate",
            CauseKind::Forbidden => "FieldValueForbidden",
            CauseKind::TooLong => "FieldValueTooLong",
            CauseKind::TooMany => "FieldValueTooMany",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CauseKind::Invalid | CauseKind::TypeInvalid => "Invalid value",
            CauseKind::Required => "Required value",
            CauseKind::NotSupported => "Unsupported value",
            CauseKind::Duplicate => "Duplicate value",
            CauseKind::Forbidden => "Forbidden",
            CauseKind::TooLong => "Too long",
            CauseKind::TooMany => "Too many",
        }
    }

    /// Kinds whose message leaves the bad value out.
    fn omits_value(self) -> bool {
        matches!(
            self,
            CauseKind::Required | CauseKind::Forbidden | CauseKind::TooLong
        )
    }
}

/// One invalid field.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    pub kind: CauseKind,
    pub field: String,
    pub value: Option<Value>,
    pub text: String,
}

impl Cause {
    pub fn new(
        kind: CauseKind,
        field: String,
        value: Option<Value>,
        text: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            field,
            value,
            text: text.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, value: &Value, text: impl Into<String>) -> Self {
        Self::new(CauseKind::Invalid, field.into(), Some(value.clone()), text)
    }

    pub fn required(field: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(CauseKind::Required, field.into(), None, text)
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Self::new(
            CauseKind::NotSupported,
            field.into(),
            Some(value.clone()),
            format!("supported values: {}", list.join(", ")),
        )
    }

    /// The cause message: `Invalid value: "Bad_Name": a lowercase RFC 1123 ...`.
    pub fn detail(&self) -> String {
        let mut s = self.kind.label().to_string();
        if !self.kind.omits_value() {
            s.push_str(": ");
            s.push_str(&render_value(self.value.as_ref()));
        }
        if !self.text.is_empty() {
            s.push_str(": ");
            s.push_str(&self.text);
        }
        s
    }
}

/// How `field.Error` prints a bad value: strings quoted, numbers and booleans bare, the rest
/// as JSON.
fn render_value(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "null".to_string(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
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

    /// The 422 kube-apiserver answers: `Deployment.apps "x" is invalid: <field>: <detail>`
    /// (`Service "x" is invalid: ...` for the core group).
    pub fn invalid(kind: &ResourceKind, name: &str, causes: &[Cause]) -> Self {
        let mut unique: Vec<&Cause> = Vec::new();
        for c in causes {
            if !unique.contains(&c) {
                unique.push(c);
            }
        }
        let parts: Vec<String> = unique
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.detail()
                } else {
                    format!("{}: {}", c.field, c.detail())
                }
            })
            .collect();
        let summary = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let qualified = if kind.group.is_empty() {
            kind.kind.to_string()
        } else {
            format!("{}.{}", kind.kind, kind.group)
        };
        let mut details = json!({"name": name, "kind": kind.kind});
        if !kind.group.is_empty() {
            details["group"] = json!(kind.group);
        }
        details["causes"] = unique
            .iter()
            .map(|c| json!({"reason": c.kind.reason(), "message": c.detail(), "field": c.field}))
            .collect();
        ApiError::new(
            422,
            "Invalid",
            format!("{qualified} {name:?} is invalid: {summary}"),
        )
        .with_details(details)
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
