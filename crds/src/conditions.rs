//! Condition helpers shared by every kind (the `metav1.Condition` shape).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition type: the instance serves requests.
pub const READY: &str = "Ready";
/// Condition type: the operator is still moving the instance towards its desired state.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: something is wrong that needs attention (spec invalid, engine degraded...).
pub const DEGRADED: &str = "Degraded";
/// Condition type: the last integrity check of the engine passed.
pub const INTEGRITY_OK: &str = "IntegrityOk";
/// Condition type: backups of the instance succeed on schedule.
pub const BACKUP_HEALTHY: &str = "BackupHealthy";
/// Condition type: a restore is in progress to recover the instance.
pub const RECOVERING: &str = "Recovering";
/// Condition type: the instance got its first data from `spec.bootstrap.fromBackup` (False
/// while the restore runs or when it cannot, with the reason).
pub const BOOTSTRAPPED: &str = "Bootstrapped";
/// Condition type: continuous archiving keeps up (True: enabled, within `maxLagSeconds`, buffer
/// not full, no error). Absent while no policy archives the instance.
pub const CONTINUOUS_ARCHIVING: &str = "ContinuousArchiving";
/// Condition type (kstatus): True while the operator is still working towards the spec.
pub const RECONCILING: &str = "Reconciling";
/// Condition type (kstatus): True when no progress is possible without a change by the user.
pub const STALLED: &str = "Stalled";

/// Status value of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `"True"`
    True,
    /// `"False"`
    False,
    /// `"Unknown"`
    Unknown,
}

impl Status {
    /// The string written into `condition.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    /// `True` when `b`, else `False`.
    pub fn from_bool(b: bool) -> Self {
        if b { Status::True } else { Status::False }
    }
}

/// A condition to set, without its transition time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCondition<'a> {
    /// Condition type (`Ready`...).
    pub type_: &'a str,
    /// Status.
    pub status: Status,
    /// CamelCase machine-readable reason.
    pub reason: &'a str,
    /// Human-readable message.
    pub message: String,
    /// `metadata.generation` this condition was computed from.
    pub observed_generation: Option<i64>,
}

/// Sets (adds or replaces) a condition in `conditions`. `lastTransitionTime` is kept when the
/// status does not change, and set to `now` when it does (or when the condition is new).
/// Returns true when anything changed.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    new: NewCondition<'_>,
    now: Timestamp,
) -> bool {
    let status = new.status.as_str();
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == new.type_) {
        let transition = existing.status != status;
        let changed = transition
            || existing.reason != new.reason
            || existing.message != new.message
            || existing.observed_generation != new.observed_generation;
        if changed {
            existing.status = status.to_string();
            existing.reason = new.reason.to_string();
            existing.message = new.message;
            existing.observed_generation = new.observed_generation;
            if transition {
                existing.last_transition_time = Time(now);
            }
        }
        changed
    } else {
        conditions.push(Condition {
            type_: new.type_.to_string(),
            status: status.to_string(),
            reason: new.reason.to_string(),
            message: new.message,
            observed_generation: new.observed_generation,
            last_transition_time: Time(now),
        });
        true
    }
}

/// Sets `observedGeneration` of every condition to `generation`: a status written for a
/// generation describes all of it, so no condition keeps an older one (kstatus and
/// `kubectl wait` compare it with `metadata.generation`). Returns true when anything changed.
pub fn refresh_observed_generation(conditions: &mut [Condition], generation: Option<i64>) -> bool {
    let mut changed = false;
    for c in conditions
        .iter_mut()
        .filter(|c| c.observed_generation != generation)
    {
        c.observed_generation = generation;
        changed = true;
    }
    changed
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition `type_` is present with status `"True"`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn c(status: Status, reason: &str) -> NewCondition<'_> {
        NewCondition {
            type_: READY,
            status,
            reason,
            message: "m".into(),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn keeps_transition_time_when_status_unchanged() {
        let mut v = vec![];
        assert!(set_condition(&mut v, c(Status::False, "A"), ts(10)));
        assert!(!set_condition(&mut v, c(Status::False, "A"), ts(20)));
        assert!(set_condition(&mut v, c(Status::False, "B"), ts(30)));
        assert_eq!(v[0].last_transition_time, Time(ts(10)));
        assert_eq!(v[0].reason, "B");
        assert!(set_condition(&mut v, c(Status::True, "B"), ts(40)));
        assert_eq!(v[0].last_transition_time, Time(ts(40)));
        assert!(is_true(&v, READY));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn every_condition_gets_the_generation_of_the_write() {
        let mut v = vec![];
        set_condition(&mut v, c(Status::True, "A"), ts(10));
        set_condition(
            &mut v,
            NewCondition {
                type_: DEGRADED,
                observed_generation: None,
                ..c(Status::False, "B")
            },
            ts(10),
        );
        assert!(refresh_observed_generation(&mut v, Some(4)));
        assert!(v.iter().all(|c| c.observed_generation == Some(4)));
        assert!(!refresh_observed_generation(&mut v, Some(4)));
        assert_eq!(v[0].last_transition_time, Time(ts(10)), "not a transition");
    }
}
