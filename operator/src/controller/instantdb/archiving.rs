//! Continuous archiving of an instance, pure: which InstantDbBackupPolicy archives it (its
//! `spec.continuousArchiving`), the engine's `archive.*` that follows, and what the engine's
//! `GET /admin/archive` means for the status (`firstRecoverabilityPoint`, `lastArchivedTime`,
//! the `ContinuousArchiving` condition).
//!
//! The archive goes to the policy's own destination folder, the one its backups go to: the
//! engine keeps the changes in its `archive/` sub-folder, so the base snapshots and the changes
//! after them are found from one URL, and a restore to any time needs nothing else.

use instant_db_crds::InstantDb;
use instant_db_crds::InstantDbStatus;
use instant_db_crds::backup::{
    BackupDestination, DEFAULT_ARCHIVE_MAX_LAG_SECONDS, InstantDbBackupPolicy,
};
use instant_db_crds::conditions::{self as conds, NewCondition, Status, set_condition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::builders::ArchiveSettings;
use crate::controller::backup::credentials::covers;
use crate::controller::backup::plan::{self, Store};
use crate::engine_client::ArchiveReport;

/// Reasons of the `ContinuousArchiving` condition (documented in docs/operator.md).
pub mod reasons {
    /// Every change reaches the destination within `maxLagSeconds`.
    pub const ARCHIVING: &str = "Archiving";
    /// Changes wait longer than `maxLagSeconds` (the destination is slow or failing).
    pub const LAGGING: &str = "ArchiveLagging";
    /// The waiting changes passed `maxBufferBytes`: the destination failed for long.
    pub const BUFFER_FULL: &str = "ArchiveBufferFull";
    /// Shipping fails (the engine's `last_error`); changes wait on the volume.
    pub const FAILING: &str = "ArchiveFailing";
    /// The policy's destination cannot be turned into a URL (what to fix is in the message).
    pub const DESTINATION_INVALID: &str = "ArchiveDestinationInvalid";
    /// The destination's credentials Secret is missing or incomplete: archiving is not
    /// configured until it is there.
    pub const CREDENTIALS_MISSING: &str = "ArchiveCredentialsMissing";
    /// The engine does not report archiving yet (it restarts onto the new configuration, or
    /// has not answered yet).
    pub const WAITING_FOR_ENGINE: &str = "WaitingForEngine";
}

/// What archiving an instance takes: the policy's settings for the engine, and the
/// credentials Secret they name.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchivePlan {
    /// The InstantDbBackupPolicy that archives the instance.
    pub policy: String,
    /// The engine's `archive.*`.
    pub settings: ArchiveSettings,
    /// The policy's destination with every default filled in (as its backups record it).
    pub destination: BackupDestination,
    /// Other policies covering the instance with archiving on, ignored (one archive per
    /// instance: two would split its history).
    pub ignored: Vec<String>,
}

impl ArchivePlan {
    /// The credentials Secret of the destination and its store, if it names one.
    pub fn credentials(&self) -> Option<(&str, Store)> {
        plan::credentials_ref(&self.destination)
    }
}

/// The policy that archives `db`: of the policies covering it with
/// `continuousArchiving.enabled`, the oldest (then by name), so a newer one never moves an
/// archive that runs; with the names of the others.
pub fn archiving_policy<'a>(
    db: &InstantDb,
    policies: &'a [InstantDbBackupPolicy],
) -> Option<(&'a InstantDbBackupPolicy, Vec<String>)> {
    let mut on: Vec<&InstantDbBackupPolicy> = policies
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.spec
                .continuous_archiving
                .as_ref()
                .is_some_and(|c| c.is_enabled())
        })
        .filter(|p| covers(p, db))
        .collect();
    on.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.name_any(),
        )
    });
    let first = *on.first()?;
    Some((first, on[1..].iter().map(|p| p.name_any()).collect()))
}

/// The archive plan of `db`: None when no policy archives it; an error (for the user) when
/// the policy's destination cannot be used.
pub fn plan(
    db: &InstantDb,
    policies: &[InstantDbBackupPolicy],
) -> Option<Result<ArchivePlan, String>> {
    let (policy, ignored) = archiving_policy(db, policies)?;
    let ns = db.namespace().unwrap_or_default();
    let name = policy.name_any();
    let built = plan::resolve_destination(&policy.spec.destination, &ns, &db.name_any())
        .and_then(|d| plan::destination_url(&d).map(|url| (d, url)))
        .map(|(destination, url)| {
            let c = policy.spec.continuous_archiving.clone().unwrap_or_default();
            ArchivePlan {
                policy: name.clone(),
                settings: ArchiveSettings {
                    destination: url,
                    max_lag_secs: u64::try_from(
                        c.max_lag_seconds
                            .unwrap_or(DEFAULT_ARCHIVE_MAX_LAG_SECONDS)
                            .clamp(1, 3600),
                    )
                    .unwrap_or(5),
                    max_buffer_bytes: c
                        .max_buffer_bytes
                        .and_then(|b| u64::try_from(b.max(1 << 20)).ok()),
                },
                destination,
                ignored,
            }
        })
        .map_err(|e| format!("InstantDbBackupPolicy {name}: destination: {e}"));
    Some(built)
}

/// What the instance's archiving is, as the reconcile found it.
#[derive(Clone, Debug, PartialEq)]
pub enum State<'a> {
    /// No policy archives the instance: no condition, no recovery window in status.
    Off,
    /// Configured for the engine; `report` is the engine's answer when it was asked now
    /// (None: not due, or the engine could not be asked).
    On {
        /// The plan rendered into the engine's configuration.
        plan: &'a ArchivePlan,
        /// `GET /admin/archive`, when asked.
        report: Option<&'a ArchiveReport>,
    },
    /// Not configured, for the reason given (`reason` one of [`reasons`]).
    Blocked {
        /// One of [`reasons`].
        reason: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A time of the engine's report at the grain status keeps (whole seconds, as Kubernetes
/// writes times): a value read back equals the one computed, so an unchanged window is no
/// write.
fn at_seconds(t: Option<&str>) -> Option<Time> {
    let ts: Timestamp = t?.parse().ok()?;
    Timestamp::from_second(ts.as_second()).ok().map(Time)
}

fn set(s: &mut InstantDbStatus, status: Status, reason: &str, message: String, now: Timestamp) {
    set_condition(
        &mut s.conditions,
        NewCondition {
            type_: conds::CONTINUOUS_ARCHIVING,
            status,
            reason,
            message,
            observed_generation: None,
        },
        now,
    );
}

/// Sets `ContinuousArchiving`, `firstRecoverabilityPoint` and `lastArchivedTime` from the
/// state. Without a report the previous values stay (the engine is asked every few minutes,
/// not at every reconcile); a report that says archiving is off while the plan is on is the
/// engine not yet restarted onto it. Messages carry no counters, so a steady archive writes
/// nothing.
pub fn apply_to_status(s: &mut InstantDbStatus, state: &State<'_>, now: Timestamp) {
    match state {
        State::Off => {
            s.conditions
                .retain(|c| c.type_ != conds::CONTINUOUS_ARCHIVING);
            s.first_recoverability_point = None;
            s.last_archived_time = None;
        }
        State::Blocked { reason, message } => {
            set(s, Status::False, reason, message.clone(), now);
        }
        State::On { plan, report } => {
            let ignored = if plan.ignored.is_empty() {
                String::new()
            } else {
                format!(
                    "; ignored (one archive per instance): InstantDbBackupPolicy {}",
                    plan.ignored.join(", ")
                )
            };
            let Some(r) = report else {
                if conds::find_condition(&s.conditions, conds::CONTINUOUS_ARCHIVING).is_none() {
                    set(
                        s,
                        Status::Unknown,
                        reasons::WAITING_FOR_ENGINE,
                        format!(
                            "InstantDbBackupPolicy {} archives this instance; waiting for the engine to report it{ignored}",
                            plan.policy
                        ),
                        now,
                    );
                }
                return;
            };
            if !r.enabled {
                set(
                    s,
                    Status::Unknown,
                    reasons::WAITING_FOR_ENGINE,
                    format!(
                        "InstantDbBackupPolicy {} archives this instance; the engine runs without archiving until its pod restarts onto the new configuration{ignored}",
                        plan.policy
                    ),
                    now,
                );
                return;
            }
            s.first_recoverability_point = at_seconds(r.first_recoverable_time.as_deref());
            s.last_archived_time = at_seconds(r.last_archived_time.as_deref());
            let (status, reason, message) = condition(plan, r);
            set(s, status, reason, format!("{message}{ignored}"), now);
        }
    }
}

/// `ContinuousArchiving` from a report of an engine that archives: True when within the lag,
/// the buffer not full and no error; else False with what the engine says.
fn condition(plan: &ArchivePlan, r: &ArchiveReport) -> (Status, &'static str, String) {
    let lag = plan.settings.max_lag_secs;
    if r.buffer_full {
        return (
            Status::False,
            reasons::BUFFER_FULL,
            format!(
                "the changes waiting for the destination passed maxBufferBytes: it has failed for long ({}); changes are kept on the volume, not dropped; fix the destination or raise continuousArchiving.maxBufferBytes",
                r.last_error.as_deref().unwrap_or("no error reported")
            ),
        );
    }
    if let Some(e) = &r.last_error {
        return (
            Status::False,
            reasons::FAILING,
            format!(
                "archiving to the destination fails: {e}; changes wait on the volume and are shipped once it answers"
            ),
        );
    }
    if !r.within_max_lag {
        return (
            Status::False,
            reasons::LAGGING,
            format!(
                "changes wait longer than maxLagSeconds ({lag}s) for the destination: a restore to the latest time would lose more than that"
            ),
        );
    }
    let window = match &r.note {
        Some(note) if r.first_recoverable_time.is_none() => format!("; {note}"),
        _ => String::new(),
    };
    (
        Status::True,
        reasons::ARCHIVING,
        format!(
            "every change reaches {} within {lag}s (InstantDbBackupPolicy {}){window}",
            r.destination.as_deref().unwrap_or("the destination"),
            plan.policy
        ),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "archiving_tests.rs"]
mod tests;
