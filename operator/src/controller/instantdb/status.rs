//! Pure computation of `InstantDbStatus` from what the controller observed.
//!
//! Conditions and what kstatus (Flux, kpt, cli-utils) computes from them:
//! - `Stalled=True` (kstatus `Failed`): nothing happens until the user changes something —
//!   invalid spec, refused apply, name conflict, missing Secret, failed integrity check without
//!   automatic restore.
//! - `Reconciling=True` (kstatus `InProgress`): the operator or the kubelet is still working —
//!   objects rolling out, the engine starting, or an engine problem that can pass without a
//!   spec change (crash loop, image pull, scheduling, volume, probe): Flux's health-check
//!   timeout turns a lasting one into a failure, with the message of `Ready`.
//! - Neither (kstatus `Current`): ready, suspended, or serving with a degradation.
//!
//! Every condition carries the generation of the status write (see `finish`).

use instant_db_crds::conditions::{self, NewCondition, Status, set_condition};
use instant_db_crds::{InstantDbStatus, Phase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::diagnose::{EngineView, Problem, causes};
use crate::engine_client::DetailedHealth;

/// Reasons written into conditions (CamelCase, stable: documented in docs/operator.md). The
/// engine causes (`CrashLoopBackOff`...) are in [`causes`].
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
    /// A child object could not be applied (API error, timeout); retried with backoff.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// `Stalled=False`: progress is possible without the user.
    pub const NOT_STALLED: &str = "NotStalled";
    /// The health endpoint could not be read.
    pub const HEALTH_CHECK_FAILED: &str = super::causes::HEALTH_CHECK_FAILED;
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
    /// `spec.recovery.autoRestore`: a failed integrity check is acted on, not stalled.
    pub auto_restore: bool,
    /// Ready replicas of the StatefulSet.
    pub ready_replicas: i32,
    /// Whether the StatefulSet has rolled out its latest revision.
    pub rolled_out: bool,
    /// Readiness and the first problem, from pod, PVC and engine health.
    pub engine: EngineView,
    /// Engine health (None when not asked: no running pod).
    pub health: Option<Result<DetailedHealth, String>>,
    /// Take the engine's numbers (document count) into status: false between refreshes, so
    /// ingest does not rewrite status on every event.
    pub refresh_numbers: bool,
    /// In-cluster endpoint.
    pub endpoint: Option<String>,
    /// Effective engine image.
    pub image: Option<String>,
    /// A child object could not be applied for a reason that may pass (the error names the
    /// object and carries the API's message); retried with backoff.
    pub apply_failed: Option<String>,
}

fn set(
    c: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
    now: Timestamp,
) {
    set_condition(
        c,
        NewCondition {
            type_,
            status,
            reason,
            message: message.into(),
            // Written for every condition by `finish`.
            observed_generation: None,
        },
        now,
    );
}

/// Ends a status computation: every condition gets the generation of this write.
pub fn finish(s: &mut InstantDbStatus, generation: Option<i64>) {
    s.observed_generation = generation;
    conditions::refresh_observed_generation(&mut s.conditions, generation);
}

/// Sets Ready, Progressing, Degraded, Reconciling, Stalled and the phase for an instance that
/// cannot be built or applied (`reason`: InvalidSpec, NameConflict, ApplyRejected...).
fn stalled(s: &mut InstantDbStatus, reason: &str, msg: &str, now: Timestamp) {
    let c = &mut s.conditions;
    set(c, conditions::READY, Status::False, reason, msg, now);
    let waiting = if reason == reasons::INVALID_SPEC {
        "waiting for a valid spec"
    } else {
        "blocked until the problem is fixed; retried every 5 minutes"
    };
    set(
        c,
        conditions::PROGRESSING,
        Status::False,
        reason,
        waiting,
        now,
    );
    set(
        c,
        conditions::RECONCILING,
        Status::False,
        reason,
        waiting,
        now,
    );
    set(c, conditions::STALLED, Status::True, reason, msg, now);
    set(c, conditions::DEGRADED, Status::True, reason, msg, now);
    s.phase = Some(Phase::Failed);
}

/// `IntegrityOk` and `lastIntegrityCheck` from the engine's latest check. The check time is
/// written only when the result changes (or none is recorded yet): a passing check every few
/// minutes must not rewrite status.
fn integrity(s: &mut InstantDbStatus, health: Option<&DetailedHealth>, now: Timestamp) {
    let Some(ic) = health.and_then(|h| h.last_integrity_check.as_ref()) else {
        return;
    };
    let Some(ok) = ic.ok else { return };
    let (reason, msg) = if ok {
        (
            reasons::INTEGRITY_PASSED,
            "the last integrity check passed".to_string(),
        )
    } else {
        (
            reasons::INTEGRITY_FAILED,
            format!(
                "the last integrity check failed{}",
                ic.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        )
    };
    let before = conditions::find_condition(&s.conditions, conditions::INTEGRITY_OK)
        .map(|c| c.status.clone());
    set(
        &mut s.conditions,
        conditions::INTEGRITY_OK,
        Status::from_bool(ok),
        reason,
        msg,
        now,
    );
    let result_changed = before.as_deref() != Some(Status::from_bool(ok).as_str());
    if let Some(at) = ic.at
        && (result_changed || s.last_integrity_check.is_none())
    {
        s.last_integrity_check = Some(Time(at));
    }
}

/// Computes the new status from the previous one and the observations. Fields owned by other
/// parts of the controller (lastBackup, lastRecovery, BackupHealthy, Recovering) are kept.
pub fn compute(
    previous: Option<&InstantDbStatus>,
    o: &Observed,
    now: Timestamp,
) -> InstantDbStatus {
    let mut s = previous.cloned().unwrap_or_default();
    let g = o.generation;
    if !o.invalid.is_empty() {
        let msg = format!("fix the spec: {}", o.invalid.join("; "));
        stalled(&mut s, reasons::INVALID_SPEC, &msg, now);
        finish(&mut s, g);
        return s;
    }
    if let Some((reason, msg)) = &o.blocked {
        stalled(&mut s, reason, msg, now);
        finish(&mut s, g);
        return s;
    }
    s.endpoint = o.endpoint.clone();
    s.ready_replicas = Some(o.ready_replicas);
    if o.image.is_some() {
        s.image = o.image.clone();
    }
    if o.suspended {
        let msg = "spec.suspend is true: the engine is scaled to zero and backups are paused; the volume is kept";
        let c = &mut s.conditions;
        use reasons::SUSPENDED;
        set(c, conditions::READY, Status::False, SUSPENDED, msg, now);
        set(
            c,
            conditions::PROGRESSING,
            Status::False,
            SUSPENDED,
            msg,
            now,
        );
        set(
            c,
            conditions::RECONCILING,
            Status::False,
            SUSPENDED,
            msg,
            now,
        );
        set(
            c,
            conditions::STALLED,
            Status::False,
            SUSPENDED,
            "suspended by the user",
            now,
        );
        set(
            c,
            conditions::DEGRADED,
            Status::False,
            SUSPENDED,
            "suspended",
            now,
        );
        s.phase = Some(Phase::Suspended);
        finish(&mut s, g);
        return s;
    }
    let health = match &o.health {
        Some(Ok(h)) => Some(h),
        _ => None,
    };
    integrity(&mut s, health, now);
    if let Some(n) = health.and_then(|h| h.document_count)
        && (o.refresh_numbers || s.document_count.is_none())
    {
        s.document_count = Some(n);
    }
    engine_conditions(&mut s, o, now);
    finish(&mut s, g);
    s
}

/// Reason and message of a condition.
type Why<'a> = (&'a str, String);

/// Ready, Degraded, Progressing, Reconciling, Stalled and the phase of a built instance.
fn engine_conditions(s: &mut InstantDbStatus, o: &Observed, now: Timestamp) {
    let e = &o.engine;
    let c = &mut s.conditions;
    let problem = e.problem.as_ref();
    match (e.ready, problem) {
        (true, _) => set(
            c,
            conditions::READY,
            Status::True,
            reasons::ENGINE_READY,
            "the engine serves requests",
            now,
        ),
        (false, Some(p)) => set(
            c,
            conditions::READY,
            Status::False,
            p.reason,
            &p.message,
            now,
        ),
        (false, None) => set(
            c,
            conditions::READY,
            Status::False,
            reasons::ENGINE_STARTING,
            "the engine pod is not ready yet (see kubectl describe pod)",
            now,
        ),
    }
    match problem {
        Some(p) => set(
            c,
            conditions::DEGRADED,
            Status::True,
            p.reason,
            &p.message,
            now,
        ),
        None => set(
            c,
            conditions::DEGRADED,
            Status::False,
            reasons::HEALTHY,
            "no problem detected",
            now,
        ),
    }
    // A failed integrity check with autoRestore is acted on by the operator (Recovering).
    let needs_user =
        |p: &Problem| p.needs_user && !(p.reason == causes::INTEGRITY_FAILED && o.auto_restore);
    let (reconciling, stalled): (Option<Why<'_>>, Option<Why<'_>>) = match problem {
        Some(p) if needs_user(p) => (None, Some((p.reason, p.message.clone()))),
        _ if o.apply_failed.is_some() => (
            Some((
                reasons::APPLY_FAILED,
                format!(
                    "{}; retried with backoff",
                    o.apply_failed.as_deref().unwrap_or_default()
                ),
            )),
            None,
        ),
        Some(p) if !e.ready => (Some((p.reason, p.message.clone())), None),
        None if !e.ready => (
            Some((
                reasons::ENGINE_STARTING,
                "waiting for the engine pod to pass its readiness probe".into(),
            )),
            None,
        ),
        _ if !o.rolled_out => (
            Some((
                reasons::ROLLING_OUT,
                "the StatefulSet is rolling out a new revision".into(),
            )),
            None,
        ),
        _ => (None, None),
    };
    for type_ in [conditions::RECONCILING, conditions::PROGRESSING] {
        match &reconciling {
            Some((reason, msg)) => set(c, type_, Status::True, reason, msg.clone(), now),
            None => set(
                c,
                type_,
                Status::False,
                stalled.as_ref().map_or(reasons::RECONCILED, |(r, _)| r),
                "all resources match the spec",
                now,
            ),
        }
    }
    match &stalled {
        Some((reason, msg)) => set(
            c,
            conditions::STALLED,
            Status::True,
            reason,
            msg.clone(),
            now,
        ),
        None => set(
            c,
            conditions::STALLED,
            Status::False,
            reasons::NOT_STALLED,
            "progress needs no change by the user",
            now,
        ),
    }
    s.phase = Some(if problem.is_some() {
        Phase::Degraded
    } else if e.ready {
        Phase::Running
    } else {
        Phase::Provisioning
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "status_tests.rs"]
mod tests;
