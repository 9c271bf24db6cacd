//! The `Complete` and `Failed` conditions of InstantDbBackup and InstantDbRestore, computed
//! from the phase so every status write carries them (`kubectl wait
//! --for=condition=Complete idbb/NAME`, or `--for=condition=Failed`).

use instant_db_crds::backup::{COMPLETE, FAILED, OperationPhase};
use instant_db_crds::conditions::{NewCondition, Status, set_condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

/// Sets `Complete` and `Failed` for `phase`. `reason` defaults to the phase's name
/// (`Pending`, `Running`, `Completed`, `Failed`); `message` is the status message or error.
pub fn set_conditions(
    conditions: &mut Vec<Condition>,
    phase: Option<OperationPhase>,
    reason: Option<&str>,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let phase = phase.unwrap_or(OperationPhase::Pending);
    let default_reason = match phase {
        OperationPhase::Pending => "Pending",
        OperationPhase::Running => "Running",
        OperationPhase::Completed => "Completed",
        OperationPhase::Failed => "Failed",
    };
    let reason = reason.unwrap_or(default_reason);
    let (complete, failed) = match phase {
        OperationPhase::Completed => (Status::True, Status::False),
        OperationPhase::Failed => (Status::False, Status::True),
        OperationPhase::Pending | OperationPhase::Running => (Status::False, Status::False),
    };
    for (type_, status) in [(COMPLETE, complete), (FAILED, failed)] {
        set_condition(
            conditions,
            NewCondition {
                type_,
                status,
                reason,
                message: message.to_string(),
                observed_generation: generation,
            },
            now,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use instant_db_crds::conditions::find_condition;

    #[test]
    fn complete_and_failed_follow_the_phase() {
        let t: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let mut c = vec![];
        set_conditions(&mut c, Some(OperationPhase::Running), None, "m", Some(2), t);
        let get = |c: &[Condition], ty: &str| {
            let x = find_condition(c, ty).unwrap();
            (x.status.clone(), x.reason.clone(), x.observed_generation)
        };
        assert_eq!(
            get(&c, COMPLETE),
            ("False".into(), "Running".into(), Some(2))
        );
        assert_eq!(get(&c, FAILED), ("False".into(), "Running".into(), Some(2)));
        set_conditions(
            &mut c,
            Some(OperationPhase::Completed),
            None,
            "done",
            Some(2),
            t,
        );
        assert_eq!(get(&c, COMPLETE).0, "True");
        assert_eq!(get(&c, FAILED).0, "False");
        let mut c = vec![];
        set_conditions(
            &mut c,
            Some(OperationPhase::Failed),
            Some("RolledBack"),
            "kept its data",
            Some(1),
            t,
        );
        assert_eq!(
            get(&c, FAILED),
            ("True".into(), "RolledBack".into(), Some(1))
        );
        assert_eq!(get(&c, COMPLETE).0, "False");
        assert_eq!(find_condition(&c, FAILED).unwrap().message, "kept its data");
    }
}
