//! Hooks (`sluice.dev/webhooks`, DESIGN §5): Flagger's payload POSTed to load testers, smoke
//! tests and gates, so that the ones that already exist work unchanged.
//!
//! ```text
//! machine::analysis_plan (pure) ── which kinds are due ──► call_all (I/O, HTTP at the edge)
//!                                                               │ 2xx passes; transport error / 5xx retried
//!                                                               ▼
//!               fold (pure) ──► CheckVerdicts (pre-rollout, rollout) + HookAnswers (gates) ──► machine::decide
//! post-rollout, event: fire and forget from the reconciler (their answer decides nothing)
//! ```
//!
//! What each kind means (as Flagger users expect):
//! - `pre-rollout`: called at 0% once the canary is ready, before any traffic moves. A failure is
//!   one failed check, retried every interval until it passes or `threshold` rolls back, so a
//!   failing smoke test never lets a request reach the canary.
//! - `rollout`: called with every analysis; a failure is a failed check and the weight holds.
//! - `confirm-promotion`: called with every analysis at max weight; until every one answers 2xx
//!   the rollout waits in `WaitingPromotion` while the analysis keeps running.
//! - `rollback`: called with every analysis; a 2xx from any of them rolls the canary back.
//! - `post-rollout`: once, after a promotion or a rollback finished.
//! - `event`: once for every Event Sluice records on the Deployment, with `eventMessage`,
//!   `eventType` and `timestamp` added to the payload.
//!
//! An answer is any 2xx (DESIGN §5). A transport error (refused, timed out) and a 5xx are retried
//! `retries` times, 200 ms apart and doubling; a 4xx is the hook's answer and is not retried.
//! The payload's `phase` is Flagger's word for the rollout's phase ([`flagger_phase`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::controller::status::{CheckResult, CheckVerdict, Phase};
use crate::policy::values::{HookSpec, HookType};

/// Name of the verdict a failing or passing `pre-rollout` hook gives.
pub const PRE_ROLLOUT_CHECK: &str = "pre-rollout-hook";
/// Name of the verdict a failing or passing `rollout` hook gives.
pub const ROLLOUT_CHECK: &str = "rollout-hook";
/// How long the first retry waits; each next one waits twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How much of a refusing hook's answer is quoted in the status and the Event.
const BODY_QUOTE: usize = 200;

/// Flagger's hook payload (REFERENCE.md): `{name, namespace, phase, checksum, metadata}`, and for
/// `event` hooks `eventMessage`, `eventType` and `timestamp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    /// The revision (template hash) being rolled out.
    pub checksum: String,
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Unix milliseconds, as a string (Flagger's form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// The rollout a hook is called about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub name: String,
    pub phase: Phase,
    /// Revision being rolled out.
    pub checksum: String,
}

/// An Event an `event` hook is told about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    /// `Normal` or `Warning`.
    pub kind: &'static str,
    pub message: String,
    pub at: SystemTime,
}

/// Flagger's name for a Sluice phase, so a gate that switches on it keeps working: `Preparing`
/// is Flagger's `Initializing`, `Paused` and `Blocked` are `Waiting`, `RollingBack` is `Failed`
/// (Flagger reports a rollback as Failed from its start); the others are the same word.
pub fn flagger_phase(phase: Phase) -> &'static str {
    match phase {
        Phase::Preparing => "Initializing",
        Phase::Paused | Phase::Blocked => "Waiting",
        Phase::RollingBack => "Failed",
        other => other.as_str(),
    }
}

/// The payload for `hook` about `target` (and, for an `event` hook, about `event`).
pub fn payload(hook: &HookSpec, target: &Target, event: Option<&EventNote>) -> Payload {
    Payload {
        name: target.name.clone(),
        namespace: target.namespace.clone(),
        phase: flagger_phase(target.phase).to_string(),
        checksum: target.checksum.clone(),
        metadata: hook.metadata.clone(),
        event_message: event.map(|e| e.message.clone()),
        event_type: event.map(|e| e.kind.to_string()),
        timestamp: event.map(|e| {
            e.at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                .to_string()
        }),
    }
}

/// What one hook answered, after its retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub kind: HookType,
    pub url: String,
    /// HTTP status of the last attempt, when one came back.
    pub status: Option<u16>,
    /// The start of the answer's body, or the transport error.
    pub detail: String,
    pub attempts: u32,
}

impl Answer {
    /// 2xx.
    pub fn passed(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The answer in words: `http://gate/ answered 403 (not yet) after 1 attempt`.
    pub fn describe(&self) -> String {
        let what = match self.status {
            Some(s) if self.detail.is_empty() => format!("answered {s}"),
            Some(s) => format!("answered {s} ({})", self.detail),
            None => format!("could not be called: {}", self.detail),
        };
        let attempts = match self.attempts {
            1 => "1 attempt".to_string(),
            n => format!("{n} attempts"),
        };
        format!("{} hook {} {what} after {attempts}", self.kind, self.url)
    }

    /// Whether another attempt may get a different answer.
    fn retryable(&self) -> bool {
        self.status.is_none_or(|s| s >= 500)
    }
}

/// What the gate hooks of one pass said, for [`decide`](crate::controller::machine::decide).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookAnswers {
    /// `confirm-promotion` hooks, when called: `Ok` when every one answered 2xx, else why not.
    pub confirm_promotion: Option<Result<(), String>>,
    /// A `rollback` hook answered 2xx: which, in words.
    pub rollback: Option<String>,
}

/// Folds the answers of one pass: `pre-rollout` and `rollout` hooks into one verdict per hook
/// (each a check that passes or fails), `confirm-promotion` and `rollback` into [`HookAnswers`].
/// Post-rollout and event answers decide nothing and are left out.
pub fn fold(answers: &[Answer]) -> (Vec<CheckVerdict>, HookAnswers) {
    let mut verdicts = Vec::new();
    let mut gates = HookAnswers::default();
    for a in answers {
        match a.kind {
            HookType::PreRollout | HookType::Rollout => verdicts.push(CheckVerdict {
                name: match a.kind {
                    HookType::PreRollout => PRE_ROLLOUT_CHECK,
                    _ => ROLLOUT_CHECK,
                }
                .to_string(),
                result: if a.passed() {
                    CheckResult::Pass
                } else {
                    CheckResult::Fail
                },
                value: a.status.map(f64::from),
                detail: a.describe(),
                baseline: None,
            }),
            HookType::ConfirmPromotion => {
                let so_far = gates.confirm_promotion.take().unwrap_or(Ok(()));
                gates.confirm_promotion = Some(match so_far {
                    Ok(()) if a.passed() => Ok(()),
                    Ok(()) => Err(a.describe()),
                    Err(why) if a.passed() => Err(why),
                    Err(why) => Err(format!("{why}; {}", a.describe())),
                });
            }
            HookType::Rollback if a.passed() && gates.rollback.is_none() => {
                gates.rollback = Some(a.describe());
            }
            HookType::Rollback | HookType::PostRollout | HookType::Event => {}
        }
    }
    (verdicts, gates)
}

/// The HTTP client every hook call and alert shares (connection pool, ring TLS).
pub(crate) fn http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        crate::tls::install_crypto_provider();
        reqwest::Client::builder()
            .build()
            .expect("a default HTTP client builds")
    })
}

/// POSTs `payload` to `hook`, retrying a transport error or a 5xx `retries` times.
pub async fn call(hook: &HookSpec, payload: &Payload) -> Answer {
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (status, detail) = match http_client()
            .post(&hook.url)
            .timeout(hook.timeout)
            .json(payload)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                (Some(status), quote(&body))
            }
            Err(e) if e.is_timeout() => (
                None,
                format!(
                    "no answer within its timeout {}",
                    humantime::format_duration(hook.timeout)
                ),
            ),
            Err(e) => (None, error_chain(&e)),
        };
        let answer = Answer {
            kind: hook.kind,
            url: hook.url.clone(),
            status,
            detail,
            attempts,
        };
        if !answer.retryable() || attempts > hook.retries {
            return answer;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

/// Calls every hook of the given kinds about `target`, concurrently; answers in `hooks` order.
pub async fn call_all(hooks: &[HookSpec], kinds: &[HookType], target: &Target) -> Vec<Answer> {
    let due = hooks.iter().filter(|h| kinds.contains(&h.kind));
    futures::future::join_all(due.map(|h| async move {
        let body = payload(h, target, None);
        call(h, &body).await
    }))
    .await
}

/// Calls the hooks of `kind` (`post-rollout`, `event`) in the background: their answers decide
/// nothing, and a slow one must not hold the reconcile. Failures are logged.
pub fn notify_in_background(
    hooks: &[HookSpec],
    kind: HookType,
    target: &Target,
    event: Option<&EventNote>,
) {
    for hook in hooks.iter().filter(|h| h.kind == kind) {
        let (hook, body) = (hook.clone(), payload(hook, target, event));
        let key = format!("{}/{}", target.namespace, target.name);
        tokio::spawn(async move {
            let answer = call(&hook, &body).await;
            if answer.passed() {
                tracing::debug!(deployment = %key, "{}", answer.describe());
            } else {
                tracing::warn!(deployment = %key, "{}", answer.describe());
            }
        });
    }
}

/// The first [`BODY_QUOTE`] characters of a body, on one line.
fn quote(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(BODY_QUOTE) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// An error and its causes, as one line (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use serde_json::Value;

    use super::*;

    fn mk_hook(kind: HookType, url: &str) -> HookSpec {
        HookSpec {
            kind,
            url: url.to_string(),
            timeout: Duration::from_secs(2),
            retries: 0,
            metadata: BTreeMap::from([("cmd".to_string(), "hey -z 1m".to_string())]),
        }
    }

    fn mk_target() -> Target {
        Target {
            namespace: "shop".into(),
            name: "app".into(),
            phase: Phase::Progressing,
            checksum: "6f7d9c".into(),
        }
    }

    fn mk_answer(kind: HookType, status: u16) -> Answer {
        Answer {
            kind,
            url: "http://gate/".into(),
            status: Some(status),
            detail: String::new(),
            attempts: 1,
        }
    }

    #[test]
    fn the_payload_has_flaggers_field_names() {
        let p = payload(&mk_hook(HookType::Rollout, "http://x/"), &mk_target(), None);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"name": "app", "namespace": "shop", "phase": "Progressing",
                "checksum": "6f7d9c", "metadata": {"cmd": "hey -z 1m"}})
        );
        let event = EventNote {
            kind: "Warning",
            message: "rolled back".into(),
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123),
        };
        let target = Target {
            phase: Phase::RollingBack,
            ..mk_target()
        };
        let p = payload(
            &mk_hook(HookType::Event, "http://x/"),
            &target,
            Some(&event),
        );
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["phase"], "Failed");
        assert_eq!(v["eventMessage"], "rolled back");
        assert_eq!(v["eventType"], "Warning");
        assert_eq!(v["timestamp"], "1800000000123");
    }

    #[test]
    fn pre_rollout_and_rollout_answers_are_checks_and_gates_are_folded() {
        let (verdicts, gates) = fold(&[
            mk_answer(HookType::PreRollout, 500),
            mk_answer(HookType::Rollout, 202),
            mk_answer(HookType::ConfirmPromotion, 200),
            mk_answer(HookType::ConfirmPromotion, 403),
            mk_answer(HookType::Rollback, 404),
            mk_answer(HookType::Event, 500),
        ]);
        assert_eq!(verdicts.len(), 2);
        assert_eq!(
            (verdicts[0].name.as_str(), verdicts[0].result),
            (PRE_ROLLOUT_CHECK, CheckResult::Fail)
        );
        assert_eq!(
            verdicts[0].detail,
            "pre-rollout hook http://gate/ answered 500 after 1 attempt"
        );
        assert_eq!(verdicts[1].result, CheckResult::Pass);
        assert_eq!(
            gates.confirm_promotion,
            Some(Err(
                "confirm-promotion hook http://gate/ answered 403 after 1 attempt".into()
            ))
        );
        assert_eq!(gates.rollback, None, "a 404 from a rollback hook is a no");
        let (_, gates) = fold(&[
            mk_answer(HookType::ConfirmPromotion, 200),
            mk_answer(HookType::Rollback, 200),
        ]);
        assert_eq!(gates.confirm_promotion, Some(Ok(())));
        assert!(gates.rollback.is_some());
        assert_eq!(fold(&[]).1, HookAnswers::default());
    }

    #[test]
    fn phases_are_named_as_flagger_names_them() {
        assert_eq!(flagger_phase(Phase::Preparing), "Initializing");
        assert_eq!(flagger_phase(Phase::Paused), "Waiting");
        assert_eq!(flagger_phase(Phase::WaitingPromotion), "WaitingPromotion");
        assert_eq!(flagger_phase(Phase::Succeeded), "Succeeded");
    }

    /// Statuses still to answer (the last one repeats) and the bodies received.
    type Script = Arc<Mutex<(Vec<u16>, Vec<Value>)>>;

    /// A hook server answering each call with the next status of `script`, recording the bodies.
    async fn serve(script: Vec<u16>) -> (String, Script) {
        let shared: Script = Arc::new(Mutex::new((script, Vec::new())));
        async fn handle(State(s): State<Script>, Json(body): Json<Value>) -> StatusCode {
            let mut s = s.lock().unwrap();
            s.1.push(body);
            let status = if s.0.len() > 1 { s.0.remove(0) } else { s.0[0] };
            StatusCode::from_u16(status).unwrap()
        }
        let app = axum::Router::new()
            .route("/", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, shared)
    }

    #[tokio::test]
    async fn a_5xx_is_retried_and_a_4xx_is_the_answer() {
        let (url, received) = serve(vec![503, 503, 200]).await;
        let hook = HookSpec {
            retries: 2,
            ..mk_hook(HookType::Rollout, &url)
        };
        let a = call(&hook, &payload(&hook, &mk_target(), None)).await;
        assert!(a.passed(), "{}", a.describe());
        assert_eq!(a.attempts, 3);

        let (url, _) = serve(vec![403, 200]).await;
        let hook = HookSpec {
            retries: 2,
            ..mk_hook(HookType::ConfirmPromotion, &url)
        };
        let a = call(&hook, &payload(&hook, &mk_target(), None)).await;
        assert_eq!((a.status, a.attempts), (Some(403), 1));
        let bodies = received.lock().unwrap().1.clone();
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies[0]["checksum"], "6f7d9c");
    }

    #[tokio::test]
    async fn an_unreachable_hook_fails_after_its_retries_saying_why() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let hook = HookSpec {
            retries: 1,
            ..mk_hook(HookType::PreRollout, &url)
        };
        let a = call(&hook, &payload(&hook, &mk_target(), None)).await;
        assert!(!a.passed());
        assert_eq!(a.attempts, 2);
        assert!(
            a.describe().contains("could not be called"),
            "{}",
            a.describe()
        );
    }
}
