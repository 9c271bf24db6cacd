//! Unit tests of the status computation, one per state, with what kstatus computes.

use super::*;
use crate::engine_client::{HealthStatus, IntegrityCheck};
use instant_db_crds::conditions::{find_condition, is_true};

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn state(s: &InstantDbStatus, type_: &str) -> (String, String) {
    let c = find_condition(&s.conditions, type_).unwrap();
    (c.status.clone(), c.reason.clone())
}

/// What kstatus computes for a custom resource (cli-utils `checkGenericProperties`):
/// observedGeneration behind → InProgress; Reconciling=True → InProgress; Stalled=True →
/// Failed; otherwise Current. Ready is not read by kstatus.
fn kstatus(s: &InstantDbStatus, generation: Option<i64>) -> &'static str {
    if s.observed_generation != generation {
        return "InProgress";
    }
    if is_true(&s.conditions, conditions::RECONCILING) {
        return "InProgress";
    }
    if is_true(&s.conditions, conditions::STALLED) {
        return "Failed";
    }
    "Current"
}

fn problem(reason: &'static str, needs_user: bool) -> EngineView {
    EngineView {
        ready: false,
        problem: Some(Problem {
            reason,
            message: format!("{reason} happened"),
            needs_user,
        }),
    }
}

fn ready() -> Observed {
    Observed {
        generation: Some(2),
        ready_replicas: 1,
        rolled_out: true,
        engine: EngineView {
            ready: true,
            problem: None,
        },
        ..Default::default()
    }
}

#[test]
fn invalid_spec_is_failed_degraded_and_stalled() {
    let s = compute(
        None,
        &Observed {
            invalid: vec!["bad size".into()],
            generation: Some(2),
            ..Default::default()
        },
        now(),
    );
    assert_eq!(s.phase, Some(Phase::Failed));
    assert!(is_true(&s.conditions, conditions::DEGRADED));
    let r = find_condition(&s.conditions, conditions::READY).unwrap();
    assert_eq!(r.reason, reasons::INVALID_SPEC);
    assert!(r.message.contains("bad size"));
    assert_eq!(r.observed_generation, Some(2));
    assert_eq!(
        state(&s, conditions::STALLED),
        ("True".into(), "InvalidSpec".into())
    );
    assert_eq!(kstatus(&s, Some(2)), "Failed");
}

#[test]
fn blocked_apply_is_failed_and_stalled_with_the_reason_and_message() {
    let o = Observed {
        blocked: Some((
            reasons::APPLY_REJECTED.into(),
            "the API server rejected StatefulSet docs: requests must be <= limits".into(),
        )),
        generation: Some(3),
        ..Default::default()
    };
    let s = compute(None, &o, now());
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(
        state(&s, conditions::READY),
        ("False".into(), "ApplyRejected".into())
    );
    assert_eq!(
        state(&s, conditions::DEGRADED),
        ("True".into(), "ApplyRejected".into())
    );
    assert_eq!(
        state(&s, conditions::STALLED),
        ("True".into(), "ApplyRejected".into())
    );
    assert!(
        find_condition(&s.conditions, conditions::STALLED)
            .unwrap()
            .message
            .contains("requests must be <= limits")
    );
    assert_eq!(kstatus(&s, Some(3)), "Failed");
    // the same observation later gives the same status: no write, no hot loop
    let later = Timestamp::from_second(1_800_000_300).unwrap();
    assert_eq!(compute(Some(&s), &o, later), s);
}

#[test]
fn kstatus_per_state() {
    // starting
    let starting = Observed {
        generation: Some(2),
        ..Default::default()
    };
    let s = compute(None, &starting, now());
    assert_eq!(s.phase, Some(Phase::Provisioning));
    assert_eq!(
        state(&s, conditions::RECONCILING),
        ("True".into(), "EngineStarting".into())
    );
    assert_eq!(kstatus(&s, Some(2)), "InProgress");
    // a spec change not yet seen by the operator
    assert_eq!(kstatus(&s, Some(3)), "InProgress");
    // ready and rolled out
    let s = compute(Some(&s), &ready(), now());
    assert_eq!(
        state(&s, conditions::RECONCILING),
        ("False".into(), "Reconciled".into())
    );
    assert_eq!(
        state(&s, conditions::STALLED),
        ("False".into(), "NotStalled".into())
    );
    assert_eq!(kstatus(&s, Some(2)), "Current");
    // ready, rolling out a new revision
    let rolling = Observed {
        rolled_out: false,
        ..ready()
    };
    let s = compute(Some(&s), &rolling, now());
    assert_eq!(
        state(&s, conditions::RECONCILING),
        ("True".into(), "RollingOut".into())
    );
    assert_eq!(kstatus(&s, Some(2)), "InProgress");
    // suspended
    let s = compute(
        Some(&s),
        &Observed {
            suspended: true,
            generation: Some(2),
            ..Default::default()
        },
        now(),
    );
    assert_eq!(s.phase, Some(Phase::Suspended));
    assert_eq!(kstatus(&s, Some(2)), "Current");
    // an engine problem that may pass by itself: in progress, degraded
    for reason in [
        causes::CRASH_LOOP,
        causes::IMAGE_PULL,
        causes::UNSCHEDULABLE,
        causes::VOLUME_PENDING,
        causes::PROBE_FAILING,
        causes::HEALTH_CHECK_FAILED,
    ] {
        let o = Observed {
            engine: problem(reason, false),
            ..ready()
        };
        let s = compute(None, &o, now());
        assert_eq!(
            state(&s, conditions::READY),
            ("False".into(), reason.into())
        );
        assert_eq!(
            state(&s, conditions::DEGRADED),
            ("True".into(), reason.into())
        );
        assert_eq!(
            state(&s, conditions::RECONCILING),
            ("True".into(), reason.into())
        );
        assert_eq!(s.phase, Some(Phase::Degraded));
        assert_eq!(kstatus(&s, Some(2)), "InProgress", "{reason}");
    }
    // a missing Secret: stalled
    let o = Observed {
        engine: problem(causes::SECRET_MISSING, true),
        ..ready()
    };
    let s = compute(None, &o, now());
    assert_eq!(
        state(&s, conditions::STALLED),
        ("True".into(), "SecretMissing".into())
    );
    assert_eq!(kstatus(&s, Some(2)), "Failed");
    // failed integrity: stalled without autoRestore, in progress with it
    let o = Observed {
        engine: problem(causes::INTEGRITY_FAILED, true),
        ..ready()
    };
    assert_eq!(kstatus(&compute(None, &o, now()), Some(2)), "Failed");
    let o = Observed {
        auto_restore: true,
        ..o
    };
    assert_eq!(kstatus(&compute(None, &o, now()), Some(2)), "InProgress");
    // serving with a missing model: current, ready, degraded
    let o = Observed {
        engine: EngineView {
            ready: true,
            ..problem(causes::MODEL_NOT_LOADED, false)
        },
        ..ready()
    };
    let s = compute(None, &o, now());
    assert!(is_true(&s.conditions, conditions::READY));
    assert_eq!(
        state(&s, conditions::DEGRADED),
        ("True".into(), "ModelNotLoaded".into())
    );
    assert_eq!(kstatus(&s, Some(2)), "Current");
}

#[test]
fn every_condition_carries_the_generation_of_the_write() {
    let healthy = DetailedHealth {
        status: HealthStatus::Healthy,
        last_integrity_check: Some(IntegrityCheck {
            at: Some(now()),
            ok: Some(true),
            message: None,
        }),
        ..Default::default()
    };
    let o = Observed {
        health: Some(Ok(healthy)),
        ..ready()
    };
    let s = compute(None, &o, now());
    // the engine no longer reports integrity, the spec moved on
    let o2 = Observed {
        generation: Some(5),
        health: None,
        ..ready()
    };
    let s = compute(Some(&s), &o2, now());
    assert!(find_condition(&s.conditions, conditions::INTEGRITY_OK).is_some());
    assert!(
        s.conditions
            .iter()
            .all(|c| c.observed_generation == Some(5)),
        "{:?}",
        s.conditions
    );
}

#[test]
fn a_moving_check_time_and_document_count_change_nothing_between_refreshes() {
    let health = |minute: i64, docs: i64, ok: bool| DetailedHealth {
        status: HealthStatus::Healthy,
        document_count: Some(docs),
        last_integrity_check: Some(IntegrityCheck {
            at: Some(Timestamp::from_second(1_800_000_000 + minute * 60).unwrap()),
            ok: Some(ok),
            message: (!ok).then(|| "page 3".into()),
        }),
        ..Default::default()
    };
    let first = Observed {
        health: Some(Ok(health(0, 5, true))),
        refresh_numbers: true,
        ..ready()
    };
    let s1 = compute(None, &first, now());
    assert_eq!(s1.document_count, Some(5));
    assert_eq!(
        s1.last_integrity_check,
        Some(Time(Timestamp::from_second(1_800_000_000).unwrap()))
    );
    let later = Observed {
        health: Some(Ok(health(7, 9, true))),
        refresh_numbers: false,
        ..ready()
    };
    assert_eq!(compute(Some(&s1), &later, now()), s1, "no change: no write");
    // at the refresh the count is taken
    let refresh = Observed {
        refresh_numbers: true,
        ..later.clone()
    };
    assert_eq!(compute(Some(&s1), &refresh, now()).document_count, Some(9));
    // a new result is written with its time
    let failed = Observed {
        health: Some(Ok(health(8, 9, false))),
        ..later
    };
    let s2 = compute(Some(&s1), &failed, now());
    assert_eq!(state(&s2, conditions::INTEGRITY_OK).0, "False");
    assert_eq!(
        s2.last_integrity_check,
        Some(Time(Timestamp::from_second(1_800_000_480).unwrap()))
    );
}

#[test]
fn ready_stays_true_across_a_degradation_without_moving_its_transition_time() {
    let s1 = compute(None, &ready(), now());
    let later = Timestamp::from_second(1_800_000_100).unwrap();
    let degraded = Observed {
        engine: EngineView {
            ready: true,
            ..problem(causes::ENGINE_DEGRADED, false)
        },
        ..ready()
    };
    let s2 = compute(Some(&s1), &degraded, later);
    assert_eq!(s2.phase, Some(Phase::Degraded));
    let t = |s: &InstantDbStatus| {
        find_condition(&s.conditions, conditions::READY)
            .unwrap()
            .last_transition_time
            .clone()
    };
    assert_eq!(t(&s2), t(&s1));
}
