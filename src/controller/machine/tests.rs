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
        abort_requested: false,
        retry_requested: false,
        blocked: None,
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
    }]
}

fn routes(d: &Decision) -> Vec<Weights> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::EnsureRoute(s) => Some(*s),
            _ => None,
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
        .position(|e| *e == Effect::EnsureRoute(Weights::ALL_PRIMARY))
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
            Effect::EnsureRoute(Weights::AT_REST),
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
                Effect::EnsureRoute(Weights::ALL_PRIMARY),
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
    assert_eq!(routes(&d), vec![step(10)]);
    assert!(d.events.is_empty());
}

#[test]
fn abort_rolls_back_even_before_the_first_step() {
    let plan = mk_plan();
    let preparing = decide(Some(&at_rest()), &mk_intercepted(t(0)), &plan, None).status;
    let obs = Observation {
        abort_requested: true,
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
        retry_requested: true,
        ..mk_intercepted(t(0))
    };
    let d = decide(Some(&failed), &obs, &mk_plan(), None);
    assert_eq!(d.status.phase, Phase::Preparing);
    assert_eq!(d.status.failed_revision, None);
    assert!(d.effects.contains(&Effect::ClearRetry));
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
