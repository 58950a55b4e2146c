//! Break-glass audit: the record the validating webhook hands over when `sluice.dev/break-glass`
//! lets a template change through a freeze, and the task that turns records into Events.
//!
//! ```text
//! admit::validate ──record_break_glass (try_send)──► channel ──► record_events ──► Event on app
//!       └─► tracing::warn! (reason, user), at once
//! ```
//!
//! The webhook never calls the API on the admission path (DESIGN §1): the Event is written by
//! this task, after the answer. Dry-run requests are never recorded.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

/// Reason of the Event a break-glass admission leaves on the Deployment.
pub const BREAK_GLASS_REASON: &str = "BreakGlass";

/// How many records may wait for the Event task before new ones are dropped (logged only).
pub const AUDIT_QUEUE: usize = 256;

/// A template change let through a freeze window by `sluice.dev/break-glass`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakGlass {
    pub namespace: String,
    pub deployment: String,
    /// The user who sent the update.
    pub user: String,
    /// The annotation's value.
    pub reason: String,
    /// The freeze window the change went through, as written.
    pub window: String,
}

impl BreakGlass {
    /// The Event's note, for a person reading `kubectl describe`.
    pub fn note(&self) -> String {
        format!(
            "{} changed the pod template during the freeze window {} with sluice.dev/break-glass: {:?}",
            self.user, self.window, self.reason
        )
    }
}

/// Writes every record received on `rx` as a Warning Event on its Deployment, until every
/// sender is dropped. Failures are logged; the admission already happened.
pub async fn record_events(
    client: kube::Client,
    reporter: Reporter,
    mut rx: mpsc::Receiver<BreakGlass>,
) {
    let recorder = Recorder::new(client, reporter);
    while let Some(record) = rx.recv().await {
        let reference = ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: Some(record.deployment.clone()),
            namespace: Some(record.namespace.clone()),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: BREAK_GLASS_REASON.into(),
            note: Some(record.note()),
            action: "Admit".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(
                deployment = %format!("{}/{}", record.namespace, record.deployment),
                "publishing the break-glass Event: {e}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_the_user_the_window_and_the_reason() {
        let r = BreakGlass {
            namespace: "shop".into(),
            deployment: "web".into(),
            user: "alice".into(),
            reason: "INC-42 hotfix".into(),
            window: "Sat 00:00-Mon 06:00 UTC".into(),
        };
        assert_eq!(
            r.note(),
            "alice changed the pod template during the freeze window Sat 00:00-Mon 06:00 UTC with sluice.dev/break-glass: \"INC-42 hotfix\""
        );
    }
}
