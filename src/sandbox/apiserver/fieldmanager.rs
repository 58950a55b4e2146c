//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! BASE-COMMIT PLACEHOLDER: no ownership tracking until the field manager lands.

use serde_json::Value;

use super::status::ApiError;

/// Records, in `new.metadata.managedFields`, the fields `manager` owns after an Update
/// (create, update, merge/JSON/strategic patch) of `old` into `new`.
pub fn record_update(
    _old: Option<&Value>,
    _new: &mut Value,
    _manager: &str,
    _api_version: &str,
    _subresource: Option<&str>,
    _now: &str,
) {
}

/// Server-side apply of `applied` by `manager` onto `live` (`None` when the object does not
/// exist yet). Returns the merged object with managedFields updated, or a 409 `Conflict`
/// with one `FieldManagerConflict` cause per contested field when `force` is false.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    _manager: &str,
    _force: bool,
    _api_version: &str,
    _now: &str,
) -> Result<Value, ApiError> {
    let mut out = live.cloned().unwrap_or(Value::Null);
    json_patch::merge(&mut out, applied);
    Ok(out)
}
