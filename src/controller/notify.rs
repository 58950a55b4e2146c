//! Alerts (`notify`, cluster policy only): Succeeded, Failed, rollout-stuck and analysis-error
//! messages to a Slack-compatible incoming webhook, a generic JSON webhook, or both.
//!
//! ```text
//! machine::decide ── Events of this transition ──► alerts (pure) ──► render (pure) ──► POST (background)
//! ```
//!
//! Alerts follow the Events, which the machine emits once per transition, so each is sent once:
//! - `Succeeded`: the `Succeeded` Event (promotion done).
//! - `Failed`: the `RolledBack` Event (the rollback is done; its reason is the status message).
//! - `Stuck`: a `RollingBack` Event caused by readiness (the canary, or the primary, not ready by
//!   `progress-deadline`, or failed to roll out). Flagger users get nothing in that case
//!   (fluxcd/flagger #1663); here it alerts when the rollback starts, before `Failed`.
//! - `AnalysisError`: a `CheckFailed` Event where a check failed without a measurement
//!   (Prometheus unreachable, a query error, NaN or an empty result, a hook that could not be
//!   called): the failure is the tooling's, not necessarily the canary's, so a person should look.
//!
//! Each message carries the Deployment, the revision, the phase, the reason and the figures (the
//! last verdicts). A receiver that fails is logged and not retried: alerts never hold a rollout.

use serde_json::{Value, json};

use super::machine::Event;
use super::status::{CheckResult, CheckVerdict, RolloutStatus};
use crate::analysis::checks;
use crate::policy::values::{NotifyKind, NotifySpec};

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertKind {
    Succeeded,
    Failed,
    /// The canary (or the primary) did not become ready.
    Stuck,
    /// A check failed because it could not measure.
    AnalysisError,
}

impl AlertKind {
    /// `succeeded`, `failed`, `rollout-stuck`, `analysis-error`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Succeeded => "succeeded",
            AlertKind::Failed => "failed",
            AlertKind::Stuck => "rollout-stuck",
            AlertKind::AnalysisError => "analysis-error",
        }
    }
}

/// One alert, with what a person needs to act on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub kind: AlertKind,
    pub namespace: String,
    pub name: String,
    /// The revision rolled out (the refused one after a rollback).
    pub revision: String,
    pub phase: String,
    /// The Event's words.
    pub reason: String,
    /// The last verdicts.
    pub figures: Vec<CheckVerdict>,
}

/// Which Deployment the alerts are about.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

/// The alerts a decision's Events call for.
pub fn alerts(subject: Subject<'_>, status: &RolloutStatus, events: &[Event]) -> Vec<Alert> {
    events
        .iter()
        .filter_map(|e| {
            let kind = match e.reason {
                "Succeeded" => AlertKind::Succeeded,
                "RolledBack" => AlertKind::Failed,
                "RollingBack" if is_readiness(&e.message) => AlertKind::Stuck,
                "CheckFailed" if status.last_verdicts.iter().any(unmeasured) => {
                    AlertKind::AnalysisError
                }
                _ => return None,
            };
            let revision = match kind {
                AlertKind::Failed => status.failed_revision.clone(),
                _ => status.revision.clone(),
            };
            Some(Alert {
                kind,
                namespace: subject.namespace.to_string(),
                name: subject.name.to_string(),
                revision: revision.unwrap_or_default(),
                phase: status.phase.as_str().to_string(),
                reason: e.message.clone(),
                figures: status.last_verdicts.clone(),
            })
        })
        .collect()
}

/// Whether a rollback's words say a version was not ready (the machine's wording).
fn is_readiness(message: &str) -> bool {
    [
        "did not become ready",
        "was not ready within",
        "failed to roll out",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// A check that failed without a measurement: the tooling failed, not (known to be) the canary.
fn unmeasured(v: &CheckVerdict) -> bool {
    v.result == CheckResult::Fail && v.value.is_none()
}

/// The body for a receiver: Slack's `{"text"}` (plain words, read in a channel), or the alert as
/// JSON for a machine.
pub fn render(alert: &Alert, kind: NotifyKind) -> Value {
    match kind {
        NotifyKind::Slack => {
            let rev = &alert.revision[..alert.revision.len().min(10)];
            let mut text = format!(
                "[{}] {}/{} revision {rev} ({}): {}",
                alert.kind.as_str(),
                alert.namespace,
                alert.name,
                alert.phase,
                alert.reason
            );
            if !alert.figures.is_empty() {
                text.push_str(&format!(
                    "\nlast checks: {}",
                    checks::summary(&alert.figures)
                ));
            }
            json!({ "text": text })
        }
        NotifyKind::Json => json!({
            "kind": alert.kind.as_str(),
            "namespace": alert.namespace,
            "name": alert.name,
            "revision": alert.revision,
            "phase": alert.phase,
            "reason": alert.reason,
            "figures": alert.figures,
        }),
    }
}

/// Sends every alert to every receiver, in the background; a failure is logged.
pub fn send_in_background(receivers: &[NotifySpec], alerts: Vec<Alert>) {
    for alert in alerts {
        for r in receivers {
            let (url, body) = (r.url.clone(), render(&alert, r.kind));
            let what = format!(
                "{} alert for {}/{}",
                alert.kind.as_str(),
                alert.namespace,
                alert.name
            );
            tokio::spawn(async move {
                if let Err(e) = post(&url, &body).await {
                    tracing::warn!("sending the {what} to {url}: {e}");
                }
            });
        }
    }
}

/// POSTs one alert; a non-2xx answer is an error.
pub async fn post(url: &str, body: &Value) -> Result<(), String> {
    let response = crate::analysis::hooks::http_client()
        .post(url)
        .timeout(ALERT_TIMEOUT)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match response.status() {
        s if s.is_success() => Ok(()),
        s => Err(format!("the receiver answered {s}")),
    }
}

/// How long a receiver may take.
const ALERT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use axum::Json;
    use axum::extract::State;
    use axum::routing::post as route_post;

    use super::*;
    use crate::controller::machine::EventType;
    use crate::controller::status::Phase;

    const SUBJECT: Subject<'static> = Subject {
        namespace: "shop",
        name: "app",
    };

    fn mk_status(phase: Phase) -> RolloutStatus {
        let mut s = RolloutStatus::new(phase, SystemTime::UNIX_EPOCH + Duration::from_secs(1));
        s.revision = Some("aaaaaaaaaaaa1111".into());
        s
    }

    fn mk_event(reason: &'static str, message: &str) -> Event {
        Event {
            kind: EventType::Warning,
            reason,
            message: message.into(),
        }
    }

    fn failed(name: &str, value: Option<f64>) -> CheckVerdict {
        CheckVerdict {
            name: name.into(),
            result: CheckResult::Fail,
            value,
            detail: "Prometheus at http://prom/ is unreachable".into(),
            baseline: None,
        }
    }

    #[test]
    fn a_canary_that_never_becomes_ready_alerts_when_its_rollback_starts() {
        let s = mk_status(Phase::RollingBack);
        let a = alerts(
            SUBJECT,
            &s,
            &[mk_event(
                "RollingBack",
                "the new version was not ready within progress-deadline 10m; sending all traffic back",
            )],
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].kind, AlertKind::Stuck);
        assert_eq!(a[0].revision, "aaaaaaaaaaaa1111");
        // A rollback for failed checks waits for the Failed alert.
        let a = alerts(
            SUBJECT,
            &s,
            &[mk_event(
                "RollingBack",
                "2 failed checks reached threshold 2",
            )],
        );
        assert!(a.is_empty());
    }

    #[test]
    fn succeeded_and_rolled_back_alert_and_other_events_do_not() {
        let mut s = mk_status(Phase::Failed);
        s.failed_revision = Some("cccccccccccc3333".into());
        let a = alerts(SUBJECT, &s, &[mk_event("RolledBack", "rolled back: ...")]);
        assert_eq!(
            (a[0].kind, a[0].revision.as_str()),
            (AlertKind::Failed, "cccccccccccc3333")
        );
        let s = mk_status(Phase::Succeeded);
        let a = alerts(
            SUBJECT,
            &s,
            &[
                mk_event("Succeeded", "promoted"),
                mk_event("Advanced", "weight 10% → 20%"),
            ],
        );
        assert_eq!(
            a.iter().map(|a| a.kind).collect::<Vec<_>>(),
            vec![AlertKind::Succeeded]
        );
    }

    #[test]
    fn a_check_failing_without_a_measurement_is_an_analysis_error() {
        let mut s = mk_status(Phase::Progressing);
        s.last_verdicts = vec![failed("success-rate", None)];
        let a = alerts(
            SUBJECT,
            &s,
            &[mk_event("CheckFailed", "analysis failed at 20%")],
        );
        assert_eq!(a[0].kind, AlertKind::AnalysisError);
        s.last_verdicts = vec![failed("success-rate", Some(97.0))];
        assert!(alerts(SUBJECT, &s, &[mk_event("CheckFailed", "analysis failed")]).is_empty());
    }

    #[test]
    fn slack_gets_words_and_json_gets_the_fields() {
        let mut s = mk_status(Phase::Failed);
        s.failed_revision = Some("cccccccccccc3333".into());
        s.last_verdicts = vec![failed("success-rate", Some(97.0))];
        let a = &alerts(
            SUBJECT,
            &s,
            &[mk_event("RolledBack", "rolled back: 2 failed checks")],
        )[0];
        assert_eq!(
            render(a, NotifyKind::Slack),
            json!({"text": "[failed] shop/app revision cccccccccc (Failed): rolled back: 2 failed checks\nlast checks: success-rate fail (Prometheus at http://prom/ is unreachable)"})
        );
        let j = render(a, NotifyKind::Json);
        assert_eq!(j["kind"], "failed");
        assert_eq!(j["revision"], "cccccccccccc3333");
        assert_eq!(j["phase"], "Failed");
        assert_eq!(j["figures"][0]["value"], 97.0);
    }

    #[tokio::test]
    async fn alerts_reach_both_kinds_of_receiver() {
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        async fn record(State(got): State<Arc<Mutex<Vec<Value>>>>, Json(v): Json<Value>) {
            got.lock().unwrap().push(v);
        }
        let app = axum::Router::new()
            .route("/slack", route_post(record))
            .route("/json", route_post(record))
            .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let receivers = [
            NotifySpec {
                url: format!("{base}/slack"),
                kind: NotifyKind::Slack,
            },
            NotifySpec {
                url: format!("{base}/json"),
                kind: NotifyKind::Json,
            },
        ];
        let s = mk_status(Phase::Succeeded);
        send_in_background(
            &receivers,
            alerts(SUBJECT, &s, &[mk_event("Succeeded", "promoted")]),
        );
        for _ in 0..100 {
            if got.lock().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().any(|v| {
            v["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("[succeeded] shop/app"))
        }));
        assert!(got.iter().any(|v| v["kind"] == "succeeded"));
        assert_eq!(
            post(&format!("{base}/nowhere"), &json!({})).await,
            Err("the receiver answered 404 Not Found".into())
        );
    }
}
