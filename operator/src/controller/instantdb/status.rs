//! Pure computation of `InstantDbStatus` from what the controller observed.

use instant_db_crds::conditions::{self, NewCondition, Status, set_condition};
use instant_db_crds::{InstantDbStatus, Phase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::engine_client::{DetailedHealth, HealthStatus};

/// Reasons written into conditions (CamelCase, stable: documented in docs/operator.md).
pub mod reasons {
    /// The spec cannot be turned into resources.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// An object of the same name exists and is not owned by the InstantDb.
    pub const NAME_CONFLICT: &str = "NameConflict";
    /// The API server rejected an applied object (HTTP 422).
    pub const APPLY_REJECTED: &str = "ApplyRejected";
    /// `spec.suspend` is true.
    pub const SUSPENDED: &str = "Suspended";
    /// The engine pod is not ready yet.
    pub const ENGINE_STARTING: &str = "EngineStarting";
    /// The StatefulSet is rolling out a new revision.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// The engine is ready.
    pub const ENGINE_READY: &str = "EngineReady";
    /// Everything matches the spec.
    pub const RECONCILED: &str = "Reconciled";
    /// No problem.
    pub const HEALTHY: &str = "Healthy";
    /// The engine reports a degraded component.
    pub const ENGINE_DEGRADED: &str = "EngineDegraded";
    /// The engine reports itself unhealthy.
    pub const ENGINE_UNHEALTHY: &str = "EngineUnhealthy";
    /// The health endpoint could not be read.
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    /// The last integrity check passed.
    pub const INTEGRITY_PASSED: &str = "IntegrityCheckPassed";
    /// The last integrity check failed.
    pub const INTEGRITY_FAILED: &str = "IntegrityCheckFailed";
}

/// What the controller observed, for the status computation.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Problems in the spec (empty when valid).
    pub invalid: Vec<String>,
    /// Reason and message of a failure only the user can fix (`NameConflict`,
    /// `ApplyRejected`), None when the objects were applied.
    pub blocked: Option<(String, String)>,
    /// `spec.suspend`.
    pub suspended: bool,
    /// Ready replicas of the StatefulSet.
    pub ready_replicas: i32,
    /// Whether the StatefulSet has rolled out its latest revision.
    pub rolled_out: bool,
    /// Engine health (None when not asked: pod not ready).
    pub health: Option<Result<DetailedHealth, String>>,
    /// In-cluster endpoint.
    pub endpoint: Option<String>,
}

fn cond<'a>(
    type_: &'a str,
    status: Status,
    reason: &'a str,
    message: String,
    generation: Option<i64>,
) -> NewCondition<'a> {
    NewCondition {
        type_,
        status,
        reason,
        message,
        observed_generation: generation,
    }
}

/// Computes the new status from the previous one and the observations. Fields owned by other
/// controllers (lastBackup, lastRecovery, BackupHealthy, Recovering) are kept.
pub fn compute(
    previous: Option<&InstantDbStatus>,
    o: &Observed,
    now: Timestamp,
) -> InstantDbStatus {
    let mut s = previous.cloned().unwrap_or_default();
    let g = o.generation;
    s.observed_generation = g;
    let c = &mut s.conditions;
    use reasons::*;
    if !o.invalid.is_empty() {
        let msg = format!("fix the spec: {}", o.invalid.join("; "));
        set_condition(
            c,
            cond(
                conditions::READY,
                Status::False,
                INVALID_SPEC,
                msg.clone(),
                g,
            ),
            now,
        );
        set_condition(
            c,
            cond(
                conditions::PROGRESSING,
                Status::False,
                INVALID_SPEC,
                "waiting for a valid spec".into(),
                g,
            ),
            now,
        );
        set_condition(
            c,
            cond(conditions::DEGRADED, Status::True, INVALID_SPEC, msg, g),
            now,
        );
        s.phase = Some(Phase::Failed);
        return s;
    }
    if let Some((reason, msg)) = &o.blocked {
        let reason = reason.as_str();
        set_condition(
            c,
            cond(conditions::READY, Status::False, reason, msg.clone(), g),
            now,
        );
        set_condition(
            c,
            cond(
                conditions::PROGRESSING,
                Status::False,
                reason,
                "blocked until the problem is fixed; retried every 5 minutes".into(),
                g,
            ),
            now,
        );
        set_condition(
            c,
            cond(conditions::DEGRADED, Status::True, reason, msg.clone(), g),
            now,
        );
        s.phase = Some(Phase::Failed);
        return s;
    }
    s.endpoint = o.endpoint.clone();
    s.ready_replicas = Some(o.ready_replicas);
    if o.suspended {
        let msg = "spec.suspend is true: the engine is scaled to zero and backups are paused; the volume is kept".to_string();
        set_condition(
            c,
            cond(conditions::READY, Status::False, SUSPENDED, msg.clone(), g),
            now,
        );
        set_condition(
            c,
            cond(conditions::PROGRESSING, Status::False, SUSPENDED, msg, g),
            now,
        );
        set_condition(
            c,
            cond(
                conditions::DEGRADED,
                Status::False,
                SUSPENDED,
                "suspended".into(),
                g,
            ),
            now,
        );
        s.phase = Some(Phase::Suspended);
        return s;
    }
    if o.ready_replicas < 1 {
        set_condition(
            c,
            cond(
                conditions::READY,
                Status::False,
                ENGINE_STARTING,
                "the engine pod is not ready yet (see kubectl describe pod)".into(),
                g,
            ),
            now,
        );
        set_condition(
            c,
            cond(
                conditions::PROGRESSING,
                Status::True,
                ENGINE_STARTING,
                "waiting for the engine pod to pass its readiness probe".into(),
                g,
            ),
            now,
        );
        set_condition(
            c,
            cond(
                conditions::DEGRADED,
                Status::False,
                HEALTHY,
                "no problem detected".into(),
                g,
            ),
            now,
        );
        s.phase = Some(Phase::Provisioning);
        return s;
    }
    set_condition(
        c,
        cond(
            conditions::READY,
            Status::True,
            ENGINE_READY,
            "the engine serves requests".into(),
            g,
        ),
        now,
    );
    if o.rolled_out {
        set_condition(
            c,
            cond(
                conditions::PROGRESSING,
                Status::False,
                RECONCILED,
                "all resources match the spec".into(),
                g,
            ),
            now,
        );
    } else {
        set_condition(
            c,
            cond(
                conditions::PROGRESSING,
                Status::True,
                ROLLING_OUT,
                "the StatefulSet is rolling out a new revision".into(),
                g,
            ),
            now,
        );
    }
    let (degraded, reason, msg): (bool, &'static str, String) = match &o.health {
        None => (false, HEALTHY, "no problem detected".into()),
        Some(Err(e)) => (
            true,
            HEALTH_CHECK_FAILED,
            format!("cannot read the engine's /health/detailed: {e}"),
        ),
        Some(Ok(h)) => {
            if let Some(n) = h.document_count {
                s.document_count = Some(n);
            }
            if let Some(ic) = &h.last_integrity_check {
                if let Some(at) = ic.at {
                    s.last_integrity_check = Some(Time(at));
                }
                if let Some(ok) = ic.ok {
                    let (r, m) = if ok {
                        (
                            INTEGRITY_PASSED,
                            "the last integrity check passed".to_string(),
                        )
                    } else {
                        (
                            INTEGRITY_FAILED,
                            format!(
                                "the last integrity check failed{}",
                                ic.message
                                    .as_deref()
                                    .map(|m| format!(": {m}"))
                                    .unwrap_or_default()
                            ),
                        )
                    };
                    set_condition(
                        &mut s.conditions,
                        cond(conditions::INTEGRITY_OK, Status::from_bool(ok), r, m, g),
                        now,
                    );
                }
            }
            let bad = h.unhealthy_components();
            match h.status {
                HealthStatus::Healthy | HealthStatus::Unknown if bad.is_empty() => {
                    (false, HEALTHY, "no problem detected".into())
                }
                HealthStatus::Unhealthy => (
                    true,
                    ENGINE_UNHEALTHY,
                    format!("the engine reports itself unhealthy: {}", bad.join(", ")),
                ),
                _ => (
                    true,
                    ENGINE_DEGRADED,
                    format!("the engine reports degraded components: {}", bad.join(", ")),
                ),
            }
        }
    };
    set_condition(
        &mut s.conditions,
        cond(
            conditions::DEGRADED,
            Status::from_bool(degraded),
            reason,
            msg,
            g,
        ),
        now,
    );
    s.phase = Some(if degraded {
        Phase::Degraded
    } else {
        Phase::Running
    });
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::engine_client::IntegrityCheck;
    use instant_db_crds::conditions::{find_condition, is_true};

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn invalid_spec_is_failed_and_degraded() {
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
    }

    #[test]
    fn blocked_apply_is_failed_with_the_reason_and_message() {
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
        let r = find_condition(&s.conditions, conditions::READY).unwrap();
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "ApplyRejected")
        );
        assert!(r.message.contains("requests must be <= limits"));
        let d = find_condition(&s.conditions, conditions::DEGRADED).unwrap();
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "ApplyRejected")
        );
        // the same observation later gives the same status: no write, no hot loop
        let later = Timestamp::from_second(1_800_000_300).unwrap();
        assert_eq!(compute(Some(&s), &o, later), s);
    }

    #[test]
    fn suspended_starting_running_degraded() {
        let s = compute(
            None,
            &Observed {
                suspended: true,
                ..Default::default()
            },
            now(),
        );
        assert_eq!(s.phase, Some(Phase::Suspended));
        let s = compute(None, &Observed::default(), now());
        assert_eq!(s.phase, Some(Phase::Provisioning));
        assert!(is_true(&s.conditions, conditions::PROGRESSING));
        let healthy = DetailedHealth {
            status: HealthStatus::Healthy,
            document_count: Some(5),
            last_integrity_check: Some(IntegrityCheck {
                at: Some(now()),
                ok: Some(true),
                message: None,
            }),
            ..Default::default()
        };
        let o = Observed {
            ready_replicas: 1,
            rolled_out: true,
            health: Some(Ok(healthy)),
            ..Default::default()
        };
        let s1 = compute(Some(&s), &o, now());
        assert_eq!(s1.phase, Some(Phase::Running));
        assert!(is_true(&s1.conditions, conditions::READY));
        assert!(is_true(&s1.conditions, conditions::INTEGRITY_OK));
        assert_eq!(s1.document_count, Some(5));
        // stable: same observations later give an identical status (no write)
        let later = Timestamp::from_second(1_800_000_100).unwrap();
        assert_eq!(compute(Some(&s1), &o, later), s1);
        let o2 = Observed {
            ready_replicas: 1,
            rolled_out: true,
            health: Some(Err("timeout".into())),
            ..Default::default()
        };
        let s2 = compute(Some(&s1), &o2, later);
        assert_eq!(s2.phase, Some(Phase::Degraded));
        assert_eq!(
            find_condition(&s2.conditions, conditions::DEGRADED)
                .unwrap()
                .reason,
            reasons::HEALTH_CHECK_FAILED
        );
        // Ready stayed True: its transition time did not move
        assert_eq!(
            find_condition(&s2.conditions, conditions::READY)
                .unwrap()
                .last_transition_time,
            find_condition(&s1.conditions, conditions::READY)
                .unwrap()
                .last_transition_time
        );
    }
}
