//! Defaulting and validation for the kinds the sandbox serves, as kube-apiserver applies them.
//!
//! BASE-COMMIT PLACEHOLDER: no defaulting or validation until this module lands.

use serde_json::Value;

use super::resources::ResourceKind;
use super::status::ApiError;

/// Fills in the defaults kube-apiserver sets on create and update.
pub fn default_object(_kind: &ResourceKind, _obj: &mut Value) {}

/// Validates an object about to be stored (`old` is the stored one on update).
pub fn validate(_kind: &ResourceKind, _obj: &Value, _old: Option<&Value>) -> Result<(), ApiError> {
    Ok(())
}
