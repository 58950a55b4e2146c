//! The rollout state machine: a pure function from (last status, what the objects show now,
//! the plan, this interval's verdicts) to (next status, effects, events, when to look again).
//!
//! ```text
//!            new revision (webhook paused app, recorded stable template)
//! Initialized ──────────────► Preparing ── primary ready ──► Progressing ── max weight ──► Promoting ──► Succeeded
//! Succeeded                    │ route 100/0, apex → primary,   │ every interval: analyse   route 0/100, apex restored,
//! Failed                       │ unpause app                    │ pass → next step           app-primary deleted
//!    ▲                         ▼                                ▼ fail × threshold, not ready by progress-deadline, abort
//!    └──────────── Failed ◄── RollingBack: route 100/0 at once, app's template := stable, wait ready, route 0/100
//! ```
//!
//! How state survives a crash (DESIGN §7.3): the reconciler writes the returned status first
//! and then performs the effects. Every effect is an idempotent "ensure" that converges the
//! world to the status, and every pass re-emits the effects of the current phase, so a
//! controller killed between the two resumes by redoing them: a step is never skipped (the
//! weight is in the status before the route moves) nor repeated (the next step needs a new
//! analysis, whose time is in the status too).
//!
//! Choices where DESIGN is silent, as Flagger users would expect:
//! - The first step (0 → first weight) needs no analysis: the canary has had no traffic to
//!   judge. Every later step needs one passing analysis interval.
//! - `threshold` consecutive intervals without a verdict (too little traffic) count as one
//!   failed check, and the silence count starts again.
//! - A new revision during a rollout resets the weight, the failed checks and the progress
//!   deadline: the analysis judges the newest template from scratch, against the same primary.
//! - `progress-deadline` runs from the start of the current revision's rollout.
//! - A problem that needs a person (the route API no longer served, the apex Service deleted)
//!   during `Preparing`, `Progressing`, `WaitingPromotion` or `Paused` makes the phase
//!   `Blocked`, with the reason and a Warning Event, and Sluice writes nothing until it is gone.
//!   Traffic: deleting a route CRD deletes the route, and the mesh then sends the apex's
//!   traffic by the apex Service's selector, which points at `-primary`: the stable version
//!   serves 100% while Blocked. Once the problem is gone the rollout starts again from
//!   `Preparing` at 0% (the analysis of a canary that lost its traffic is not resumed half way;
//!   a paused one holds at 0% again). `Promoting` and `RollingBack` are not blocked: they end
//!   the rollout, so their route writes are retried with the error backoff until they succeed.
//!   A Blocked Deployment looks again every interval (at most 30 s): one pass, never a loop.
//!   `abort` and `promote` are refused while Blocked (nothing could be written), with the
//!   reason and the two ways out: fix the problem (the rollout starts again at 0%), or
//!   re-apply the stable template (the rollout ends at rest once the problem is gone).
//!
//! Hooks ([`crate::analysis::hooks`]) are inputs, never I/O here: [`analysis_plan`] says which
//! kinds are due, the reconciler calls them, and their answers come back as verdicts
//! (`pre-rollout`, `rollout`: a failure is a failed check) and as [`HookAnswers`] (gates).
//! ```text
//!   Progressing 0% ── pre-rollout 2xx ──► first step     (fails: failed check, retried each interval, no traffic)
//!   Progressing max ── analysis passes ── confirm-promotion 2xx? ── yes ──► Promoting
//!                                                       └─ no ──► WaitingPromotion (analysis goes on; a 2xx promotes)
//!   Progressing | WaitingPromotion ── rollback hook 2xx ──► RollingBack
//!   Succeeded | Failed (on the transition) ──► post-rollout hooks, once (at most: a crash between
//!                                              the status write and the call loses it)
//! ```
//!
//! Blue/green (`strategy: blue-green`): the same phases, but the weight stays at 0% (route
//! ALL_PRIMARY) while the canary is analysed; `iterations` passing analyses switch all traffic
//! at once, through `Promoting`, as a canary's last step does.
//! ```text
//!   Progressing 0% ── pre-rollout 2xx (or none configured) ──► iterations start (iterationGoal = N)
//!   every interval: checks + rollout hooks ── pass ──► iteration k+1/N ── N? ── confirm-promotion ──► Promoting: route 0/100 at once
//!                                          └─ fail × threshold ──► RollingBack (the route never left 100/0)
//! ```
//! - The canary has no live traffic, so the built-in checks have no verdict unless `pre-rollout`
//!   / `rollout` hooks drive load against `app-canary` (as Flagger's load tester does). An
//!   interval with no failure and at least one passing check or hook passes; one where nothing
//!   passed is silent, and `threshold` silent intervals count as a failed check, as for canary.
//!   So with no load and no custom check or hook, a blue/green rollout rolls back.
//! - A new revision mid-analysis starts over: the gate again, then iteration 1.
//!
//! A/B testing (`strategy: ab-testing`) is the other iteration strategy ([`Plan::iterates`]):
//! the same sequence as blue/green, but the route held during the iterations
//! ([`Plan::iteration_route`]) is `Split::Matched`: requests matching the `sluice.dev/match`
//! rules go 100% to the canary, all others stay 100% on the primary.
//! ```text
//!   Preparing: route 100/0 ──► Progressing 0% ── pre-rollout 2xx (or none) ──► route matched (iterationGoal = N)
//!   every interval: checks + rollout hooks ── pass ──► iteration k+1/N ── N? ── confirm-promotion ──► Promoting: route 0/100 at once
//!                                          └─ fail × threshold, abort ──► RollingBack: route 100/0 at once
//! ```
//! - The canary receives live matching traffic, so the built-in checks judge it as they judge
//!   a canary step (`min-requests` applies to the matching requests); unlike blue/green, an
//!   interval without a verdict is silent even when a hook passed.
//! - The status weight stays 0 (no weighted share of the general traffic reaches the canary);
//!   `iterationGoal` set while the strategy is `ab-testing` means the matched route holds.
//!
//! Control annotations (DESIGN §2), acted on before the phase's own step, each exactly once:
//! the answer goes into the status (`lastControl`: verb, time, outcome `applied` / `refused` /
//! `noOp`, message) and an Event, and the annotation is removed by an effect after that status
//! is written. Several at once are taken in the order retry, abort, promote, resume, pause.
//!
//! ```text
//!   Progressing ── pause ──► Paused ── resume ──► Progressing (next analysis one interval later)
//!   at rest / Preparing ── pause ──► armed: Preparing ends in Paused at 0% instead of Progressing
//!   Progressing | Paused ── promote (iterations ≥ 1, or `force`; canary ready) ──► Promoting
//!   Preparing | Progressing | Paused ── abort ──► RollingBack        any phase ── retry ──► failed revision forgotten
//! ```
//! - `Paused` holds the weight: no analysis, no failed check, no progress-deadline (the clock
//!   is moved on by the time spent paused when it resumes). Only abort, promote, resume or a
//!   new revision (back to 0%, still paused) change it; a canary that turns unready is judged
//!   after resume.
//! - `promote` is refused before a passing analysis of the current revision unless its value is
//!   `force`, and when the canary failed to roll out. While the canary reads as rolling it waits
//!   (annotation kept): setting any annotation bumps a Deployment's generation, so the canary
//!   reads as rolling until its controller catches up; it never promotes unready pods (invariant 2).
//! - `retry` forgets the failed revision at once, so the webhook admits it at the next apply;
//!   set in the same apply as that revision, it is consumed by the rollout it starts.
//! - A verb seen again after it was applied, or answered with the same words (the controller
//!   was killed between the status write and the removal, or a person set it twice), is removed
//!   without a second acknowledgement or Event.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::status::{
    CheckResult, CheckVerdict, ControlAck, ControlOutcome, Phase, RolloutStatus, Timestamp,
};
use crate::analysis::checks::{self, IntervalOutcome};
use crate::analysis::hooks::HookAnswers;
use crate::policy::keys::Control;
use crate::policy::values::{HookType, Strategy};
use crate::routing::{Split, Weights};

/// What the reconciler read from the objects for one Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub now: SystemTime,
    /// Revision of the Deployment's current pod template.
    pub revision: String,
    /// Revision of the `sluice.dev/stable-template` annotation, when the webhook recorded one.
    pub stable_revision: Option<String>,
    /// `spec.paused` of the user's Deployment: the webhook pauses every update it intercepts, so
    /// at rest a recorded stable template on an unpaused Deployment is a leftover, not a
    /// pending rollout.
    pub paused: bool,
    /// The user's Deployment: rolled to its current template and available?
    pub app: Readiness,
    /// `app-primary`, when it exists.
    pub primary: Option<Readiness>,
    /// The control annotations a person set (`sluice.dev/pause`, `promote`, ...).
    pub controls: Controls,
    /// A problem that needs a person (no apex Service, route API not served), in words.
    pub blocked: Option<String>,
    /// What the gate hooks answered in this pass (called only when [`analysis_plan`] said so).
    pub hooks: HookAnswers,
}

/// The control annotations set on a Deployment (DESIGN §2). An annotation counts as set with
/// any value but `false` (as the webhook reads `retry`); `false` is left alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Controls {
    pub pause: bool,
    pub resume: bool,
    pub promote: Option<Promote>,
    pub abort: bool,
    pub retry: bool,
}

/// How `sluice.dev/promote` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promote {
    /// Any value but `force`: only after a passing analysis in this rollout.
    AfterPass,
    /// `force`: even before any analysis passed.
    Force,
}

/// The value of `sluice.dev/promote` that skips the passing-analysis rule.
pub const PROMOTE_FORCE: &str = "force";

impl Controls {
    /// Reads the control annotations from a Deployment's annotations.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Controls {
        let set = |c: Control| {
            annotations
                .get(&c.annotation())
                .filter(|v| v.trim() != "false")
        };
        Controls {
            pause: set(Control::Pause).is_some(),
            resume: set(Control::Resume).is_some(),
            promote: set(Control::Promote).map(|v| {
                if v.trim() == PROMOTE_FORCE {
                    Promote::Force
                } else {
                    Promote::AfterPass
                }
            }),
            abort: set(Control::Abort).is_some(),
            retry: set(Control::Retry).is_some(),
        }
    }

    /// The verbs set, in the order they are acted on: `retry`, `abort` (it wins over the
    /// rest), `promote`, `resume`, `pause`.
    pub fn requested(&self) -> Vec<Control> {
        [
            (self.retry, Control::Retry),
            (self.abort, Control::Abort),
            (self.promote.is_some(), Control::Promote),
            (self.resume, Control::Resume),
            (self.pause, Control::Pause),
        ]
        .into_iter()
        .filter_map(|(set, c)| set.then_some(c))
        .collect()
    }

    /// A verb that changes the phase is waiting: analysing now would be wasted or, if it counted
    /// a failed check, wrong.
    fn holds_analysis(&self) -> bool {
        self.pause || self.abort || self.promote.is_some()
    }
}

/// Readiness of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Rolling or waiting for pods.
    Progressing,
    /// Kubernetes gave up on it (e.g. `ProgressDeadlineExceeded`), in words.
    Failed(String),
}

/// The resolved settings the machine needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub interval: Duration,
    /// Canary weights of the steps, ascending; the last one is `max-weight`.
    pub weights: Vec<u32>,
    pub threshold: u32,
    pub progress_deadline: Duration,
    /// The kinds of hook configured (`sluice.dev/webhooks`): a `pre-rollout` hook gates the
    /// first step, a `confirm-promotion` hook the promotion.
    pub hooks: Vec<HookType>,
    /// `canary` moves the weight through `weights`; `blue-green` keeps it at 0% and
    /// `ab-testing` routes the matching requests to the canary, each for `iterations` passing
    /// analyses, then switches at once.
    pub strategy: Strategy,
    /// Blue/green and A/B: the passing analyses needed before the switch.
    pub iterations: u32,
}

impl Plan {
    /// Whether the strategy runs `iterations` analyses at a fixed route and then switches at
    /// once (blue-green, ab-testing), rather than stepping the weight (canary).
    pub fn iterates(&self) -> bool {
        matches!(self.strategy, Strategy::BlueGreen | Strategy::AbTesting)
    }

    /// The route held during the iterations: all to the primary for blue/green, by the A/B
    /// rules for ab-testing (for canary, the 0% route).
    pub fn iteration_route(&self) -> Split {
        match self.strategy {
            Strategy::AbTesting => Split::Matched,
            Strategy::BlueGreen | Strategy::Canary => Split::Weighted(Weights::ALL_PRIMARY),
        }
    }

    /// Blue/green alone: the canary gets no live traffic, so a passing hook can stand for
    /// the built-in checks that have no verdict.
    fn no_live_traffic(&self) -> bool {
        self.strategy == Strategy::BlueGreen
    }

    /// How messages name the strategy: `blue/green`, `A/B`.
    fn label(&self) -> &'static str {
        match self.strategy {
            Strategy::AbTesting => "A/B",
            _ => "blue/green",
        }
    }
}

/// What one analysis pass runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalysisPlan {
    /// The built-in, baseline and custom checks (not at 0%: the canary has had no traffic).
    pub checks: bool,
    /// The baseline comparison too (with `baseline: on`): only while the route gives the
    /// primary live traffic. At a step of 100% the primary answers nothing, so there is nothing
    /// to compare with; the comparison is left out, rather than counted as silent intervals
    /// that would roll back a healthy canary.
    pub baseline: bool,
    /// The configured hook kinds to call, in order.
    pub hooks: Vec<HookType>,
}

/// Whether the primary answers live requests under `split`: all but the unmatched requests go
/// to it under A/B rules, its share under weights.
fn primary_serves_live_traffic(split: Split) -> bool {
    match split {
        Split::Matched => true,
        Split::Weighted(w) => w.primary > 0,
    }
}

/// The split of a step: `weight` percent to the canary, the rest to the primary.
fn step(weight: u32) -> Split {
    Split::Weighted(Weights::canary(weight.min(100)).unwrap_or(Weights::AT_REST))
}

/// The route while a rollout runs under status `s`: for an iteration strategy, the iteration
/// route once the iterations have started (all to the primary before); otherwise the step's.
fn rollout_route(s: &RolloutStatus, plan: &Plan) -> Split {
    match (plan.iterates(), s.iteration_goal) {
        (true, Some(_)) => plan.iteration_route(),
        (true, None) => step(0),
        (false, _) => step(s.weight),
    }
}

/// An idempotent change the reconciler makes to converge the world to the status. The
/// reconciler performs them in order and stops at the first error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Services `app-primary`, `app-canary` exist.
    EnsureServices,
    /// The route splits traffic so (by weights, or by the A/B rules).
    EnsureRoute(Split),
    /// `app-primary` runs the stable template at `app`'s replicas.
    EnsurePrimary,
    /// The apex Service selects primary pods (its own selector kept in an annotation).
    SwitchApexToPrimary,
    /// The apex Service has its own selector back.
    RestoreApex,
    /// `app.spec.paused`.
    SetPaused(bool),
    /// `app`'s template is the stable template again.
    RestoreStableTemplate,
    /// `app-primary` is gone.
    DeletePrimary,
    /// The `sluice.dev/stable-template` annotation is gone (no rollout holds `app`).
    ClearStableTemplate,
    /// The control annotation is gone (it was acted on and acknowledged in the status).
    ClearControl(Control),
    /// The `post-rollout` hooks are called (in the background), once per finished rollout. First
    /// among the effects of that transition, so that a failing effect after it, redone by the
    /// next pass at rest, cannot lose the call.
    PostRolloutHooks,
}

/// Event severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A Kubernetes Event on the Deployment, worded for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    /// CamelCase reason (`Advanced`, `CheckFailed`, ...).
    pub reason: &'static str,
    pub message: String,
}

/// What to do after one look at a Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The status to write (first).
    pub status: RolloutStatus,
    /// Then these, in order.
    pub effects: Vec<Effect>,
    pub events: Vec<Event>,
    /// Look again after this long even if nothing changes (watch events come sooner).
    pub requeue: Option<Duration>,
}

/// How often to look while waiting on readiness.
const WAIT: Duration = Duration::from_secs(2);
/// How often to look at rest (a safety net under the watches).
const AT_REST_RESYNC: Duration = Duration::from_secs(300);

/// Whether an analysis interval is due: the reconciler runs the checks only then, and passes
/// their verdicts to [`decide`].
pub fn analysis_due(status: Option<&RolloutStatus>, obs: &Observation, plan: &Plan) -> bool {
    analysis_plan(status, obs, plan).is_some()
}

/// What is due in this pass, if anything: at 0% with a `pre-rollout` hook, that hook alone
/// (retried every interval); above 0%, every interval, the checks with the `rollout` and
/// `rollback` hooks, and at max weight (or while `WaitingPromotion`) `confirm-promotion` too.
/// Only configured hook kinds are listed.
pub fn analysis_plan(
    status: Option<&RolloutStatus>,
    obs: &Observation,
    plan: &Plan,
) -> Option<AnalysisPlan> {
    let s = status?;
    let analysing = analysing(s, plan);
    let gated = !analysing && plan.hooks.contains(&HookType::PreRollout);
    let due = matches!(s.phase, Phase::Progressing | Phase::WaitingPromotion)
        && (analysing || gated)
        && s.revision.as_deref() == Some(obs.revision.as_str())
        && obs.app == Readiness::Ready
        && !obs.controls.holds_analysis()
        && next_analysis(s, plan).map_or(gated, |t| t <= obs.now);
    if !due {
        return None;
    }
    let at_max = s.phase == Phase::WaitingPromotion
        || match plan.iterates() {
            // This analysis is the last one before the switch.
            true => s.iterations + 1 >= plan.iterations,
            false => plan.weights.last().is_none_or(|max| s.weight >= *max),
        };
    let kinds: &[HookType] = if !analysing {
        &[HookType::PreRollout]
    } else if at_max {
        &[
            HookType::Rollout,
            HookType::Rollback,
            HookType::ConfirmPromotion,
        ]
    } else {
        &[HookType::Rollout, HookType::Rollback]
    };
    Some(AnalysisPlan {
        checks: analysing,
        baseline: analysing && primary_serves_live_traffic(rollout_route(s, plan)),
        hooks: kinds
            .iter()
            .copied()
            .filter(|k| plan.hooks.contains(k))
            .collect(),
    })
}

/// Whether the canary's analysis has begun (past the `pre-rollout` gate): above 0% for a
/// canary; for blue/green and A/B, once the iterations have started (the weight stays at 0%).
fn analysing(s: &RolloutStatus, plan: &Plan) -> bool {
    match plan.iterates() {
        true => s.iteration_goal.is_some(),
        false => s.weight > 0,
    }
}

fn next_analysis(s: &RolloutStatus, plan: &Plan) -> Option<SystemTime> {
    s.last_analysis.map(|t| t.0 + plan.interval)
}

/// Decides the next step for one Deployment. `verdicts` are this interval's check results,
/// given only when [`analysis_due`] said so.
pub fn decide(
    prev: Option<&RolloutStatus>,
    obs: &Observation,
    plan: &Plan,
    verdicts: Option<&[CheckVerdict]>,
) -> Decision {
    let mut d = Decision {
        status: prev
            .cloned()
            .unwrap_or_else(|| RolloutStatus::new(Phase::Initialized, obs.now)),
        effects: Vec::new(),
        events: Vec::new(),
        requeue: None,
    };
    let acted = controls(&mut d, obs);
    match d.status.phase {
        Phase::Initialized | Phase::Succeeded | Phase::Failed | Phase::Blocked => {
            at_rest(&mut d, prev.is_none(), obs, plan)
        }
        Phase::Preparing | Phase::Progressing | Phase::WaitingPromotion | Phase::Paused
            if obs.blocked.is_some() =>
        {
            block_rollout(&mut d, obs, plan)
        }
        Phase::Preparing => preparing(&mut d, obs, plan),
        Phase::Progressing | Phase::WaitingPromotion => progressing(&mut d, obs, plan, verdicts),
        Phase::Paused => paused(&mut d, obs, plan),
        Phase::Promoting => promoting(&mut d, obs),
        Phase::RollingBack => rolling_back(&mut d, obs),
    }
    // Last: the status that acknowledges them is written before they go.
    d.effects
        .extend(acted.into_iter().map(Effect::ClearControl));
    d
}

impl Decision {
    fn enter(&mut self, phase: Phase, now: SystemTime) {
        if self.status.phase != phase {
            self.status.phase = phase;
            self.status.phase_since = Timestamp(now);
        }
    }

    /// The revision being rolled out, shortened for a message (`?` when unknown).
    fn short_revision(&self) -> String {
        self.status
            .revision
            .as_deref()
            .map(short)
            .unwrap_or("?")
            .to_string()
    }

    fn event(&mut self, kind: EventType, reason: &'static str, message: String) {
        self.events.push(Event {
            kind,
            reason,
            message,
        });
    }
}

fn short(revision: &str) -> &str {
    &revision[..revision.len().min(10)]
}

// ---------------------------------------------------------------------------------------------
// Control annotations
// ---------------------------------------------------------------------------------------------

/// What a control verb does to the status, once answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Nothing,
    /// Progressing / WaitingPromotion → Paused.
    Pause,
    /// At rest or preparing: hold the next rollout at 0%.
    ArmPause,
    /// Paused → Progressing.
    Resume,
    /// Forget an armed pause.
    DisarmPause,
    /// → Promoting.
    Promote,
    /// → RollingBack.
    Abort,
    /// Forget the failed revision.
    Retry,
}

/// The controller's answer to one control verb, given the status and the objects: what it
/// does, and the acknowledgement in words. Pure; [`controls`] applies it.
fn answer(
    s: &RolloutStatus,
    obs: &Observation,
    verb: Control,
) -> Option<(ControlOutcome, Act, String)> {
    use ControlOutcome::{Applied, NoOp, Refused};
    let weight = s.weight;
    let revision = s.revision.as_deref().map(short).unwrap_or("?").to_string();
    let running = matches!(
        s.phase,
        Phase::Progressing | Phase::Paused | Phase::WaitingPromotion
    );
    let resting = s.phase.is_at_rest() || s.phase == Phase::Blocked;
    Some(match verb {
        Control::Retry => match &s.failed_revision {
            Some(failed) => (
                Applied,
                Act::Retry,
                format!(
                    "revision {} is no longer refused: apply it again to roll it out",
                    short(failed)
                ),
            ),
            None => (
                NoOp,
                Act::Nothing,
                "no revision is refused; nothing to retry".into(),
            ),
        },
        Control::Abort => match s.phase {
            Phase::Preparing | Phase::Progressing | Phase::Paused | Phase::WaitingPromotion => (
                Applied,
                Act::Abort,
                format!(
                    "aborted at {weight}%: all traffic returns to the stable revision {} and this Deployment's template is restored; revision {revision} is refused until {} is set",
                    s.stable_revision.as_deref().map(short).unwrap_or("?"),
                    Control::Retry.annotation()
                ),
            ),
            Phase::RollingBack => (NoOp, Act::Nothing, "already rolling back".into()),
            Phase::Promoting => (
                Refused,
                Act::Nothing,
                format!("revision {revision} is already being promoted; nothing to abort"),
            ),
            Phase::Blocked if s.revision.is_some() && s.revision != s.stable_revision => (
                Refused,
                Act::Nothing,
                blocked_control("abort", &revision, s),
            ),
            _ => (
                Refused,
                Act::Nothing,
                "no rollout is running; nothing to abort".into(),
            ),
        },
        Control::Promote => {
            let force = obs.controls.promote == Some(Promote::Force);
            if !running {
                let why = match s.phase {
                    Phase::Preparing => "-primary is still starting and the new version has had no traffic; nothing to promote yet".to_string(),
                    Phase::Promoting => return Some((NoOp, Act::Nothing, "already promoting".into())),
                    Phase::RollingBack => "the rollout is rolling back; nothing to promote".to_string(),
                    Phase::Blocked if s.revision.is_some() && s.revision != s.stable_revision => {
                        blocked_control("promote", &revision, s)
                    }
                    _ => "no rollout is running; nothing to promote".to_string(),
                };
                return Some((Refused, Act::Nothing, why));
            }
            if s.revision.as_deref() != Some(obs.revision.as_str()) {
                return Some((
                    Refused,
                    Act::Nothing,
                    format!(
                        "revision {} replaced the one being analysed and restarts at 0%; promote again once it has passed an analysis",
                        short(&obs.revision)
                    ),
                ));
            }
            match &obs.app {
                Readiness::Ready => {}
                // Every annotation write bumps a Deployment's generation, so the canary reads
                // as rolling until its controller catches up: wait for it rather than refuse.
                Readiness::Progressing => return None,
                Readiness::Failed(reason) => {
                    return Some((
                        Refused,
                        Act::Nothing,
                        format!(
                            "revision {revision} failed to roll out ({reason}); promoting would send all traffic to pods that cannot serve it"
                        ),
                    ));
                }
            }
            if s.iterations == 0 && !force {
                return Some((
                    Refused,
                    Act::Nothing,
                    format!(
                        "no analysis has passed yet for revision {revision} (at {weight}%); wait for one passing interval, or skip the analysis with `sluice promote --force` ({}: {PROMOTE_FORCE})",
                        Control::Promote.annotation()
                    ),
                ));
            }
            let after = if force && s.iterations == 0 {
                "forced, without a passing analysis".to_string()
            } else {
                format!("after {} passing analyses", s.iterations)
            };
            (
                Applied,
                Act::Promote,
                format!(
                    "promoted at {weight}% ({after}): the remaining steps are skipped and all traffic goes to revision {revision}"
                ),
            )
        }
        Control::Pause => match s.phase {
            Phase::Progressing | Phase::WaitingPromotion => (
                Applied,
                Act::Pause,
                format!(
                    "paused at {weight}%: the weight holds, no analysis runs and the progress deadline stops until {} is set",
                    Control::Resume.annotation()
                ),
            ),
            Phase::Paused => (NoOp, Act::Nothing, format!("already paused at {weight}%")),
            _ if (resting || s.phase == Phase::Preparing) && s.pause_pending => (
                NoOp,
                Act::Nothing,
                "already armed: the next rollout holds at 0%".into(),
            ),
            Phase::Preparing => (
                Applied,
                Act::ArmPause,
                format!(
                    "this rollout holds at 0% once -primary is ready, until {} is set",
                    Control::Resume.annotation()
                ),
            ),
            _ if resting => (
                Applied,
                Act::ArmPause,
                format!(
                    "no rollout is running: the next one holds in Paused at 0% once -primary is ready, until {} is set",
                    Control::Resume.annotation()
                ),
            ),
            _ => (
                Refused,
                Act::Nothing,
                format!(
                    "the rollout is {} and finishes on its own; nothing to pause",
                    match s.phase {
                        Phase::Promoting => "promoting",
                        _ => "rolling back",
                    }
                ),
            ),
        },
        Control::Resume => match s.phase {
            Phase::Paused => (
                Applied,
                Act::Resume,
                format!("resumed at {weight}%: the next analysis runs one interval from now"),
            ),
            _ if s.pause_pending => (
                Applied,
                Act::DisarmPause,
                "the armed pause is cancelled: the next rollout does not hold".into(),
            ),
            _ => (NoOp, Act::Nothing, "not paused; nothing to resume".into()),
        },
        Control::BreakGlass => (
            NoOp,
            Act::Nothing,
            "break-glass is read by the webhook at apply time".into(),
        ),
    })
}

/// Acts on the control annotations set on the Deployment, each once: changes the status,
/// acknowledges it in `last_control` and in an Event, and returns the verbs whose annotation
/// the reconciler then removes (after writing the status). A promote that waits for the canary
/// to read as ready is left in place for a later pass.
///
/// A verb seen again after it was applied, or answered with the same words, in this rollout (the
/// controller was killed or lost a write race between the status write and the removal, or a
/// person set it twice) is removed without a second acknowledgement or Event.
fn controls(d: &mut Decision, obs: &Observation) -> Vec<Control> {
    let mut acted = Vec::new();
    for verb in obs.controls.requested() {
        let Some((outcome, act, message)) = answer(&d.status, obs, verb) else {
            continue;
        };
        // The same verb again, already answered in this rollout: applied, or answered just so.
        let answered = d.status.last_control.as_ref().is_some_and(|a| {
            a.verb == verb
                && (a.outcome == ControlOutcome::Applied
                    || (a.outcome == outcome && a.message == message))
                && d.status.started.is_none_or(|s| s <= a.at)
        });
        acted.push(verb);
        if answered && outcome != ControlOutcome::Applied {
            continue;
        }
        let s = &mut d.status;
        match act {
            Act::Nothing => {}
            Act::Pause => d.enter(Phase::Paused, obs.now),
            Act::ArmPause => s.pause_pending = true,
            Act::DisarmPause => s.pause_pending = false,
            Act::Resume => {
                // The progress-deadline clock stood still while paused.
                let held = obs.now.duration_since(s.phase_since.0).unwrap_or_default();
                let from = s.deadline_from.or(s.started);
                s.deadline_from = from.map(|t| Timestamp(t.0 + held));
                if s.weight > 0 || s.iteration_goal.is_some() {
                    s.last_analysis = Some(Timestamp(obs.now));
                }
                s.pause_pending = false;
                d.enter(Phase::Progressing, obs.now);
            }
            Act::Promote => {
                d.enter(Phase::Promoting, obs.now);
                d.requeue = Some(Duration::ZERO);
            }
            Act::Abort => {
                s.message = format!("aborted by {}", Control::Abort.annotation());
                d.enter(Phase::RollingBack, obs.now);
            }
            Act::Retry => s.failed_revision = None,
        }
        // At rest the message explains the last rollout (the webhook quotes it when it refuses
        // a failed revision): leave it; the acknowledgement holds the refusal.
        let resting = d.status.phase.is_at_rest() || d.status.phase == Phase::Blocked;
        if outcome == ControlOutcome::Refused && !resting {
            d.status.message = format!("{} refused: {message}", verb.annotation());
        }
        let (kind, reason) = match (outcome, verb) {
            (ControlOutcome::Refused, _) => (EventType::Warning, "ControlRefused"),
            (ControlOutcome::NoOp, _) => (EventType::Normal, "ControlIgnored"),
            (_, Control::Pause) => (EventType::Normal, "Paused"),
            (_, Control::Resume) => (EventType::Normal, "Resumed"),
            (_, Control::Promote) => (EventType::Normal, "Promoted"),
            (_, Control::Abort) => (EventType::Warning, "Aborted"),
            (_, Control::Retry) => (EventType::Normal, "Retried"),
            (_, Control::BreakGlass) => (EventType::Normal, "ControlIgnored"),
        };
        d.event(kind, reason, format!("{}: {message}", verb.annotation()));
        d.status.last_control = Some(ControlAck {
            verb,
            at: Timestamp(obs.now),
            outcome,
            message,
        });
    }
    acted
}

/// Why `verb` cannot act on a rollout that is Blocked mid-way, and the two ways out.
fn blocked_control(verb: &str, revision: &str, s: &RolloutStatus) -> String {
    format!(
        "the rollout of revision {revision} is Blocked ({}), so nothing can be written and \
         {verb} cannot act; the stable revision {} serves all traffic meanwhile. Fix that and \
         the rollout starts again at 0%, or re-apply the stable template to end it",
        s.message.trim_end_matches('.'),
        s.stable_revision.as_deref().map(short).unwrap_or("?"),
    )
}

/// How often a Blocked Deployment looks again: every analysis interval, at most every 30 s, so
/// a fix is seen soon and a problem costs one pass (a discovery GET) per look, never a loop.
fn blocked_requeue(plan: &Plan) -> Duration {
    plan.interval.min(Duration::from_secs(30))
}

/// A rollout under way meets a problem that needs a person (its route API is no longer served):
/// phase `Blocked`, the reason and an Event, and nothing written. Its revisions stay in the
/// status, so [`at_rest`] starts it again from `Preparing` once the problem is gone.
fn block_rollout(d: &mut Decision, obs: &Observation, plan: &Plan) {
    let Some(reason) = &obs.blocked else {
        return;
    };
    if d.status.phase == Phase::Paused {
        // Held by a person: the restarted rollout holds at 0% again.
        d.status.pause_pending = true;
    }
    d.event(
        EventType::Warning,
        "Blocked",
        format!(
            "the rollout of revision {} stops at {}%, with nothing written until it is fixed: {reason}",
            d.short_revision(),
            d.status.weight
        ),
    );
    d.enter(Phase::Blocked, obs.now);
    d.status.message = reason.clone();
    d.requeue = Some(blocked_requeue(plan));
}

fn at_rest(d: &mut Decision, first_look: bool, obs: &Observation, plan: &Plan) {
    if let Some(reason) = &obs.blocked {
        if d.status.phase != Phase::Blocked || d.status.message != *reason {
            d.event(EventType::Warning, "Blocked", reason.clone());
        }
        d.enter(Phase::Blocked, obs.now);
        d.status.message = reason.clone();
        d.requeue = Some(blocked_requeue(plan));
        return;
    }
    // A rollout that was under way when it was blocked ([`block_rollout`]): `app` runs the new
    // template unpaused, so it is pending as long as its stable template is recorded.
    let interrupted =
        d.status.phase == Phase::Blocked && d.status.revision != d.status.stable_revision;
    if d.status.phase == Phase::Blocked {
        d.enter(Phase::Initialized, obs.now);
        d.status.message = String::new();
        let (reason, message) = match interrupted {
            true => (
                "Unblocked",
                "the problem is resolved: the rollout starts again from -primary at 0%",
            ),
            false => (
                "Initialized",
                "the problem is resolved: Services and route are in place at 0% primary / 100% this Deployment",
            ),
        };
        d.event(EventType::Normal, reason, message.into());
    } else if first_look {
        d.event(
            EventType::Normal,
            "Initialized",
            "managed by Sluice: created Services -primary and -canary and the route; all traffic stays on this Deployment until its template changes".into(),
        );
    }
    let pending = obs
        .stable_revision
        .as_deref()
        .filter(|stable| *stable != obs.revision && (obs.paused || interrupted));
    let Some(stable) = pending else {
        // Nothing to roll out: converge to rest.
        d.status.revision = Some(obs.revision.clone());
        d.status.stable_revision = Some(obs.revision.clone());
        d.effects = rest_effects();
        if obs.stable_revision.is_some() && obs.paused {
            // The template went back to the stable one before a rollout started.
            d.effects.push(Effect::SetPaused(false));
        }
        d.requeue = Some(AT_REST_RESYNC);
        return;
    };
    let s = &mut d.status;
    s.revision = Some(obs.revision.clone());
    s.stable_revision = Some(stable.to_string());
    s.weight = 0;
    s.failed_checks = 0;
    s.silent_intervals = 0;
    s.iterations = 0;
    s.iteration_goal = None;
    s.last_verdicts.clear();
    s.last_analysis = None;
    s.started = Some(Timestamp(obs.now));
    s.deadline_from = None;
    s.message = format!(
        "rolling out revision {} over stable {}",
        short(&obs.revision),
        short(stable)
    );
    d.enter(Phase::Preparing, obs.now);
    d.effects = vec![
        Effect::EnsureServices,
        Effect::SetPaused(true),
        Effect::EnsurePrimary,
    ];
    d.event(
        EventType::Normal,
        "Preparing",
        format!(
            "new revision {} detected; starting -primary from the stable revision {} before any traffic moves",
            short(&obs.revision),
            short(stable)
        ),
    );
    d.requeue = Some(WAIT);
}

fn rest_effects() -> Vec<Effect> {
    vec![
        Effect::EnsureServices,
        Effect::EnsureRoute(Split::Weighted(Weights::AT_REST)),
        Effect::RestoreApex,
        Effect::DeletePrimary,
        Effect::ClearStableTemplate,
    ]
}

fn deadline_passed(d: &Decision, obs: &Observation, plan: &Plan) -> bool {
    d.status
        .deadline_from
        .or(d.status.started)
        .is_some_and(|t| obs.now.duration_since(t.0).unwrap_or_default() >= plan.progress_deadline)
}

fn preparing(d: &mut Decision, obs: &Observation, plan: &Plan) {
    d.effects = vec![
        Effect::EnsureServices,
        Effect::SetPaused(true),
        Effect::EnsurePrimary,
    ];
    match &obs.primary {
        Some(Readiness::Ready) => {
            d.effects.extend([
                Effect::EnsureRoute(Split::Weighted(Weights::ALL_PRIMARY)),
                Effect::SwitchApexToPrimary,
                Effect::SetPaused(false),
            ]);
            d.status.weight = 0;
            let revision = d.short_revision();
            if std::mem::take(&mut d.status.pause_pending) {
                let message = format!(
                    "-primary is ready and serves 100%; revision {revision} rolls out with no traffic and the rollout holds at 0% as {} asked, until {} is set",
                    Control::Pause.annotation(),
                    Control::Resume.annotation()
                );
                d.event(EventType::Normal, "Paused", message);
                d.enter(Phase::Paused, obs.now);
                d.requeue = Some(plan.interval);
                return;
            }
            d.enter(Phase::Progressing, obs.now);
            d.event(
                EventType::Normal,
                "Progressing",
                format!(
                    "-primary is ready and serves 100%; rolling this Deployment to revision {revision} while it receives no traffic"
                ),
            );
            d.requeue = Some(WAIT);
        }
        primary => {
            if deadline_passed(d, obs, plan) {
                let why = match primary {
                    Some(Readiness::Failed(reason)) => reason.clone(),
                    _ => "not ready".into(),
                };
                return start_rollback(
                    d,
                    obs,
                    format!(
                        "-primary (the stable version) did not become ready within progress-deadline {}: {why}",
                        humantime::format_duration(plan.progress_deadline)
                    ),
                );
            }
            d.requeue = Some(WAIT);
        }
    }
}

fn progressing(
    d: &mut Decision,
    obs: &Observation,
    plan: &Plan,
    verdicts: Option<&[CheckVerdict]>,
) {
    if new_revision(d, obs, "the analysis restarts at 0%") {
        d.enter(Phase::Progressing, obs.now);
    }
    d.effects = rollout_effects(&d.status, plan);
    match &obs.app {
        Readiness::Failed(reason) => {
            return start_rollback(
                d,
                obs,
                format!("the new version failed to roll out: {reason}"),
            );
        }
        Readiness::Progressing => {
            if deadline_passed(d, obs, plan) {
                return start_rollback(
                    d,
                    obs,
                    format!(
                        "the new version was not ready within progress-deadline {}",
                        humantime::format_duration(plan.progress_deadline)
                    ),
                );
            }
            d.requeue = Some(WAIT);
            return;
        }
        Readiness::Ready => {}
    }
    let gated = plan.hooks.contains(&HookType::PreRollout);
    if !gated && !analysing(&d.status, plan) {
        if plan.iterates() {
            return start_iterations(d, obs, plan);
        }
        let first = plan.weights.first().copied().unwrap_or(100);
        advance(d, obs, first);
        return;
    }
    if verdicts.is_some()
        && let Some(why) = &obs.hooks.rollback
    {
        return start_rollback(d, obs, format!("a rollback hook asked for it: {why}"));
    }
    if let Some(verdicts) = verdicts {
        judge(d, obs, plan, verdicts);
        if !matches!(d.status.phase, Phase::Progressing | Phase::WaitingPromotion) {
            return;
        }
    }
    d.requeue = Some(match next_analysis(&d.status, plan) {
        Some(t) => t
            .duration_since(obs.now)
            .unwrap_or_default()
            .max(Duration::from_millis(100)),
        // At 0% the pre-rollout hook is due as soon as the canary is ready.
        None if gated => WAIT,
        None => plan.interval,
    });
}

/// A newer template than the one the status follows: start its rollout over at 0% against the
/// same primary. True when it did.
fn new_revision(d: &mut Decision, obs: &Observation, then: &str) -> bool {
    if d.status.revision.as_deref() == Some(obs.revision.as_str()) {
        return false;
    }
    let old = d.status.revision.clone().unwrap_or_default();
    let s = &mut d.status;
    s.revision = Some(obs.revision.clone());
    s.weight = 0;
    s.failed_checks = 0;
    s.silent_intervals = 0;
    s.iterations = 0;
    s.iteration_goal = None;
    s.last_verdicts.clear();
    s.last_analysis = None;
    s.started = Some(Timestamp(obs.now));
    s.deadline_from = None;
    d.event(
        EventType::Normal,
        "NewRevision",
        format!(
            "revision {} replaced {} mid-rollout; the stable version keeps serving and {then}",
            short(&obs.revision),
            short(&old)
        ),
    );
    true
}

/// What holds while a rollout runs: the primary serves the stable version, the route splits
/// as [`rollout_route`] says, and `app` is free to roll.
fn rollout_effects(s: &RolloutStatus, plan: &Plan) -> Vec<Effect> {
    vec![
        Effect::EnsureServices,
        Effect::EnsurePrimary,
        Effect::EnsureRoute(rollout_route(s, plan)),
        Effect::SwitchApexToPrimary,
        Effect::SetPaused(false),
    ]
}

/// `Paused`: the weight holds; no analysis, no failed check, no progress-deadline. Only the
/// control annotations move it (resume, promote, abort). A new revision still restarts at 0%
/// (traffic only moves away from the untested template) and stays paused.
fn paused(d: &mut Decision, obs: &Observation, plan: &Plan) {
    new_revision(d, obs, "the rollout stays paused at 0%");
    d.effects = rollout_effects(&d.status, plan);
    d.requeue = Some(plan.interval);
}

/// The rollout's route becomes `split` in this decision's effects.
fn set_route(d: &mut Decision, split: Split) {
    match d
        .effects
        .iter_mut()
        .find(|e| matches!(e, Effect::EnsureRoute(_)))
    {
        Some(route) => *route = Effect::EnsureRoute(split),
        None => d.effects.push(Effect::EnsureRoute(split)),
    }
}

fn advance(d: &mut Decision, obs: &Observation, weight: u32) {
    let from = d.status.weight;
    d.status.weight = weight;
    d.status.last_analysis = Some(Timestamp(obs.now));
    set_route(d, step(weight));
    d.event(
        EventType::Normal,
        "Advanced",
        format!(
            "weight {from}% → {weight}% for revision {}",
            d.status.revision.as_deref().map(short).unwrap_or("?")
        ),
    );
    d.requeue = Some(WAIT);
}

/// Blue/green and A/B: the analysis of the canary begins (the `pre-rollout` hook passed, or
/// none is configured) with the iteration route (A/B: the matching requests now reach the
/// canary); the first analysis is one interval later.
fn start_iterations(d: &mut Decision, obs: &Observation, plan: &Plan) {
    d.status.iteration_goal = Some(plan.iterations);
    d.status.last_analysis = Some(Timestamp(obs.now));
    set_route(d, plan.iteration_route());
    let revision = d.short_revision();
    let every = humantime::format_duration(plan.interval);
    let n = plan.iterations;
    let (message, event) = match plan.no_live_traffic() {
        true => (
            format!(
                "blue/green: the primary serves 100% while revision {revision} is analysed for {n} intervals; only hooks (load against -canary) and custom checks can judge it without live traffic"
            ),
            format!(
                "blue/green: revision {revision} receives no live traffic and is analysed every {every} for {n} passing intervals before all traffic switches to it"
            ),
        ),
        false => (
            format!(
                "A/B: requests matching sluice.dev/match go to revision {revision}, all others to the primary, for {n} passing intervals"
            ),
            format!(
                "A/B: requests matching sluice.dev/match now reach revision {revision}, all others stay on the primary; it is analysed every {every} for {n} passing intervals before all traffic switches to it"
            ),
        ),
    };
    d.status.message = message;
    d.event(EventType::Normal, "Analysing", event);
    d.requeue = Some(plan.interval);
}

/// Where the rollout stands, for a message: `at 20%`, or for blue/green and A/B
/// `in iteration 2/5`.
fn progress(s: &RolloutStatus, plan: &Plan) -> String {
    match (plan.iterates(), s.iteration_goal) {
        (true, Some(goal)) => format!("in iteration {}/{goal}", (s.iterations + 1).min(goal)),
        (true, None) => "before the analysis (pre-rollout)".to_string(),
        (false, _) => format!("at {}%", s.weight),
    }
}

/// This interval's outcome. For blue/green the canary has no live traffic, so a check without a
/// verdict (the built-in checks, unless hooks drive load against -canary) does not hold the
/// analysis back when another check or a hook passed; any failure still fails it.
fn interval_outcome(verdicts: &[CheckVerdict], plan: &Plan) -> IntervalOutcome {
    let outcome = checks::outcome(verdicts);
    let passed = verdicts.iter().any(|v| v.result == CheckResult::Pass);
    match outcome {
        IntervalOutcome::NoVerdict if plan.no_live_traffic() && passed => IntervalOutcome::Passed,
        other => other,
    }
}

fn judge(d: &mut Decision, obs: &Observation, plan: &Plan, verdicts: &[CheckVerdict]) {
    d.status.last_verdicts = verdicts.to_vec();
    d.status.last_analysis = Some(Timestamp(obs.now));
    let failed: Vec<CheckVerdict> = verdicts
        .iter()
        .filter(|v| v.result == CheckResult::Fail)
        .cloned()
        .collect();
    let at = progress(&d.status, plan);
    match interval_outcome(verdicts, plan) {
        IntervalOutcome::Failed { .. } => {
            d.status.failed_checks += 1;
            d.status.silent_intervals = 0;
            d.event(
                EventType::Warning,
                "CheckFailed",
                format!(
                    "analysis failed {at}: {} — failed checks {}/{}",
                    checks::summary(&failed),
                    d.status.failed_checks,
                    plan.threshold
                ),
            );
        }
        IntervalOutcome::NoVerdict => {
            d.status.silent_intervals += 1;
            if d.status.silent_intervals >= plan.threshold {
                d.status.silent_intervals = 0;
                d.status.failed_checks += 1;
                d.event(
                    EventType::Warning,
                    "CheckFailed",
                    format!(
                        "{} intervals in a row without enough traffic to judge ({}) count as a failed check — failed checks {}/{}",
                        plan.threshold,
                        checks::summary(verdicts),
                        d.status.failed_checks,
                        plan.threshold
                    ),
                );
            } else {
                d.event(
                    EventType::Normal,
                    "NoVerdict",
                    format!(
                        "not enough traffic to judge {at}: {}; holding {}",
                        checks::summary(verdicts),
                        match plan.iterates() {
                            true => "the switch",
                            false => "the weight",
                        }
                    ),
                );
            }
        }
        IntervalOutcome::Passed if plan.iterates() => {
            d.status.silent_intervals = 0;
            if d.status.iteration_goal.is_none() {
                // The pre-rollout hook passed: the iterations start now.
                return start_iterations(d, obs, plan);
            }
            d.status.iterations += 1;
            d.status.iteration_goal = Some(plan.iterations);
            if d.status.iterations >= plan.iterations {
                return promote_or_wait(d, obs, plan);
            }
            d.event(
                EventType::Normal,
                "IterationPassed",
                format!(
                    "{}: analysis passed, iteration {}/{} for revision {}; {}",
                    plan.label(),
                    d.status.iterations,
                    plan.iterations,
                    d.short_revision(),
                    match plan.no_live_traffic() {
                        true => "the primary keeps serving 100%",
                        false => "matching requests keep going to it, all others to the primary",
                    }
                ),
            );
            return;
        }
        IntervalOutcome::Passed => {
            d.status.silent_intervals = 0;
            // A pre-rollout hook passing at 0% is no analysis of the canary's traffic.
            if d.status.weight > 0 {
                d.status.iterations += 1;
            }
            match plan.weights.iter().copied().find(|w| *w > d.status.weight) {
                Some(w) => advance(d, obs, w),
                None => promote_or_wait(d, obs, plan),
            }
            return;
        }
    }
    if d.status.failed_checks >= plan.threshold {
        let why = format!(
            "{} failed checks reached threshold {}: {}",
            d.status.failed_checks,
            plan.threshold,
            checks::summary(&d.status.last_verdicts)
        );
        start_rollback(d, obs, why);
    }
}

/// The analysis passed at max weight: promote, unless a `confirm-promotion` hook has not said
/// yes, in which case wait in `WaitingPromotion` (the analysis keeps running every interval).
fn promote_or_wait(d: &mut Decision, obs: &Observation, plan: &Plan) {
    let weight = d.status.weight;
    let revision = d.short_revision();
    let passed = match plan.iterates() {
        true => format!("after {} passing iterations", d.status.iterations),
        false => format!("at max weight {weight}%"),
    };
    if plan.hooks.contains(&HookType::ConfirmPromotion) {
        let why = match &obs.hooks.confirm_promotion {
            Some(Ok(())) => None,
            Some(Err(why)) => Some(why.clone()),
            None => Some("not called yet".to_string()),
        };
        if let Some(why) = why {
            if d.status.phase != Phase::WaitingPromotion {
                d.event(
                    EventType::Normal,
                    "WaitingPromotion",
                    format!(
                        "analysis passed {passed}; revision {revision} waits for its confirm-promotion hook ({why}) while the analysis goes on"
                    ),
                );
            }
            d.enter(Phase::WaitingPromotion, obs.now);
            d.status.message = format!(
                "waiting for confirm-promotion ({passed}): {why}; set {} to promote without it",
                Control::Promote.annotation()
            );
            return;
        }
    }
    d.status.message = String::new();
    d.enter(Phase::Promoting, obs.now);
    d.event(
        EventType::Normal,
        "Promoting",
        format!("analysis passed {passed}; switching all traffic to revision {revision}"),
    );
    d.requeue = Some(Duration::ZERO);
}

fn promoting(d: &mut Decision, obs: &Observation) {
    d.effects = vec![
        Effect::EnsureRoute(Split::Weighted(Weights::AT_REST)),
        Effect::RestoreApex,
        Effect::DeletePrimary,
        Effect::ClearStableTemplate,
    ];
    d.status.weight = 100;
    d.status.stable_revision = d.status.revision.clone();
    d.status.message = String::new();
    d.enter(Phase::Succeeded, obs.now);
    d.effects.insert(0, Effect::PostRolloutHooks);
    d.event(
        EventType::Normal,
        "Succeeded",
        format!(
            "revision {} promoted: it serves 100% and -primary is removed",
            d.status.revision.as_deref().map(short).unwrap_or("?")
        ),
    );
    d.requeue = Some(AT_REST_RESYNC);
}

fn start_rollback(d: &mut Decision, obs: &Observation, why: String) {
    d.status.message = why.clone();
    d.enter(Phase::RollingBack, obs.now);
    d.event(
        EventType::Warning,
        "RollingBack",
        format!("{why}; sending all traffic back to the stable version and restoring its template"),
    );
    rolling_back(d, obs);
}

fn rolling_back(d: &mut Decision, obs: &Observation) {
    d.status.weight = 0;
    let restored = d.status.stable_revision.as_deref() == Some(obs.revision.as_str());
    if restored && obs.app == Readiness::Ready {
        let failed = d.status.revision.clone();
        d.status.failed_revision = failed.clone();
        d.status.revision = d.status.stable_revision.clone();
        d.enter(Phase::Failed, obs.now);
        d.effects = rest_effects();
        d.effects.insert(0, Effect::PostRolloutHooks);
        d.event(
            EventType::Warning,
            "RolledBack",
            format!(
                "rolled back: the stable revision serves 100% again; revision {} is refused at apply time until sluice.dev/retry is set ({})",
                failed.as_deref().map(short).unwrap_or("?"),
                d.status.message
            ),
        );
        d.requeue = Some(AT_REST_RESYNC);
        return;
    }
    d.effects = Vec::new();
    if obs.primary == Some(Readiness::Ready) {
        d.effects
            .push(Effect::EnsureRoute(Split::Weighted(Weights::ALL_PRIMARY)));
    }
    d.effects
        .extend([Effect::RestoreStableTemplate, Effect::SetPaused(false)]);
    d.requeue = Some(WAIT);
}

#[cfg(test)]
mod tests;
