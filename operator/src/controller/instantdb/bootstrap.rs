//! `spec.bootstrap.fromBackup`: a new instance starts from a backup before it serves.
//!
//! The operator resolves the backup to an archive URL (a named InstantDbBackup's recorded
//! `status.archiveUrl`, never recomputed; or `source`'s destination and id), records it in
//! `status.bootstrap`, and only then creates the engine StatefulSet, whose pod runs the init
//! container `bootstrap`: `instant-db restore --bootstrap --from <archive URL>`. An init
//! container rather than a `serve` flag: it has no probe deadline (a large archive may take
//! longer than the startup probe allows), the engine never listens before its data is there,
//! and a failure shows as the init container's exit and message. The engine command restores
//! only while the volume holds no database, so the init container is harmless at every later
//! start. Until the archive is known the StatefulSet is not created: an instance that should
//! start from a backup never starts empty.
//!
//! Everything here is pure; the controller observes and applies.

use instant_db_crds::backup::{InstantDbBackup, OperationPhase};
use instant_db_crds::conditions::{self, Status};
use instant_db_crds::{BootstrapStatus, InstantDb};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use crate::controller::backup::plan;

pub use crate::builders::BOOTSTRAP_CONTAINER as INIT_CONTAINER;

/// Reasons of the `Bootstrapped` condition (documented in docs/operator.md).
pub mod reasons {
    /// The named InstantDbBackup has not completed yet; the engine is created once it has.
    pub const WAITING_FOR_BACKUP: &str = "WaitingForBackup";
    /// The backup cannot be used as specified (missing, failed, no archive, bad destination).
    pub const BACKUP_UNUSABLE: &str = "BootstrapBackupUnusable";
    /// The credentials Secret of the bootstrap's destination is missing or incomplete.
    pub const CREDENTIALS_MISSING: &str = "BootstrapCredentialsMissing";
    /// The init container is restoring the backup into the new volume.
    pub const RESTORING: &str = "RestoringFromBackup";
    /// The init container failed (archive missing, unreadable, checksum...); it is retried.
    pub const RESTORE_FAILED: &str = "BootstrapRestoreFailed";
    /// The backup was restored and the engine serves it.
    pub const RESTORED: &str = "Restored";
    /// The data volume already held a database (a claim kept from an earlier instance of the
    /// same name): it was kept and the backup not restored.
    pub const EXISTING_DATA_KEPT: &str = "ExistingDataKept";
}

/// What the bootstrap of an instance needs now.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// No `spec.bootstrap`: the instance starts empty.
    None,
    /// The archive is known (recorded in `status.bootstrap`): the pod restores it. Boxed: a
    /// destination with four store kinds is large, the other variants are a string.
    Ready(Box<BootstrapStatus>),
    /// Waiting for the named backup to complete (the text says so).
    Wait(String),
    /// Cannot start as specified: what is wrong and what to do.
    Unusable(String),
}

/// The bootstrap archive of `db`: the one recorded in status, else resolved from the spec and
/// `backups` (the namespace's InstantDbBackups).
pub fn plan(db: &InstantDb, backups: &[InstantDbBackup]) -> Plan {
    let Some(from) = db.spec.bootstrap.as_ref().map(|b| &b.from_backup) else {
        return Plan::None;
    };
    if let Some(recorded) = db.status.as_ref().and_then(|s| s.bootstrap.as_ref())
        && recorded.archive_url.is_some()
    {
        return Plan::Ready(Box::new(recorded.clone()));
    }
    let target_time = match from.target_time.as_deref().map(check_target_time) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            return Plan::Unusable(format!("spec.bootstrap.fromBackup.targetTime: {e}"));
        }
    };
    let ns = db.namespace().unwrap_or_default();
    if let Some(name) = &from.backup {
        return match from_named_backup(name, backups) {
            Plan::Ready(r) if target_time.is_some() => pitr(*r, target_time),
            other => other,
        };
    }
    let Some(source) = &from.source else {
        return Plan::Unusable(
            "spec.bootstrap.fromBackup names neither backup nor source; set one".into(),
        );
    };
    let resolved = match plan::resolve_destination(&source.destination, &ns, &db.name_any()) {
        Ok(d) => d,
        Err(e) => {
            return Plan::Unusable(format!("spec.bootstrap.fromBackup.source.destination: {e}"));
        }
    };
    let url = plan::destination_url(&resolved).and_then(|folder| {
        match (&target_time, &source.backup_id) {
            // a point in time: the engine picks the base in the folder
            (Some(_), _) => Ok(folder),
            (None, Some(id)) => plan::archive_url(&folder, id),
            (None, None) => Err("backupId is required without targetTime".into()),
        }
    });
    match url {
        Ok(url) => Plan::Ready(Box::new(BootstrapStatus {
            backup: source.backup_id.clone(),
            archive_url: Some(url),
            target_time,
            destination: Some(resolved),
        })),
        Err(e) => Plan::Unusable(format!("spec.bootstrap.fromBackup.source: {e}")),
    }
}

/// A named backup's resolved archive turned into a point-in-time bootstrap: its folder.
fn pitr(mut r: BootstrapStatus, target_time: Option<String>) -> Plan {
    match r.archive_url.as_deref().map(plan::folder_of) {
        Some(Ok(folder)) => {
            r.archive_url = Some(folder);
            r.target_time = target_time;
            Plan::Ready(Box::new(r))
        }
        Some(Err(e)) => Plan::Unusable(format!("spec.bootstrap.fromBackup.backup: {e}")),
        None => Plan::Unusable("spec.bootstrap.fromBackup.backup has no archive".into()),
    }
}

/// A target time as the engine takes it: `latest`, or an RFC 3339 time written back in UTC
/// (`2026-12-02T05:00:00Z`). The CRD's pattern lets through what only a parse refuses (a
/// 13th month); the error says what to write.
pub fn check_target_time(t: &str) -> Result<String, String> {
    let t = t.trim();
    if t.eq_ignore_ascii_case("latest") {
        return Ok("latest".into());
    }
    t.parse::<k8s_openapi::jiff::Timestamp>()
        .map(|ts| ts.to_string())
        .map_err(|e| {
            format!(
                "{t:?} is not a time ({e}): write an RFC 3339 time with its zone such as 2026-12-02T05:00:00Z, or latest"
            )
        })
}

fn from_named_backup(name: &str, backups: &[InstantDbBackup]) -> Plan {
    let Some(b) = backups.iter().find(|b| b.name_any() == name) else {
        return Plan::Unusable(format!(
            "InstantDbBackup {name} (spec.bootstrap.fromBackup.backup) not found in this namespace; \
             create it or, for a backup of another namespace or cluster, use fromBackup.source \
             (destination and backupId)"
        ));
    };
    let status = b.status.clone().unwrap_or_default();
    match status.phase {
        Some(OperationPhase::Completed) => {}
        Some(OperationPhase::Failed) => {
            return Plan::Unusable(format!(
                "InstantDbBackup {name} failed ({}); bootstrap from a completed backup: create a \
                 new InstantDb naming one",
                status.error.as_deref().unwrap_or("no reason given")
            ));
        }
        _ => {
            return Plan::Wait(format!(
                "waiting for InstantDbBackup {name} to complete; the engine starts from it then"
            ));
        }
    }
    match (status.archive_url, status.destination) {
        (Some(url), Some(destination)) => Plan::Ready(Box::new(BootstrapStatus {
            backup: Some(name.to_string()),
            archive_url: Some(url),
            target_time: None,
            destination: Some(destination),
        })),
        _ => Plan::Unusable(format!(
            "InstantDbBackup {name} completed but has no recorded archive (status.archiveUrl, \
             written by operators since backup locations are pinned); use fromBackup.source \
             with its destination and backupId {}",
            status
                .backup_id
                .as_deref()
                .unwrap_or("(see its status.backupId)")
        )),
    }
}

/// What the `Bootstrapped` condition says, and whether the instance waits on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// True once restored.
    pub status: Status,
    /// One of [`reasons`].
    pub reason: &'static str,
    /// What happens or what to do.
    pub message: String,
    /// Only a change by the user helps (kstatus `Stalled`).
    pub needs_user: bool,
    /// The engine StatefulSet is not applied yet (no archive, or no credentials).
    pub hold: bool,
}

fn view(status: Status, reason: &'static str, message: String, needs_user: bool) -> View {
    View {
        status,
        reason,
        message,
        needs_user,
        hold: status == Status::False
            && matches!(
                reason,
                reasons::WAITING_FOR_BACKUP
                    | reasons::BACKUP_UNUSABLE
                    | reasons::CREDENTIALS_MISSING
            ),
    }
}

/// Whether the engine StatefulSet waits: the archive is not known yet, or its credentials are
/// not in place (`credentials` says what is missing).
pub fn holds(plan: &Plan, credentials: Option<&str>) -> bool {
    match plan {
        Plan::None => false,
        Plan::Wait(_) | Plan::Unusable(_) => true,
        Plan::Ready(_) => credentials.is_some(),
    }
}

/// The condition from the plan, the pod and the engine: `previous` True stays True (a later
/// restart skips the restore); else the init container's state decides, and `Restored`
/// needs the engine serving with its document count.
pub fn condition(
    plan: &Plan,
    credentials: Option<&str>,
    previous: Option<&Condition>,
    pod: Option<&Pod>,
    engine_ready: bool,
    document_count: Option<i64>,
) -> Option<View> {
    let recorded = match plan {
        Plan::None => return None,
        Plan::Wait(m) => {
            return Some(view(
                Status::False,
                reasons::WAITING_FOR_BACKUP,
                m.clone(),
                false,
            ));
        }
        Plan::Unusable(m) => {
            return Some(view(
                Status::False,
                reasons::BACKUP_UNUSABLE,
                m.clone(),
                true,
            ));
        }
        Plan::Ready(r) => r,
    };
    if let Some(p) = previous.filter(|c| c.status == "True") {
        return Some(view(
            Status::True,
            reasons::RESTORED,
            p.message.clone(),
            false,
        ));
    }
    if let Some(why) = credentials {
        return Some(view(
            Status::False,
            reasons::CREDENTIALS_MISSING,
            why.to_string(),
            true,
        ));
    }
    let what = match (&recorded.target_time, recorded.backup.as_deref()) {
        (Some(t), _) => format!("the archive's state at {t}"),
        (None, Some(b)) => format!("backup {b}"),
        (None, None) => "the backup".to_string(),
    };
    let report = init_report(pod);
    if let Some(r) = report.as_ref().filter(|r| !r.restored) {
        return Some(view(
            Status::False,
            reasons::EXISTING_DATA_KEPT,
            format!(
                "the data volume already held a database, so {what} was not restored and the \
                 engine serves that data ({}); to start from the backup instead, delete this \
                 InstantDb and its PersistentVolumeClaim data-<name>-0, then create it again",
                r.skipped.as_deref().unwrap_or("no reason given")
            ),
            false,
        ));
    }
    if let Some(failure) = init_failure(pod) {
        return Some(view(
            Status::False,
            reasons::RESTORE_FAILED,
            format!(
                "restoring {what} failed ({failure}); check that the archive {} exists and that \
                 its credentials Secret is complete; the init container {INIT_CONTAINER} retries \
                 with backoff (kubectl logs <pod> -c {INIT_CONTAINER})",
                recorded.archive_url.as_deref().unwrap_or("?")
            ),
            true,
        ));
    }
    let documents = report.and_then(|r| r.documents).or(document_count);
    match documents.filter(|_| engine_ready) {
        Some(n) => Some(view(
            Status::True,
            reasons::RESTORED,
            format!("restored {what}: {n} documents"),
            false,
        )),
        None => Some(view(
            Status::False,
            reasons::RESTORING,
            format!("restoring {what} into the new volume before the engine starts"),
            false,
        )),
    }
}

fn init_status(pod: Option<&Pod>) -> Option<&ContainerStatus> {
    pod?.status
        .as_ref()?
        .init_container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == INIT_CONTAINER)
}

/// What `restore --bootstrap` wrote to its termination message when it succeeded.
#[derive(serde::Deserialize)]
struct InitReport {
    restored: bool,
    #[serde(default)]
    skipped: Option<String>,
    #[serde(default)]
    documents: Option<i64>,
}

/// The report of the init container's successful run, if it ended with one.
fn init_report(pod: Option<&Pod>) -> Option<InitReport> {
    let terminated = init_status(pod)?.state.as_ref()?.terminated.as_ref()?;
    if terminated.exit_code != 0 {
        return None;
    }
    serde_json::from_str(terminated.message.as_deref()?.trim()).ok()
}

/// The last failed run of the init container (exit code and message), if its latest run
/// failed.
fn init_failure(pod: Option<&Pod>) -> Option<String> {
    let c = init_status(pod)?;
    let state = c.state.as_ref()?;
    let terminated = state
        .terminated
        .as_ref()
        .or_else(|| {
            state
                .waiting
                .as_ref()
                .and_then(|_| c.last_state.as_ref()?.terminated.as_ref())
        })
        .filter(|t| t.exit_code != 0)?;
    let message = terminated
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| format!(": {}", last_line(m)))
        .unwrap_or_default();
    Some(format!("exit code {}{message}", terminated.exit_code))
}

/// The last non-empty line of a termination message (the engine's error comes last).
fn last_line(m: &str) -> &str {
    m.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(m)
}

/// Sets `Bootstrapped` and, for an instance that waits on it, Ready, Reconciling, Progressing
/// and Stalled: held (no engine yet) or failed, the instance is not ready and says why.
pub fn apply_to_status(
    s: &mut instant_db_crds::InstantDbStatus,
    v: &View,
    now: k8s_openapi::jiff::Timestamp,
) {
    let set = |c: &mut Vec<Condition>, type_: &str, status: Status, reason: &str, msg: &str| {
        conditions::set_condition(
            c,
            conditions::NewCondition {
                type_,
                status,
                reason,
                message: msg.to_string(),
                observed_generation: None,
            },
            now,
        );
    };
    let c = &mut s.conditions;
    set(c, conditions::BOOTSTRAPPED, v.status, v.reason, &v.message);
    // Kept data serves: the instance's own conditions say how it does.
    if v.status == Status::True || v.reason == reasons::EXISTING_DATA_KEPT {
        return;
    }
    set(c, conditions::READY, Status::False, v.reason, &v.message);
    let (reconciling, stalled) = if v.needs_user {
        (Status::False, Status::True)
    } else {
        (Status::True, Status::False)
    };
    for type_ in [conditions::RECONCILING, conditions::PROGRESSING] {
        set(c, type_, reconciling, v.reason, &v.message);
    }
    set(c, conditions::STALLED, stalled, v.reason, &v.message);
    if v.needs_user {
        set(c, conditions::DEGRADED, Status::True, v.reason, &v.message);
        s.phase = Some(instant_db_crds::Phase::Failed);
    } else if v.hold {
        s.phase = Some(instant_db_crds::Phase::Provisioning);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "bootstrap_tests.rs"]
mod tests;
