//! Strategic merge patch (`application/strategic-merge-patch+json`), as kubectl's client-side
//! apply sends it.
//!
//! BASE-COMMIT PLACEHOLDER: plain JSON merge semantics until the strategic merge lands.

use serde_json::Value;

/// Why a strategic merge patch could not be applied (answered as 422/400 by the server).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

/// Applies `patch` to `original` with strategic-merge semantics and returns the result.
pub fn strategic_merge(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let mut out = original.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}
