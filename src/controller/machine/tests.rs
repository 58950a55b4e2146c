use super::*;

const NEW: &str = "aaaaaaaaaaaa1111";
const STABLE: &str = "bbbbbbbbbbbb2222";
const NEWER: &str = "cccccccccccc3333";

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn mk_plan() -> Plan {
    Plan {
        interval: Duration::from_secs(60),
        weights: vec![10, 20, 30, 40, 50],
        threshold: 3,
        progress_deadline: Duration::from_secs(600),
        hooks: Vec::new(),
        strategy: Strategy::Canary,
        iterations: 10,
    }
}

/// A Deployment at rest on STABLE.
fn mk_obs(now: SystemTime) -> Observation {
    Observation {
        now,
        revision: STABLE.into(),
        stable_revision: None,
        paused: false,
        app: Readiness::Ready,
        primary: None,
        controls: Controls::default(),
        blocked: None,
        hooks: HookAnswers::default(),
    }
}

/// The webhook intercepted an update from STABLE to NEW.
fn mk_intercepted(now: SystemTime) -> Observation {
    Observation {
        revision: NEW.into(),
        stable_revision: Some(STABLE.into()),
        paused: true,
        app: Readiness::Ready,
        ..mk_obs(now)
    }
}

fn verdict(result: CheckResult) -> Vec<CheckVerdict> {
    vec![CheckVerdict {
        name: "success-rate".into(),
        result,
        value: Some(99.5),
        detail: "99.5% >= 99%".into(),
        baseline: None,
    }]
}

/// The routes `d` ensures, as splits.
fn splits(d: &Decision) -> Vec<Split> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::EnsureRoute(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// The routes `d` ensures, which must all be weighted.
fn routes(d: &Decision) -> Vec<Weights> {
    splits(d)
        .into_iter()
        .map(|s| {
            s.weights()
                .unwrap_or_else(|| panic!("a weighted route: {s:?}"))
        })
        .collect()
}

/// Drives a rollout from intercept to Progressing at weight 0 with the primary ready.
fn mk_progressing_at_zero() -> RolloutStatus {
    let plan = mk_plan();
    let d = decide(Some(&at_rest()), &mk_intercepted(t(0)), &plan, None);
    let obs = Observation {
        primary: Some(Readiness::Ready),
        ..mk_intercepted(t(5))
    };
    decide(Some(&d.status), &obs, &plan, None).status
}

fn at_rest() -> RolloutStatus {
    decide(None, &mk_obs(t(0)), &mk_plan(), None).status
}

fn in_progress() -> Observation {
    Observation {
        primary: Some(Readiness::Ready),
        ..mk_intercepted(t(10))
    }
}

#[test]
fn the_first_look_onboards_without_moving_traffic() {
    let d = decide(None, &mk_obs(t(0)), &mk_plan(), None);
    assert_eq!(d.status.phase, Phase::Initialized);
    assert_eq!(d.status.revision.as_deref(), Some(STABLE));
    assert!(d.effects.contains(&Effect::EnsureServices));
    assert_eq!(routes(&d), vec![Weights::AT_REST]);
    assert_eq!(d.events[0].reason, "Initialized");
    let again = decide(Some(&d.status), &mk_obs(t(1)), &mk_plan(), None);
    assert!(again.events.is_empty(), "no event without a transition");
    assert_eq!(again.status, d.status);
}

#[test]
fn an_intercepted_update_prepares_the_primary_before_any_traffic_moves() {
    let d = decide(Some(&at_rest()), &mk_intercepted(t(0)), &mk_plan(), None);
    assert_eq!(d.status.phase, Phase::Preparing);
    assert_eq!(d.status.revision.as_deref(), Some(NEW));
    assert_eq!(d.status.stable_revision.as_deref(), Some(STABLE));
    assert_eq!(
        d.effects,
        vec![
            Effect::EnsureServices,
            Effect::SetPaused(true),
            Effect::EnsurePrimary
        ]
    );
    assert!(routes(&d).is_empty());
}

#[test]
fn traffic_moves_to_the_primary_only_once_it_is_ready_and_before_the_app_is_unpaused() {
    let plan = mk_plan();
    let preparing = decide(Some(&at_rest()), &mk_intercepted(t(0)), &plan, None).status;
    let waiting = Observation {
        primary: Some(Readiness::Progressing),
        ..mk_intercepted(t(2))
    };
    let d = decide(Some(&preparing), &waiting, &plan, None);
    assert_eq!(d.status.phase, Phase::Preparing);
    assert!(
        routes(&d).is_empty(),
        "weight never moves toward a version that is not ready"
    );
    let ready = Observation {
        primary: Some(Readiness::Ready),
        ..mk_intercepted(t(4))
    };
    let d = decide(Some(&preparing), &ready, &plan, None);
    assert_eq!(d.status.phase, Phase::Progressing);
    let route = d
        .effects
        .iter()
        .position(|e| *e == Effect::EnsureRoute(Split::Weighted(Weights::ALL_PRIMARY)))
        .unwrap();
    let unpause = d
        .effects
        .iter()
        .position(|e| *e == Effect::SetPaused(false))
        .unwrap();
    assert!(route < unpause, "{:?}", d.effects);
}

#[test]
fn a_healthy_canary_walks_every_step_then_is_promoted() {
    let plan = mk_plan();
    let mut status = mk_progressing_at_zero();
    let mut seen = vec![status.weight];
    let mut now = 10;
    // Not ready yet: no step.
    let rolling = Observation {
        app: Readiness::Progressing,
        ..in_progress()
    };
    let d = decide(Some(&status), &rolling, &plan, None);
    assert_eq!(d.status.weight, 0);
    for _ in 0..20 {
        let obs = Observation {
            now: t(now),
            ..in_progress()
        };
        let verdicts = analysis_due(Some(&status), &obs, &plan).then(|| verdict(CheckResult::Pass));
        let d = decide(Some(&status), &obs, &plan, verdicts.as_deref());
        if d.status.weight != *seen.last().unwrap() {
            seen.push(d.status.weight);
        }
        status = d.status;
        if status.phase != Phase::Progressing {
            break;
        }
        now += 30;
    }
    assert_eq!(seen, vec![0, 10, 20, 30, 40, 50]);
    assert_eq!(status.phase, Phase::Promoting);
    let d = decide(
        Some(&status),
        &Observation {
            now: t(now),
            ..in_progress()
        },
        &plan,
        None,
    );
    assert_eq!(d.status.phase, Phase::Succeeded);
    assert_eq!(d.status.stable_revision.as_deref(), Some(NEW));
    assert_eq!(
        d.effects,
        vec![
            Effect::PostRolloutHooks,
            Effect::EnsureRoute(Split::Weighted(Weights::AT_REST)),
            Effect::RestoreApex,
            Effect::DeletePrimary,
            Effect::ClearStableTemplate
        ]
    );
}

#[test]
fn a_step_needs_a_passing_analysis_and_waits_for_the_interval() {
    let plan = mk_plan();
    let status = decide(Some(&mk_progressing_at_zero()), &in_progress(), &plan, None).status;
    assert_eq!(status.weight, 10);
    let early = Observation {
        now: t(40),
        ..in_progress()
    };
    assert!(!analysis_due(Some(&status), &early, &plan));
    let d = decide(Some(&status), &early, &plan, None);
    assert_eq!(d.status.weight, 10);
    assert_eq!(d.requeue, Some(Duration::from_secs(30)));
    let due = Observation {
        now: t(70),
        ..in_progress()
    };
    assert!(analysis_due(Some(&status), &due, &plan));
}

#[test]
fn a_failing_canary_rolls_back_after_exactly_threshold_failed_checks() {
    let plan = mk_plan();
    let mut status = decide(Some(&mk_progressing_at_zero()), &in_progress(), &plan, None).status;
    for n in 1..=3 {
        let obs = Observation {
            now: t(10 + 60 * n),
            ..in_progress()
        };
        assert!(analysis_due(Some(&status), &obs, &plan));
        let d = decide(
            Some(&status),
            &obs,
            &plan,
            Some(&verdict(CheckResult::Fail)),
        );
        assert_eq!(d.status.failed_checks, n as u32);
        assert_eq!(
            d.status.weight,
            if n < 3 { 10 } else { 0 },
            "the weight is held, then dropped"
        );
        if n < 3 {
            assert_eq!(d.status.phase, Phase::Progressing);
        } else {
            assert_eq!(d.status.phase, Phase::RollingBack);
            assert_eq!(
                d.effects[0],
                Effect::EnsureRoute(Split::Weighted(Weights::ALL_PRIMARY)),
                "traffic leaves at once"
            );
            assert!(d.effects.contains(&Effect::RestoreStableTemplate));
        }
        status = d.status;
    }
    // The template is restored but not ready yet: the route stays on the primary.
    let restoring = Observation {
        revision: STABLE.into(),
        app: Readiness::Progressing,
        ..in_progress()
    };
    let d = decide(Some(&status), &restoring, &plan, None);
    assert_eq!(d.status.phase, Phase::RollingBack);
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
    let restored = Observation {
        revision: STABLE.into(),
        ..in_progress()
    };
    let d = decide(Some(&status), &restored, &plan, None);
    assert_eq!(d.status.phase, Phase::Failed);
    assert_eq!(d.status.failed_revision.as_deref(), Some(NEW));
    assert_eq!(routes(&d), vec![Weights::AT_REST]);
    assert!(
        d.events
            .iter()
            .any(|e| e.reason == "RolledBack" && e.message.contains("sluice.dev/retry"))
    );
}

#[test]
fn silence_below_min_requests_holds_the_weight_and_counts_only_after_threshold_intervals() {
    let plan = mk_plan();
    let mut status = decide(Some(&mk_progressing_at_zero()), &in_progress(), &plan, None).status;
    for n in 1..=2 {
        let obs = Observation {
            now: t(10 + 60 * n),
            ..in_progress()
        };
        let d = decide(
            Some(&status),
            &obs,
            &plan,
            Some(&verdict(CheckResult::NoVerdict)),
        );
        assert_eq!(
            (
                d.status.weight,
                d.status.failed_checks,
                d.status.silent_intervals
            ),
            (10, 0, n as u32)
        );
        status = d.status;
    }
    let obs = Observation {
        now: t(190),
        ..in_progress()
    };
    let d = decide(
        Some(&status),
        &obs,
        &plan,
        Some(&verdict(CheckResult::NoVerdict)),
    );
    assert_eq!((d.status.failed_checks, d.status.silent_intervals), (1, 0));
    let obs = Observation {
        now: t(250),
        ..in_progress()
    };
    let d = decide(
        Some(&d.status),
        &obs,
        &plan,
        Some(&verdict(CheckResult::Pass)),
    );
    assert_eq!(d.status.weight, 20, "traffic arrived: the rollout proceeds");
}

#[test]
fn a_canary_not_ready_by_the_progress_deadline_is_rolled_back() {
    let plan = mk_plan();
    let status = mk_progressing_at_zero();
    let stuck = Observation {
        app: Readiness::Progressing,
        now: t(599),
        ..in_progress()
    };
    assert_eq!(
        decide(Some(&status), &stuck, &plan, None).status.phase,
        Phase::Progressing
    );
    let late = Observation {
        now: t(601),
        ..stuck
    };
    let d = decide(Some(&status), &late, &plan, None);
    assert_eq!(d.status.phase, Phase::RollingBack);
    assert!(
        d.status.message.contains("progress-deadline"),
        "{}",
        d.status.message
    );
}

#[test]
fn a_new_revision_mid_rollout_restarts_at_zero_and_keeps_the_stable_snapshot() {
    let plan = mk_plan();
    let mut status = decide(Some(&mk_progressing_at_zero()), &in_progress(), &plan, None).status;
    status.failed_checks = 2;
    let newer = Observation {
        revision: NEWER.into(),
        app: Readiness::Progressing,
        ..in_progress()
    };
    let d = decide(Some(&status), &newer, &plan, None);
    assert_eq!(d.status.revision.as_deref(), Some(NEWER));
    assert_eq!(d.status.stable_revision.as_deref(), Some(STABLE));
    assert_eq!((d.status.weight, d.status.failed_checks), (0, 0));
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
    assert!(
        d.effects.contains(&Effect::SetPaused(false)),
        "the webhook re-paused it"
    );
    assert_eq!(d.events[0].reason, "NewRevision");
}

#[test]
fn a_restarted_controller_redoes_effects_without_moving_a_step() {
    let plan = mk_plan();
    let status = decide(Some(&mk_progressing_at_zero()), &in_progress(), &plan, None).status;
    // Same objects, status already written: same weight, same route, no new event.
    let obs = Observation {
        now: t(20),
        ..in_progress()
    };
    let d = decide(Some(&status), &obs, &plan, None);
    assert_eq!(d.status, status);
    assert_eq!(splits(&d), vec![step(10)]);
    assert!(d.events.is_empty());
}

#[test]
fn abort_rolls_back_even_before_the_first_step() {
    let plan = mk_plan();
    let preparing = decide(Some(&at_rest()), &mk_intercepted(t(0)), &plan, None).status;
    let obs = Observation {
        controls: Controls {
            abort: true,
            ..Controls::default()
        },
        primary: Some(Readiness::Progressing),
        ..mk_intercepted(t(1))
    };
    let d = decide(Some(&preparing), &obs, &plan, None);
    assert_eq!(d.status.phase, Phase::RollingBack);
    assert!(
        routes(&d).is_empty(),
        "the primary is not ready: no traffic goes to it"
    );
}

#[test]
fn retry_is_consumed_when_the_failed_revision_rolls_again() {
    let mut failed = at_rest();
    failed.phase = Phase::Failed;
    failed.failed_revision = Some(NEW.into());
    let obs = Observation {
        controls: Controls {
            retry: true,
            ..Controls::default()
        },
        ..mk_intercepted(t(0))
    };
    let d = decide(Some(&failed), &obs, &mk_plan(), None);
    assert_eq!(d.status.phase, Phase::Preparing);
    assert_eq!(d.status.failed_revision, None);
    assert!(d.effects.contains(&Effect::ClearControl(Control::Retry)));
}

#[test]
fn a_missing_apex_service_blocks_with_the_reason_and_recovers() {
    let obs = Observation {
        blocked: Some("Service shop/podinfo does not exist".into()),
        ..mk_obs(t(0))
    };
    let d = decide(None, &obs, &mk_plan(), None);
    assert_eq!(d.status.phase, Phase::Blocked);
    assert_eq!(d.events[0].kind, EventType::Warning);
    assert!(d.effects.is_empty());
    let d = decide(Some(&d.status), &mk_obs(t(30)), &mk_plan(), None);
    assert_eq!(d.status.phase, Phase::Initialized);
    assert_eq!(routes(&d), vec![Weights::AT_REST]);
}

const UNSERVED: &str = "the cluster does not serve gateway.networking.k8s.io/v1 httproutes";

/// Mid-rollout: `app` runs NEW unpaused, the primary is ready, the route API `blocked` or not.
fn rolling(now: SystemTime, blocked: Option<&str>) -> Observation {
    Observation {
        paused: false,
        blocked: blocked.map(String::from),
        ..Observation {
            now,
            ..in_progress()
        }
    }
}

#[test]
fn a_rollout_whose_route_api_goes_away_is_blocked_writes_nothing_and_starts_again_at_zero() {
    let plan = Plan {
        interval: Duration::from_secs(3),
        ..mk_plan()
    };
    let status = decide(Some(&mk_progressing_at_zero()), &in_progress(), &plan, None).status;
    assert_eq!((status.phase, status.weight), (Phase::Progressing, 10));

    let d = decide(Some(&status), &rolling(t(20), Some(UNSERVED)), &plan, None);
    assert_eq!(d.status.phase, Phase::Blocked);
    assert_eq!(d.status.message, UNSERVED);
    assert!(d.effects.is_empty(), "nothing is written: {:?}", d.effects);
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.events[0].kind, EventType::Warning);
    assert!(
        d.events[0].message.contains("stops at 10%") && d.events[0].message.contains(UNSERVED),
        "{}",
        d.events[0].message
    );
    assert_eq!(
        d.requeue,
        Some(Duration::from_secs(3)),
        "looks again each interval"
    );

    let still = decide(
        Some(&d.status),
        &rolling(t(23), Some(UNSERVED)),
        &plan,
        None,
    );
    assert_eq!(still.status.phase, Phase::Blocked);
    assert!(still.effects.is_empty() && still.events.is_empty());
    assert_eq!(still.requeue, Some(Duration::from_secs(3)));

    let back = decide(Some(&still.status), &rolling(t(26), None), &plan, None);
    assert_eq!(
        (back.status.phase, back.status.weight),
        (Phase::Preparing, 0)
    );
    assert_eq!(back.status.revision.as_deref(), Some(NEW));
    assert_eq!(back.status.stable_revision.as_deref(), Some(STABLE));
    let reasons: Vec<&str> = back.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["Unblocked", "Preparing"]);
    assert!(back.effects.contains(&Effect::EnsurePrimary));
    assert!(
        !back.effects.contains(&Effect::DeletePrimary) && routes(&back).is_empty(),
        "the unanalysed canary is never promoted to rest: {:?}",
        back.effects
    );
}

#[test]
fn a_paused_rollout_that_is_blocked_holds_at_zero_again_once_unblocked() {
    let plan = mk_plan();
    let mut paused = decide(Some(&mk_progressing_at_zero()), &in_progress(), &plan, None).status;
    paused.phase = Phase::Paused;
    let blocked = decide(Some(&paused), &rolling(t(20), Some(UNSERVED)), &plan, None).status;
    assert_eq!(blocked.phase, Phase::Blocked);
    let preparing = decide(Some(&blocked), &rolling(t(30), None), &plan, None).status;
    let ready = decide(Some(&preparing), &rolling(t(31), None), &plan, None).status;
    assert_eq!((ready.phase, ready.weight), (Phase::Paused, 0));
}

#[test]
fn a_blocked_rollout_whose_template_went_back_to_stable_returns_to_rest() {
    let plan = mk_plan();
    let status = decide(Some(&mk_progressing_at_zero()), &in_progress(), &plan, None).status;
    let blocked = decide(Some(&status), &rolling(t(20), Some(UNSERVED)), &plan, None).status;
    let reverted = Observation {
        revision: STABLE.into(),
        ..rolling(t(30), None)
    };
    let d = decide(Some(&blocked), &reverted, &plan, None);
    assert_eq!(d.status.phase, Phase::Initialized);
    assert_eq!(routes(&d), vec![Weights::AT_REST]);
    assert!(d.effects.contains(&Effect::DeletePrimary));
}

#[test]
fn the_baseline_comparison_is_left_out_at_a_step_where_the_primary_has_no_live_traffic() {
    for (weights, first, compare) in [(vec![50, 100], 50, true), (vec![100], 100, false)] {
        let plan = Plan {
            weights,
            ..mk_plan()
        };
        let status = decide(Some(&mk_progressing_at_zero()), &in_progress(), &plan, None).status;
        assert_eq!(status.weight, first);
        let due = analysis_plan(Some(&status), &at(70, in_progress()), &plan).unwrap();
        assert!(due.checks, "the canary's own checks run at {first}%");
        assert_eq!(due.baseline, compare, "baseline at {first}%");
    }
}

#[test]
fn abort_and_promote_on_a_blocked_rollout_are_refused_with_the_reason_and_the_ways_out() {
    let plan = mk_plan();
    let status = decide(Some(&mk_progressing_at_zero()), &in_progress(), &plan, None).status;
    let blocked = decide(Some(&status), &rolling(t(20), Some(UNSERVED)), &plan, None).status;
    for (verb, controls) in [
        (Control::Abort, abort()),
        (Control::Promote, promote(Promote::Force)),
    ] {
        let d = decide(
            Some(&blocked),
            &with(controls, rolling(t(21), Some(UNSERVED))),
            &plan,
            None,
        );
        assert_eq!(ack(&d), (verb, ControlOutcome::Refused));
        assert_eq!(d.status.phase, Phase::Blocked);
        let said = &d.status.last_control.as_ref().unwrap().message;
        for words in [
            UNSERVED,
            "is Blocked",
            "starts again at 0%",
            "re-apply the stable template",
        ] {
            assert!(said.contains(words), "{verb:?}: {said}");
        }
        assert!(!said.contains("no rollout is running"), "{said}");
    }
}

#[test]
fn promoting_and_rolling_back_are_not_blocked_since_they_end_the_rollout() {
    let plan = mk_plan();
    let mut s = mk_progressing_at_zero();
    for phase in [Phase::Promoting, Phase::RollingBack] {
        s.phase = phase;
        let d = decide(Some(&s), &rolling(t(20), Some(UNSERVED)), &plan, None);
        assert_ne!(d.status.phase, Phase::Blocked, "{phase:?}");
    }
}

#[test]
fn a_stable_template_left_on_an_unpaused_deployment_at_rest_starts_nothing() {
    let mut succeeded = at_rest();
    succeeded.phase = Phase::Succeeded;
    let leftover = Observation {
        paused: false,
        ..mk_intercepted(t(0))
    };
    let d = decide(Some(&succeeded), &leftover, &mk_plan(), None);
    assert_eq!(d.status.phase, Phase::Succeeded);
    assert!(d.effects.contains(&Effect::ClearStableTemplate));
    assert!(!d.effects.contains(&Effect::SetPaused(false)));
}

// ---------------------------------------------------------------------------------------------
// Control annotations
// ---------------------------------------------------------------------------------------------

fn with(controls: Controls, obs: Observation) -> Observation {
    Observation { controls, ..obs }
}

fn pause() -> Controls {
    Controls {
        pause: true,
        ..Controls::default()
    }
}

fn resume() -> Controls {
    Controls {
        resume: true,
        ..Controls::default()
    }
}

fn promote(how: Promote) -> Controls {
    Controls {
        promote: Some(how),
        ..Controls::default()
    }
}

fn abort() -> Controls {
    Controls {
        abort: true,
        ..Controls::default()
    }
}

fn retry() -> Controls {
    Controls {
        retry: true,
        ..Controls::default()
    }
}

fn ack(d: &Decision) -> (Control, ControlOutcome) {
    let a = d.status.last_control.as_ref().expect("an acknowledgement");
    (a.verb, a.outcome)
}

/// Progressing at 10%, entered at t(10), with no analysis passed yet.
fn at_first_step() -> RolloutStatus {
    let s = decide(
        Some(&mk_progressing_at_zero()),
        &in_progress(),
        &mk_plan(),
        None,
    )
    .status;
    assert_eq!(
        (s.phase, s.weight, s.iterations),
        (Phase::Progressing, 10, 0)
    );
    s
}

/// Progressing at 20% after one passing analysis at t(70).
fn after_a_pass() -> RolloutStatus {
    let obs = Observation {
        now: t(70),
        ..in_progress()
    };
    let s = decide(
        Some(&at_first_step()),
        &obs,
        &mk_plan(),
        Some(&verdict(CheckResult::Pass)),
    )
    .status;
    assert_eq!((s.weight, s.iterations), (20, 1));
    s
}

fn at(secs: u64, obs: Observation) -> Observation {
    Observation {
        now: t(secs),
        ..obs
    }
}

#[test]
fn control_annotations_count_with_any_value_but_false() {
    let a = |pairs: &[(&str, &str)]| {
        Controls::from_annotations(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    assert_eq!(a(&[]), Controls::default());
    let c = a(&[
        ("sluice.dev/pause", "true"),
        ("sluice.dev/resume", ""),
        ("sluice.dev/abort", "false"),
        ("sluice.dev/promote", "force"),
        ("sluice.dev/retry", "yes please"),
    ]);
    assert!(c.pause && c.resume && c.retry && !c.abort);
    assert_eq!(c.promote, Some(Promote::Force));
    assert_eq!(
        a(&[("sluice.dev/promote", "true")]).promote,
        Some(Promote::AfterPass)
    );
    assert_eq!(
        c.requested(),
        vec![
            Control::Retry,
            Control::Promote,
            Control::Resume,
            Control::Pause
        ]
    );
}

#[test]
fn pause_holds_the_weight_and_skips_analysis_across_intervals() {
    let plan = mk_plan();
    let d = decide(
        Some(&at_first_step()),
        &with(pause(), at(20, in_progress())),
        &plan,
        None,
    );
    assert_eq!(d.status.phase, Phase::Paused);
    assert_eq!(ack(&d), (Control::Pause, ControlOutcome::Applied));
    assert_eq!(d.events.len(), 1);
    assert_eq!(d.events[0].reason, "Paused");
    assert_eq!(splits(&d), vec![step(10)]);
    assert_eq!(
        d.effects.last(),
        Some(&Effect::ClearControl(Control::Pause)),
        "the annotation goes after the status that acknowledges it"
    );
    let mut status = d.status;
    for now in [100, 200, 300, 10_000] {
        let obs = at(now, in_progress());
        assert!(
            !analysis_due(Some(&status), &obs, &plan),
            "no analysis while paused"
        );
        let d = decide(Some(&status), &obs, &plan, None);
        assert_eq!(d.status, status, "nothing moves while paused");
        assert_eq!(splits(&d), vec![step(10)]);
        assert!(d.events.is_empty());
        status = d.status;
    }
}

#[test]
fn a_pending_pause_skips_the_analysis_that_is_due() {
    let plan = mk_plan();
    let due = at(70, in_progress());
    assert!(analysis_due(Some(&at_first_step()), &due, &plan));
    assert!(!analysis_due(
        Some(&at_first_step()),
        &with(pause(), due),
        &plan
    ));
}

#[test]
fn the_progress_deadline_does_not_run_while_paused() {
    let plan = mk_plan();
    let paused = decide(
        Some(&at_first_step()),
        &with(pause(), at(20, in_progress())),
        &plan,
        None,
    )
    .status;
    // Paused far beyond the 600 s deadline, with the app still rolling.
    let rolling = Observation {
        app: Readiness::Progressing,
        ..in_progress()
    };
    let d = decide(Some(&paused), &at(5_000, rolling.clone()), &plan, None);
    assert_eq!(d.status.phase, Phase::Paused);
    let resumed = decide(
        Some(&paused),
        &with(resume(), at(5_000, rolling.clone())),
        &plan,
        None,
    );
    assert_eq!(resumed.status.phase, Phase::Progressing);
    assert_eq!(
        resumed.status.deadline_from,
        Some(Timestamp(t(4_980))),
        "the deadline clock moved on by the time spent paused"
    );
    assert_eq!(
        resumed.status.started,
        Some(Timestamp(t(0))),
        "the rollout still began when it began"
    );
    let d = decide(
        Some(&resumed.status),
        &at(5_100, rolling.clone()),
        &plan,
        None,
    );
    assert_eq!(d.status.phase, Phase::Progressing);
    let d = decide(Some(&resumed.status), &at(5_590, rolling), &plan, None);
    assert_eq!(
        d.status.phase,
        Phase::RollingBack,
        "the deadline still applies"
    );
}

#[test]
fn resume_continues_with_the_next_analysis_one_interval_later() {
    let plan = mk_plan();
    let paused = decide(
        Some(&at_first_step()),
        &with(pause(), at(20, in_progress())),
        &plan,
        None,
    )
    .status;
    let d = decide(
        Some(&paused),
        &with(resume(), at(500, in_progress())),
        &plan,
        None,
    );
    assert_eq!(d.status.phase, Phase::Progressing);
    assert_eq!(d.status.weight, 10);
    assert_eq!(ack(&d), (Control::Resume, ControlOutcome::Applied));
    assert_eq!(d.events[0].reason, "Resumed");
    assert!(d.effects.contains(&Effect::ClearControl(Control::Resume)));
    assert_eq!(d.requeue, Some(plan.interval));
    assert!(!analysis_due(
        Some(&d.status),
        &at(530, in_progress()),
        &plan
    ));
    assert!(analysis_due(
        Some(&d.status),
        &at(560, in_progress()),
        &plan
    ));
}

#[test]
fn resume_without_a_pause_is_acknowledged_as_nothing_to_do() {
    let d = decide(
        Some(&at_first_step()),
        &with(resume(), at(20, in_progress())),
        &mk_plan(),
        None,
    );
    assert_eq!(d.status.phase, Phase::Progressing);
    assert_eq!(ack(&d), (Control::Resume, ControlOutcome::NoOp));
    assert_eq!(d.events[0].reason, "ControlIgnored");
    assert!(d.effects.contains(&Effect::ClearControl(Control::Resume)));
}

#[test]
fn pause_at_rest_holds_the_next_rollout_at_zero_after_prepare() {
    let plan = mk_plan();
    let d = decide(Some(&at_rest()), &with(pause(), mk_obs(t(1))), &plan, None);
    assert_eq!(d.status.phase, Phase::Initialized);
    assert!(d.status.pause_pending);
    assert_eq!(ack(&d), (Control::Pause, ControlOutcome::Applied));
    assert!(d.effects.contains(&Effect::ClearControl(Control::Pause)));
    let preparing = decide(Some(&d.status), &mk_intercepted(t(2)), &plan, None).status;
    assert_eq!(preparing.phase, Phase::Preparing);
    let ready = Observation {
        primary: Some(Readiness::Ready),
        ..mk_intercepted(t(5))
    };
    let d = decide(Some(&preparing), &ready, &plan, None);
    assert_eq!(d.status.phase, Phase::Paused);
    assert_eq!(d.status.weight, 0);
    assert!(!d.status.pause_pending, "the hold is used up");
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
    assert!(d.effects.contains(&Effect::SetPaused(false)));
    // Held: the canary is ready but gets no traffic until resume.
    let d2 = decide(Some(&d.status), &at(100, in_progress()), &plan, None);
    assert_eq!((d2.status.phase, d2.status.weight), (Phase::Paused, 0));
    let d3 = decide(
        Some(&d.status),
        &with(resume(), at(100, in_progress())),
        &plan,
        None,
    );
    assert_eq!(
        (d3.status.phase, d3.status.weight),
        (Phase::Progressing, 10)
    );
}

#[test]
fn resume_at_rest_cancels_an_armed_pause() {
    let armed = decide(
        Some(&at_rest()),
        &with(pause(), mk_obs(t(1))),
        &mk_plan(),
        None,
    )
    .status;
    let d = decide(
        Some(&armed),
        &with(resume(), mk_obs(t(2))),
        &mk_plan(),
        None,
    );
    assert!(!d.status.pause_pending);
    assert_eq!(ack(&d), (Control::Resume, ControlOutcome::Applied));
}

#[test]
fn a_new_revision_while_paused_restarts_at_zero_and_stays_paused() {
    let plan = mk_plan();
    let paused = decide(
        Some(&after_a_pass()),
        &with(pause(), at(80, in_progress())),
        &plan,
        None,
    )
    .status;
    let newer = Observation {
        revision: NEWER.into(),
        ..at(90, in_progress())
    };
    let d = decide(Some(&paused), &newer, &plan, None);
    assert_eq!(d.status.phase, Phase::Paused);
    assert_eq!((d.status.weight, d.status.iterations), (0, 0));
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
    assert_eq!(d.events[0].reason, "NewRevision");
}

#[test]
fn promote_after_a_passing_analysis_skips_the_remaining_steps() {
    let d = decide(
        Some(&after_a_pass()),
        &with(promote(Promote::AfterPass), at(80, in_progress())),
        &mk_plan(),
        None,
    );
    assert_eq!(d.status.phase, Phase::Succeeded);
    assert_eq!(d.status.weight, 100);
    assert_eq!(d.status.stable_revision.as_deref(), Some(NEW));
    assert_eq!(ack(&d), (Control::Promote, ControlOutcome::Applied));
    assert_eq!(
        d.events.iter().map(|e| e.reason).collect::<Vec<_>>(),
        vec!["Promoted", "Succeeded"]
    );
    assert_eq!(routes(&d), vec![Weights::AT_REST]);
    assert!(d.effects.contains(&Effect::DeletePrimary));
    assert_eq!(
        d.effects.last(),
        Some(&Effect::ClearControl(Control::Promote))
    );
}

#[test]
fn promote_before_any_passing_analysis_is_refused_with_the_reason() {
    let before = at_first_step();
    let d = decide(
        Some(&before),
        &with(promote(Promote::AfterPass), at(20, in_progress())),
        &mk_plan(),
        None,
    );
    assert_eq!((d.status.phase, d.status.weight), (Phase::Progressing, 10));
    assert_eq!(ack(&d), (Control::Promote, ControlOutcome::Refused));
    assert_eq!(d.events[0].kind, EventType::Warning);
    assert!(
        d.status.message.contains("no analysis has passed yet"),
        "{}",
        d.status.message
    );
    assert!(d.status.message.contains("--force"), "{}", d.status.message);
    assert!(d.effects.contains(&Effect::ClearControl(Control::Promote)));
    assert_eq!(splits(&d), vec![step(10)]);
    // Seen again (the removal lost a write race): removed without a second Event.
    let again = decide(
        Some(&d.status),
        &with(promote(Promote::AfterPass), at(21, in_progress())),
        &mk_plan(),
        None,
    );
    assert_eq!(again.status, d.status);
    assert!(again.events.is_empty());
    assert!(
        again
            .effects
            .contains(&Effect::ClearControl(Control::Promote))
    );
}

#[test]
fn promote_force_skips_the_analysis_but_never_promotes_a_version_that_is_not_ready() {
    let plan = mk_plan();
    let forced = decide(
        Some(&at_first_step()),
        &with(promote(Promote::Force), at(20, in_progress())),
        &plan,
        None,
    );
    assert_eq!(forced.status.phase, Phase::Succeeded);
    assert!(
        forced
            .status
            .last_control
            .unwrap()
            .message
            .contains("forced")
    );
    // The canary reads as rolling (the annotation itself bumped the generation): the promote
    // waits, untouched, for a later pass.
    let rolling = Observation {
        app: Readiness::Progressing,
        ..at(20, in_progress())
    };
    let d = decide(
        Some(&at_first_step()),
        &with(promote(Promote::Force), rolling),
        &plan,
        None,
    );
    assert_eq!(d.status, at_first_step());
    assert!(d.events.is_empty());
    assert!(!d.effects.contains(&Effect::ClearControl(Control::Promote)));
    // Failed to roll out: refused, and the rollback starts.
    let failed = Observation {
        app: Readiness::Failed("ProgressDeadlineExceeded".into()),
        ..at(20, in_progress())
    };
    let d = decide(
        Some(&at_first_step()),
        &with(promote(Promote::Force), failed),
        &plan,
        None,
    );
    assert_eq!(ack(&d), (Control::Promote, ControlOutcome::Refused));
    assert!(
        d.events[0].message.contains("failed to roll out"),
        "{:?}",
        d.events
    );
    assert_eq!(d.status.phase, Phase::RollingBack);
    assert!(d.effects.contains(&Effect::ClearControl(Control::Promote)));
}

#[test]
fn promote_from_pause_is_allowed_after_a_pass() {
    let plan = mk_plan();
    let paused = decide(
        Some(&after_a_pass()),
        &with(pause(), at(80, in_progress())),
        &plan,
        None,
    )
    .status;
    let d = decide(
        Some(&paused),
        &with(promote(Promote::AfterPass), at(90, in_progress())),
        &plan,
        None,
    );
    assert_eq!(d.status.phase, Phase::Succeeded);
}

#[test]
fn promote_with_nothing_to_promote_is_refused() {
    let plan = mk_plan();
    let mut failed = at_rest();
    failed.phase = Phase::Failed;
    failed.message = "aborted by sluice.dev/abort".into();
    let d = decide(
        Some(&failed),
        &with(promote(Promote::AfterPass), mk_obs(t(1))),
        &plan,
        None,
    );
    assert_eq!(ack(&d), (Control::Promote, ControlOutcome::Refused));
    assert_eq!(
        d.status.message, failed.message,
        "the message still explains the rollback"
    );
    let d = decide(
        Some(&at_rest()),
        &with(promote(Promote::Force), mk_obs(t(1))),
        &plan,
        None,
    );
    assert_eq!(d.status.phase, Phase::Initialized);
    assert_eq!(ack(&d), (Control::Promote, ControlOutcome::Refused));
    assert!(
        d.status
            .last_control
            .unwrap()
            .message
            .contains("nothing to promote")
    );
    let preparing = decide(Some(&at_rest()), &mk_intercepted(t(0)), &plan, None).status;
    let d = decide(
        Some(&preparing),
        &with(promote(Promote::Force), mk_intercepted(t(1))),
        &plan,
        None,
    );
    assert_eq!(d.status.phase, Phase::Preparing);
    assert_eq!(ack(&d), (Control::Promote, ControlOutcome::Refused));
}

#[test]
fn abort_mid_rollout_rolls_back_is_acknowledged_and_cleared_once() {
    let plan = mk_plan();
    let d = decide(
        Some(&after_a_pass()),
        &with(abort(), at(80, in_progress())),
        &plan,
        None,
    );
    assert_eq!(d.status.phase, Phase::RollingBack);
    assert_eq!(d.status.weight, 0);
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
    assert!(d.effects.contains(&Effect::RestoreStableTemplate));
    assert_eq!(ack(&d), (Control::Abort, ControlOutcome::Applied));
    assert_eq!(d.events[0].reason, "Aborted");
    assert_eq!(
        d.effects.last(),
        Some(&Effect::ClearControl(Control::Abort))
    );
    // Killed before the annotation went: seen again, it is removed without a second word.
    let again = decide(
        Some(&d.status),
        &with(abort(), at(81, in_progress())),
        &plan,
        None,
    );
    assert_eq!(again.status, d.status);
    assert!(again.events.is_empty());
    assert_eq!(
        again.effects.last(),
        Some(&Effect::ClearControl(Control::Abort))
    );
    // The rollback finishes: the aborted revision is the failed one.
    let restored = Observation {
        revision: STABLE.into(),
        ..at(90, in_progress())
    };
    let done = decide(Some(&d.status), &restored, &plan, None);
    assert_eq!(done.status.phase, Phase::Failed);
    assert_eq!(done.status.failed_revision.as_deref(), Some(NEW));
}

#[test]
fn abort_while_paused_rolls_back_and_abort_at_rest_is_refused() {
    let plan = mk_plan();
    let paused = decide(
        Some(&at_first_step()),
        &with(pause(), at(20, in_progress())),
        &plan,
        None,
    )
    .status;
    let d = decide(
        Some(&paused),
        &with(abort(), at(30, in_progress())),
        &plan,
        None,
    );
    assert_eq!(d.status.phase, Phase::RollingBack);
    let d = decide(Some(&at_rest()), &with(abort(), mk_obs(t(1))), &plan, None);
    assert_eq!(d.status.phase, Phase::Initialized);
    assert_eq!(ack(&d), (Control::Abort, ControlOutcome::Refused));
    assert!(d.effects.contains(&Effect::ClearControl(Control::Abort)));
    assert_eq!(routes(&d), vec![Weights::AT_REST]);
}

#[test]
fn abort_wins_over_promote_and_pause_set_together() {
    let all = Controls {
        abort: true,
        pause: true,
        promote: Some(Promote::Force),
        ..Controls::default()
    };
    let d = decide(
        Some(&after_a_pass()),
        &with(all, at(80, in_progress())),
        &mk_plan(),
        None,
    );
    assert_eq!(d.status.phase, Phase::RollingBack);
    for verb in [Control::Abort, Control::Promote, Control::Pause] {
        assert!(d.effects.contains(&Effect::ClearControl(verb)), "{verb:?}");
    }
}

#[test]
fn retry_at_rest_forgets_the_failed_revision_so_it_can_be_applied_again() {
    let mut failed = at_rest();
    failed.phase = Phase::Failed;
    failed.failed_revision = Some(NEW.into());
    let d = decide(
        Some(&failed),
        &with(retry(), mk_obs(t(1))),
        &mk_plan(),
        None,
    );
    assert_eq!(d.status.phase, Phase::Failed);
    assert_eq!(d.status.failed_revision, None);
    assert_eq!(ack(&d), (Control::Retry, ControlOutcome::Applied));
    assert_eq!(d.events[0].reason, "Retried");
    assert!(d.effects.contains(&Effect::ClearControl(Control::Retry)));
    // Seen again (the controller was killed before removing it): removed without a word.
    let again = decide(
        Some(&d.status),
        &with(retry(), mk_obs(t(2))),
        &mk_plan(),
        None,
    );
    assert_eq!(again.status, d.status);
    assert!(again.events.is_empty());
    assert!(
        again
            .effects
            .contains(&Effect::ClearControl(Control::Retry))
    );
}

#[test]
fn retry_with_no_failed_revision_is_acknowledged_as_nothing_to_do() {
    let d = decide(
        Some(&at_rest()),
        &with(retry(), mk_obs(t(1))),
        &mk_plan(),
        None,
    );
    assert_eq!(ack(&d), (Control::Retry, ControlOutcome::NoOp));
    assert!(d.effects.contains(&Effect::ClearControl(Control::Retry)));
}

#[test]
fn pause_while_rolling_back_is_refused() {
    let plan = mk_plan();
    let rolling_back = decide(
        Some(&after_a_pass()),
        &with(abort(), at(80, in_progress())),
        &plan,
        None,
    )
    .status;
    let d = decide(
        Some(&rolling_back),
        &with(pause(), at(81, in_progress())),
        &plan,
        None,
    );
    assert_eq!(d.status.phase, Phase::RollingBack);
    assert_eq!(ack(&d), (Control::Pause, ControlOutcome::Refused));
}

// ---------------------------------------------------------------------------------------------
// Hooks
// ---------------------------------------------------------------------------------------------

fn hooked(kinds: &[HookType]) -> Plan {
    Plan {
        hooks: kinds.to_vec(),
        ..mk_plan()
    }
}

fn hook_verdict(name: &str, result: CheckResult) -> CheckVerdict {
    CheckVerdict {
        name: name.into(),
        result,
        value: Some(500.0),
        detail: format!("{name}: http://smoke/ answered 500 after 1 attempt"),
        baseline: None,
    }
}

#[test]
fn a_failing_pre_rollout_hook_holds_zero_percent_and_rolls_back_at_threshold() {
    let plan = hooked(&[HookType::PreRollout]);
    let mut status = mk_progressing_at_zero();
    let first = at(10, in_progress());
    let due = analysis_plan(Some(&status), &first, &plan).expect("due at once at 0%");
    assert_eq!(
        due,
        AnalysisPlan {
            checks: false,
            baseline: false,
            hooks: vec![HookType::PreRollout]
        }
    );
    // Without the hook's answer nothing moves.
    let d = decide(Some(&status), &first, &plan, None);
    assert_eq!(d.status.weight, 0);
    for n in 1..=3u64 {
        let obs = at(10 + 60 * (n - 1), in_progress());
        assert!(analysis_due(Some(&status), &obs, &plan), "try {n}");
        let failed = [hook_verdict("pre-rollout-hook", CheckResult::Fail)];
        let d = decide(Some(&status), &obs, &plan, Some(&failed));
        assert!(
            routes(&d).iter().all(|w| w.canary == 0),
            "no traffic to the canary: {:?}",
            d.effects
        );
        assert_eq!(d.status.failed_checks, n as u32);
        status = d.status;
        if n < 3 {
            assert_eq!(status.phase, Phase::Progressing);
            assert!(!analysis_due(
                Some(&status),
                &at(10 + 60 * (n - 1) + 30, in_progress()),
                &plan
            ));
        }
    }
    assert_eq!(status.phase, Phase::RollingBack);
    assert!(
        status.message.contains("pre-rollout-hook fail"),
        "{}",
        status.message
    );
}

#[test]
fn a_passing_pre_rollout_hook_takes_the_first_step_without_counting_an_analysis() {
    let plan = hooked(&[HookType::PreRollout, HookType::Rollout]);
    let passed = [hook_verdict("pre-rollout-hook", CheckResult::Pass)];
    let d = decide(
        Some(&mk_progressing_at_zero()),
        &at(10, in_progress()),
        &plan,
        Some(&passed),
    );
    assert_eq!(d.status.weight, 10);
    assert_eq!(d.status.iterations, 0);
    let due = analysis_plan(Some(&d.status), &at(70, in_progress()), &plan).unwrap();
    assert_eq!(
        due,
        AnalysisPlan {
            checks: true,
            baseline: true,
            hooks: vec![HookType::Rollout]
        }
    );
}

#[test]
fn a_failing_rollout_hook_is_a_failed_check_and_holds_the_weight() {
    let plan = hooked(&[HookType::Rollout]);
    let mut checks = verdict(CheckResult::Pass);
    checks.push(hook_verdict("rollout-hook", CheckResult::Fail));
    let d = decide(
        Some(&at_first_step()),
        &at(100, in_progress()),
        &plan,
        Some(&checks),
    );
    assert_eq!((d.status.weight, d.status.failed_checks), (10, 1));
}

/// A status at max weight (50%) with the analysis due at t(1000).
fn at_max_weight(plan: &Plan) -> RolloutStatus {
    let mut status = mk_progressing_at_zero();
    let mut now = 10;
    while status.weight < 50 {
        let obs = at(now, in_progress());
        let verdicts = analysis_due(Some(&status), &obs, plan).then(|| verdict(CheckResult::Pass));
        status = decide(Some(&status), &obs, plan, verdicts.as_deref()).status;
        now += 60;
    }
    status.last_analysis = Some(Timestamp(t(940)));
    status
}

#[test]
fn confirm_promotion_waits_while_the_analysis_goes_on_then_promotes_on_a_2xx() {
    let plan = hooked(&[HookType::ConfirmPromotion]);
    let status = at_max_weight(&plan);
    let due = analysis_plan(Some(&status), &at(1000, in_progress()), &plan).unwrap();
    assert_eq!(due.hooks, vec![HookType::ConfirmPromotion]);
    let no = Observation {
        hooks: HookAnswers {
            confirm_promotion: Some(Err(
                "confirm-promotion hook http://gate/ answered 403".into()
            )),
            rollback: None,
        },
        ..at(1000, in_progress())
    };
    let d = decide(Some(&status), &no, &plan, Some(&verdict(CheckResult::Pass)));
    assert_eq!(d.status.phase, Phase::WaitingPromotion);
    assert_eq!(d.status.weight, 50);
    assert_eq!(d.events[0].reason, "WaitingPromotion");
    assert!(
        d.status.message.contains("answered 403"),
        "{}",
        d.status.message
    );
    // Waiting, the analysis keeps running and still counts failures.
    let waiting = d.status;
    let later = Observation {
        now: t(1060),
        ..no.clone()
    };
    assert!(analysis_due(Some(&waiting), &later, &plan));
    let d = decide(
        Some(&waiting),
        &later,
        &plan,
        Some(&verdict(CheckResult::Fail)),
    );
    assert_eq!(
        (d.status.phase, d.status.failed_checks),
        (Phase::WaitingPromotion, 1)
    );
    let d2 = decide(
        Some(&waiting),
        &later,
        &plan,
        Some(&verdict(CheckResult::Pass)),
    );
    assert!(d2.events.is_empty(), "no second WaitingPromotion event");
    // The gate says yes.
    let yes = Observation {
        hooks: HookAnswers {
            confirm_promotion: Some(Ok(())),
            rollback: None,
        },
        ..at(1120, in_progress())
    };
    let d = decide(
        Some(&waiting),
        &yes,
        &plan,
        Some(&verdict(CheckResult::Pass)),
    );
    assert_eq!(d.status.phase, Phase::Promoting);
    assert!(d.status.message.is_empty());
}

#[test]
fn a_2xx_from_a_rollback_hook_rolls_the_canary_back() {
    let plan = hooked(&[HookType::Rollback]);
    let obs = Observation {
        hooks: HookAnswers {
            confirm_promotion: None,
            rollback: Some("rollback hook http://stop/ answered 200 after 1 attempt".into()),
        },
        ..at(100, in_progress())
    };
    let d = decide(
        Some(&at_first_step()),
        &obs,
        &plan,
        Some(&verdict(CheckResult::Pass)),
    );
    assert_eq!(d.status.phase, Phase::RollingBack);
    assert!(
        d.status
            .message
            .starts_with("a rollback hook asked for it: rollback hook http://stop/"),
        "{}",
        d.status.message
    );
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
}

#[test]
fn post_rollout_hooks_are_called_once_when_a_rollback_finishes() {
    let plan = mk_plan();
    let rolling = decide(
        Some(&at_first_step()),
        &with(abort(), at(100, in_progress())),
        &plan,
        None,
    )
    .status;
    let restored = Observation {
        revision: STABLE.into(),
        ..at(110, in_progress())
    };
    let d = decide(Some(&rolling), &restored, &plan, None);
    assert_eq!(d.status.phase, Phase::Failed);
    assert!(d.effects.contains(&Effect::PostRolloutHooks));
    let again = decide(Some(&d.status), &at(120, restored), &plan, None);
    assert!(!again.effects.contains(&Effect::PostRolloutHooks));
}

// ---------------------------------------------------------------------------------------------
// Blue/green
// ---------------------------------------------------------------------------------------------

/// `text` contains `words`, or the test fails showing `text`.
fn assert_says(text: &str, words: &str) {
    assert!(text.contains(words), "{words:?} not in {text:?}");
}

fn blue_green(iterations: u32, hooks: &[HookType]) -> Plan {
    Plan {
        strategy: Strategy::BlueGreen,
        iterations,
        hooks: hooks.to_vec(),
        ..mk_plan()
    }
}

/// Drives `status` through `decide` at `now`, with passing checks when the analysis is due.
fn pass_if_due(status: &RolloutStatus, now: u64, plan: &Plan) -> Decision {
    let obs = at(now, in_progress());
    let verdicts = analysis_due(Some(status), &obs, plan).then(|| verdict(CheckResult::Pass));
    decide(Some(status), &obs, plan, verdicts.as_deref())
}

/// Drives `status` through `decide` at `now`, where the analysis must be due, with a failing check.
fn fail_when_due(status: &RolloutStatus, now: u64, plan: &Plan) -> Decision {
    let obs = at(now, in_progress());
    assert!(analysis_due(Some(status), &obs, plan), "due at t({now})");
    decide(Some(status), &obs, plan, Some(&verdict(CheckResult::Fail)))
}

/// A blue/green rollout whose iterations started at t(10) (no pre-rollout hook).
fn analysing_blue_green(plan: &Plan) -> RolloutStatus {
    let d = decide(
        Some(&mk_progressing_at_zero()),
        &at(10, in_progress()),
        plan,
        None,
    );
    assert_eq!(d.events[0].reason, "Analysing");
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
    assert_eq!(
        (
            d.status.weight,
            d.status.iteration_goal,
            d.status.iterations
        ),
        (0, Some(plan.iterations), 0)
    );
    d.status
}

#[test]
fn blue_green_keeps_all_traffic_on_the_primary_for_the_iterations_then_switches_at_once() {
    let plan = blue_green(3, &[]);
    let mut status = analysing_blue_green(&plan);
    assert!(!analysis_due(Some(&status), &at(40, in_progress()), &plan));
    for k in 1..=3u32 {
        let now = 10 + 60 * u64::from(k);
        let due = analysis_plan(Some(&status), &at(now, in_progress()), &plan).unwrap();
        assert!(due.checks, "iteration {k} runs the checks");
        let d = pass_if_due(&status, now, &plan);
        assert_eq!(d.status.iterations, k);
        assert_eq!(d.status.weight, 0, "iteration {k}");
        assert!(
            routes(&d).iter().all(|w| *w == Weights::ALL_PRIMARY),
            "iteration {k}: {:?}",
            d.effects
        );
        status = d.status;
        if k < 3 {
            assert_eq!(status.phase, Phase::Progressing);
            assert_eq!(d.events[0].reason, "IterationPassed");
            assert_says(&d.events[0].message, &format!("iteration {k}/3"));
        }
    }
    assert_eq!(status.phase, Phase::Promoting);
    let d = decide(Some(&status), &at(200, in_progress()), &plan, None);
    assert_eq!(d.status.phase, Phase::Succeeded);
    assert_eq!(routes(&d), vec![Weights::AT_REST], "100% canary at once");
    assert!(d.effects.contains(&Effect::DeletePrimary));
}

/// The built-in success-rate check without a verdict, because `why`.
fn no_verdict(why: &str) -> CheckVerdict {
    CheckVerdict {
        result: CheckResult::NoVerdict,
        value: None,
        detail: why.into(),
        ..verdict(CheckResult::Pass)[0].clone()
    }
}

/// `status` is RollingBack, and the next pass routes everything to the primary at once and
/// restores the stable template.
fn assert_rolls_back_all_to_the_primary(status: &RolloutStatus, plan: &Plan) {
    assert_eq!(status.phase, Phase::RollingBack);
    let d = decide(Some(status), &at(200, in_progress()), plan, None);
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
    assert!(d.effects.contains(&Effect::RestoreStableTemplate));
}

#[test]
fn a_failing_blue_green_rolls_back_without_the_canary_ever_receiving_traffic() {
    let plan = blue_green(5, &[]);
    let mut status = analysing_blue_green(&plan);
    for n in 1..=3u32 {
        let d = fail_when_due(&status, 10 + 60 * u64::from(n), &plan);
        assert!(routes(&d).iter().all(|w| w.canary == 0), "{:?}", d.effects);
        assert_eq!((d.status.failed_checks, d.status.iterations), (n, 0));
        if n < 3 {
            assert_says(&d.events[0].message, "in iteration 1/5");
        }
        status = d.status;
    }
    assert_rolls_back_all_to_the_primary(&status, &plan);
}

#[test]
fn without_live_traffic_a_passing_custom_check_or_hook_passes_a_blue_green_interval() {
    let plan = blue_green(3, &[HookType::Rollout]);
    let status = analysing_blue_green(&plan);
    let obs = at(70, in_progress());
    let silent_builtin = no_verdict("no requests to -canary in the last 1m");
    let passed = vec![
        silent_builtin.clone(),
        hook_verdict("acceptance", CheckResult::Pass),
    ];
    let d = decide(Some(&status), &obs, &plan, Some(&passed));
    assert_eq!(
        (d.status.iterations, d.status.silent_intervals),
        (1, 0),
        "silence does not hold a blue/green back when something passed"
    );
    // Nothing passed: a silent interval, as for canary.
    let d = decide(
        Some(&status),
        &obs,
        &plan,
        Some(std::slice::from_ref(&silent_builtin)),
    );
    assert_eq!((d.status.iterations, d.status.silent_intervals), (0, 1));
    assert_eq!(d.events[0].reason, "NoVerdict");
    // A canary still needs every check's verdict.
    let canary = decide(
        Some(&at_first_step()),
        &at(100, in_progress()),
        &mk_plan(),
        Some(&passed),
    );
    assert_eq!(
        (canary.status.weight, canary.status.silent_intervals),
        (10, 1)
    );
}

#[test]
fn blue_green_hooks_run_pre_rollout_first_then_rollout_each_interval_and_confirm_before_the_switch()
{
    let plan = blue_green(
        2,
        &[
            HookType::PreRollout,
            HookType::Rollout,
            HookType::ConfirmPromotion,
        ],
    );
    let zero = mk_progressing_at_zero();
    let gate = analysis_plan(Some(&zero), &at(10, in_progress()), &plan).expect("gate due");
    assert_eq!(
        gate,
        AnalysisPlan {
            checks: false,
            baseline: false,
            hooks: vec![HookType::PreRollout]
        }
    );
    let d = decide(
        Some(&zero),
        &at(10, in_progress()),
        &plan,
        Some(&[hook_verdict("pre-rollout-hook", CheckResult::Pass)]),
    );
    assert_eq!(
        (
            d.status.iteration_goal,
            d.status.iterations,
            d.status.weight
        ),
        (Some(2), 0, 0),
        "the pre-rollout hook counts no iteration"
    );
    assert_eq!(d.events[0].reason, "Analysing");
    let status = d.status;
    assert!(!analysis_due(Some(&status), &at(40, in_progress()), &plan));
    let first = analysis_plan(Some(&status), &at(70, in_progress()), &plan).unwrap();
    assert_eq!(
        first,
        AnalysisPlan {
            checks: true,
            baseline: true,
            hooks: vec![HookType::Rollout]
        }
    );
    let status = pass_if_due(&status, 70, &plan).status;
    let last = analysis_plan(Some(&status), &at(130, in_progress()), &plan).unwrap();
    assert_eq!(
        last.hooks,
        vec![HookType::Rollout, HookType::ConfirmPromotion]
    );
    let d = pass_if_due(&status, 130, &plan);
    assert_eq!(d.status.phase, Phase::WaitingPromotion);
    assert_eq!(d.status.weight, 0);
    assert_says(&d.status.message, "2 passing iterations");
}

#[test]
fn a_new_revision_mid_blue_green_analysis_starts_the_iterations_over() {
    let plan = blue_green(3, &[]);
    let mut status = analysing_blue_green(&plan);
    for now in [70, 130] {
        status = pass_if_due(&status, now, &plan).status;
    }
    assert_eq!(status.iterations, 2);
    let newer = Observation {
        revision: NEWER.into(),
        ..at(150, in_progress())
    };
    let d = decide(Some(&status), &newer, &plan, None);
    assert_eq!(d.events[0].reason, "NewRevision");
    assert_eq!(d.status.revision.as_deref(), Some(NEWER));
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
    assert_eq!(d.status.iterations, 0);
    // Ready at once here: the iterations start again from 1.
    assert_eq!(d.status.iteration_goal, Some(3));
    assert_eq!(d.events[1].reason, "Analysing");
    assert_eq!(d.status.last_analysis, Some(Timestamp(t(150))));
    assert!(!analysis_due(
        Some(&d.status),
        &Observation {
            now: t(190),
            ..newer.clone()
        },
        &plan
    ));
}

// --- A/B testing ------------------------------------------------------------------------------

fn ab_testing(iterations: u32, hooks: &[HookType]) -> Plan {
    Plan {
        strategy: Strategy::AbTesting,
        ..blue_green(iterations, hooks)
    }
}

/// An A/B rollout whose iterations started at t(10) (no pre-rollout hook).
fn analysing_ab(plan: &Plan) -> RolloutStatus {
    let d = decide(
        Some(&mk_progressing_at_zero()),
        &at(10, in_progress()),
        plan,
        None,
    );
    assert_eq!(d.events[0].reason, "Analysing");
    assert_says(
        &d.events[0].message,
        "A/B: requests matching sluice.dev/match",
    );
    assert_eq!(splits(&d), vec![Split::Matched]);
    assert_eq!(
        (d.status.weight, d.status.iteration_goal),
        (0, Some(plan.iterations))
    );
    d.status
}

#[test]
fn the_iteration_strategies_are_blue_green_and_ab_testing_each_with_its_held_route() {
    assert!(!mk_plan().iterates());
    assert!(blue_green(3, &[]).iterates());
    assert!(ab_testing(3, &[]).iterates());
    assert_eq!(
        blue_green(3, &[]).iteration_route(),
        Split::Weighted(Weights::ALL_PRIMARY)
    );
    assert_eq!(ab_testing(3, &[]).iteration_route(), Split::Matched);
}

#[test]
fn ab_testing_routes_matching_requests_to_the_canary_for_the_iterations_then_switches_at_once() {
    let plan = ab_testing(3, &[]);
    let mut status = analysing_ab(&plan);
    // Before the iterations (Preparing with the primary ready) the route is all primary.
    let preparing = decide(Some(&at_rest()), &mk_intercepted(t(0)), &plan, None).status;
    let primary_ready = Observation {
        primary: Some(Readiness::Ready),
        ..mk_intercepted(t(5))
    };
    assert_eq!(
        splits(&decide(Some(&preparing), &primary_ready, &plan, None)),
        vec![Split::Weighted(Weights::ALL_PRIMARY)]
    );
    for k in 1..=3u32 {
        let now = 10 + 60 * u64::from(k);
        let due = analysis_plan(Some(&status), &at(now, in_progress()), &plan).unwrap();
        assert!(due.checks, "iteration {k} runs the checks");
        let d = pass_if_due(&status, now, &plan);
        assert_eq!((d.status.iterations, d.status.weight), (k, 0));
        if k < 3 {
            assert_eq!(splits(&d), vec![Split::Matched], "iteration {k}");
            assert_eq!(d.events[0].reason, "IterationPassed");
            assert_says(
                &d.events[0].message,
                &format!("A/B: analysis passed, iteration {k}/3"),
            );
            assert_says(&d.events[0].message, "all others to the primary");
        }
        status = d.status;
    }
    assert_eq!(status.phase, Phase::Promoting);
    let d = decide(Some(&status), &at(200, in_progress()), &plan, None);
    assert_eq!(d.status.phase, Phase::Succeeded);
    assert_eq!(routes(&d), vec![Weights::AT_REST], "100% canary at once");
}

#[test]
fn a_failing_ab_test_takes_every_request_back_to_the_primary_at_once() {
    let plan = ab_testing(5, &[]);
    let mut status = analysing_ab(&plan);
    for n in 1..=3u32 {
        let d = fail_when_due(&status, 10 + 60 * u64::from(n), &plan);
        assert_eq!(d.status.failed_checks, n);
        let holds = n < 3;
        assert_eq!(
            splits(&d).contains(&Split::Matched),
            holds,
            "below the threshold the matched route holds, at it the rollback starts: {:?}",
            d.effects
        );
        status = d.status;
    }
    assert_rolls_back_all_to_the_primary(&status, &plan);
}

#[test]
fn ab_testing_needs_the_built_in_checks_verdicts_since_the_canary_has_live_matching_traffic() {
    let plan = ab_testing(3, &[HookType::Rollout]);
    let status = analysing_ab(&plan);
    let silent_builtin = no_verdict("5 requests to -canary in the last 1m, below min-requests 20");
    let passed = vec![
        silent_builtin,
        hook_verdict("acceptance", CheckResult::Pass),
    ];
    let d = decide(Some(&status), &at(70, in_progress()), &plan, Some(&passed));
    assert_eq!((d.status.iterations, d.status.silent_intervals), (0, 1));
    assert_eq!(d.events[0].reason, "NoVerdict");
    assert_eq!(splits(&d), vec![Split::Matched], "the route holds");
}

#[test]
fn an_ab_test_behind_a_pre_rollout_gate_matches_nothing_until_the_gate_passes() {
    let plan = ab_testing(2, &[HookType::PreRollout]);
    let zero = mk_progressing_at_zero();
    let waiting = decide(Some(&zero), &at(10, in_progress()), &plan, None);
    assert_eq!(routes(&waiting), vec![Weights::ALL_PRIMARY]);
    let d = decide(
        Some(&zero),
        &at(10, in_progress()),
        &plan,
        Some(&[hook_verdict("pre-rollout-hook", CheckResult::Pass)]),
    );
    assert_eq!(d.status.iteration_goal, Some(2));
    assert_eq!(splits(&d), vec![Split::Matched]);
}

#[test]
fn a_new_revision_mid_ab_test_sends_matching_requests_nowhere_new_until_it_is_ready() {
    let plan = ab_testing(3, &[]);
    let status = pass_if_due(&analysing_ab(&plan), 70, &plan).status;
    let rolling = Observation {
        revision: NEWER.into(),
        app: Readiness::Progressing,
        ..at(100, in_progress())
    };
    let d = decide(Some(&status), &rolling, &plan, None);
    assert_eq!(d.events[0].reason, "NewRevision");
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
    assert_eq!((d.status.iterations, d.status.iteration_goal), (0, None));
    let ready = Observation {
        revision: NEWER.into(),
        ..at(110, in_progress())
    };
    let d = decide(Some(&d.status), &ready, &plan, None);
    assert_eq!(splits(&d), vec![Split::Matched]);
}

#[test]
fn a_paused_ab_test_holds_the_matched_route_and_an_abort_takes_it_back_at_once() {
    let plan = ab_testing(3, &[]);
    let status = analysing_ab(&plan);
    let pause = Observation {
        controls: Controls {
            pause: true,
            ..Controls::default()
        },
        ..at(20, in_progress())
    };
    let d = decide(Some(&status), &pause, &plan, None);
    assert_eq!(d.status.phase, Phase::Paused);
    assert_eq!(splits(&d), vec![Split::Matched]);
    let abort = Observation {
        controls: Controls {
            abort: true,
            ..Controls::default()
        },
        ..at(30, in_progress())
    };
    let d = decide(Some(&d.status), &abort, &plan, None);
    assert_eq!(d.status.phase, Phase::RollingBack);
    assert_eq!(routes(&d), vec![Weights::ALL_PRIMARY]);
}
