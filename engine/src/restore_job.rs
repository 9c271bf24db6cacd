//! Restore jobs and the one-operation-at-a-time fence.
//!
//! A restore job's record is a file on the data volume, `<data>/jobs/restore-<id>.json`,
//! rewritten (atomically) at every phase, so `GET /admin/restores/{id}` answers after an engine
//! restart and a job cut by one gets its outcome from the startup journal recovery
//! ([`open_restore_jobs`]; the files are kept by [`crate::job_records`], as backup and
//! verification records are). [`Operations`] lets one backup or restore run per engine at a time.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::backup::Recovery;
use crate::error::{Error, Result};
use crate::job_records::{JobRecord, JobRecords};

/// Where a restore job is. `completed`, `rolled_back` and `failed` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestorePhase {
    Pending,
    Fetching,
    Verifying,
    Swapping,
    Checking,
    /// The restored data is live and passed its check.
    Completed,
    /// The restored data failed its check (or the swap failed) and the previous data is back.
    RolledBack,
    /// Refused before anything changed; `error` says why and what to do.
    Failed,
}

impl RestorePhase {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::RolledBack | Self::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Fetching => "fetching",
            Self::Verifying => "verifying",
            Self::Swapping => "swapping",
            Self::Checking => "checking",
            Self::Completed => "completed",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
        }
    }

    /// The final phase of a job that failed while in `self`: from the swap on, the previous
    /// data was put back; before it, nothing changed.
    pub fn failure(self) -> RestorePhase {
        match self {
            Self::Swapping | Self::Checking => Self::RolledBack,
            _ => Self::Failed,
        }
    }
}

/// One phase a job went through, with when it started.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhaseEntry {
    pub phase: RestorePhase,
    pub at: String,
}

/// A restore job as `GET /admin/restores/{id}` shows it (and as its file holds it).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreJob {
    pub id: String,
    /// The archive URL, credentials redacted.
    pub source: String,
    pub phase: RestorePhase,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub document_count: Option<i64>,
    pub chunk_count: Option<i64>,
    pub backup_id: Option<String>,
    /// Every phase entered so far, in order.
    #[serde(default)]
    pub phases: Vec<PhaseEntry>,
    /// A point-in-time restore's target (`latest` or RFC 3339); `None` for a snapshot restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_time: Option<String>,
    /// A point-in-time restore's result: commit time of the newest change restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_to: Option<String>,
    /// Bytes of the current download or verification (this process only; not in the file).
    #[serde(default, skip_deserializing)]
    #[schema(value_type = Option<Object>)]
    pub progress: Option<crate::backup::BackupProgress>,
}

impl RestoreJob {
    pub fn new(id: String, source: &str) -> RestoreJob {
        let now = crate::health::now();
        RestoreJob {
            id,
            source: crate::backup::redact_url(source),
            phase: RestorePhase::Pending,
            started_at: now.clone(),
            finished_at: None,
            error: None,
            document_count: None,
            chunk_count: None,
            backup_id: None,
            phases: vec![PhaseEntry {
                phase: RestorePhase::Pending,
                at: now,
            }],
            progress: None,
            target_time: None,
            restored_to: None,
        }
    }

    /// Enter `phase` (recorded once, in order).
    pub fn enter(&mut self, phase: RestorePhase) {
        if self.phase == phase {
            return;
        }
        self.phase = phase;
        let at = crate::health::now();
        if phase.is_final() {
            self.finished_at = Some(at.clone());
            self.progress = None;
        }
        self.phases.push(PhaseEntry { phase, at });
    }

    /// The outcome of a job found unfinished at start, from what the startup recovery did:
    /// a rolled-back journal means the previous data is back; no journal while checking means
    /// the swap was committed (the journal goes only after the check passed); earlier, nothing
    /// had changed yet.
    pub fn interrupted(&mut self, recovery: &Recovery) {
        let (phase, what) = match (recovery, self.phase) {
            (Recovery::RolledBack { .. }, _) => (
                RestorePhase::RolledBack,
                "the previous data was put back at start",
            ),
            (Recovery::Clean, RestorePhase::Checking) => (
                RestorePhase::Completed,
                "the restored data had passed its check and was committed",
            ),
            (Recovery::Clean, _) => (
                RestorePhase::Failed,
                "nothing had been changed; start the restore again",
            ),
        };
        self.error = Some(format!(
            "interrupted by an engine restart while {}: {what}",
            self.phase.as_str()
        ));
        self.enter(phase);
    }
}

/// Whether `id` is a valid restore job id: `[a-z0-9-]{1,63}`.
pub fn valid_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A fresh job id (`restore-<time>-<8 hex>`).
pub fn new_id() -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "restore-{}-{}",
        chrono::Utc::now().format("%Y%m%dt%H%M%Sz"),
        &u[..8]
    )
}

/// The restore jobs of one data directory, each recorded in `<data>/jobs/restore-<id>.json`.
pub type RestoreJobs = JobRecords<RestoreJob>;

impl JobRecord for RestoreJob {
    const KIND: &'static str = "restore";

    fn id(&self) -> &str {
        &self.id
    }

    fn is_final(&self) -> bool {
        self.phase.is_final()
    }

    fn started_at(&self) -> &str {
        &self.started_at
    }

    fn milestone(&self) -> String {
        format!("{} {:?}", self.phase.as_str(), self.error)
    }
}

/// Loads the restore jobs of `data_dir`; jobs found unfinished were cut by a restart and end
/// as [`RestoreJob::interrupted`] decides from `recovery`.
pub fn open_restore_jobs(data_dir: &Path, recovery: &Recovery) -> Result<RestoreJobs> {
    JobRecords::open(data_dir, |j: &mut RestoreJob| {
        j.interrupted(recovery);
        tracing::warn!(id = %j.id, phase = j.phase.as_str(), error = ?j.error, "restore job cut by a restart");
    })
}

/// What kind of operation holds the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Backup,
    Restore,
}

/// The backup or restore running now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Running {
    pub kind: OperationKind,
    pub id: String,
}

/// One backup or restore at a time per engine: a backup taken during a restore would hold
/// half of either, and two restores would interleave their swaps.
#[derive(Debug, Default)]
pub struct Operations(Mutex<Option<Running>>);

impl Operations {
    /// Takes the fence for `kind`/`id`, or [`Error::OperationInProgress`] naming the one that
    /// holds it. Released when the guard drops.
    pub fn begin(self: &Arc<Self>, kind: OperationKind, id: &str) -> Result<OperationGuard> {
        let mut cur = self
            .0
            .lock()
            .map_err(|_| Error::Internal("operation fence poisoned".into()))?;
        if let Some(r) = cur.as_ref() {
            let (what, follow) = match r.kind {
                OperationKind::Backup => ("backup", "backups"),
                OperationKind::Restore => ("restore", "restores"),
            };
            return Err(Error::OperationInProgress(format!(
                "{what} {} is running on this engine (one backup or restore at a time); retry \
                 when it has finished (GET /admin/{follow}/{})",
                r.id, r.id
            )));
        }
        *cur = Some(Running {
            kind,
            id: id.to_string(),
        });
        Ok(OperationGuard { ops: self.clone() })
    }

    pub fn current(&self) -> Option<Running> {
        self.0.lock().ok().and_then(|c| c.clone())
    }
}

/// Holds the [`Operations`] fence.
#[derive(Debug)]
pub struct OperationGuard {
    ops: Arc<Operations>,
}

impl Drop for OperationGuard {
    fn drop(&mut self) {
        if let Ok(mut cur) = self.ops.0.lock() {
            *cur = None;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_job_cut_by_a_restart_ends_as_the_journal_recovery_decided() {
        let rolled = Recovery::RolledBack {
            previous_dir: PathBuf::from("/d/previous-x"),
        };
        for (phase, recovery, end) in [
            (RestorePhase::Swapping, &rolled, RestorePhase::RolledBack),
            (RestorePhase::Checking, &rolled, RestorePhase::RolledBack),
            (
                RestorePhase::Checking,
                &Recovery::Clean,
                RestorePhase::Completed,
            ),
            (
                RestorePhase::Fetching,
                &Recovery::Clean,
                RestorePhase::Failed,
            ),
            (
                RestorePhase::Pending,
                &Recovery::Clean,
                RestorePhase::Failed,
            ),
        ] {
            let mut job = RestoreJob::new("j".into(), "/b/x.tar.gz");
            job.enter(phase);
            job.interrupted(recovery);
            assert_eq!(job.phase, end, "{phase:?}");
            assert!(job.error.unwrap().contains("interrupted"));
            assert!(job.finished_at.is_some());
        }
    }

    #[test]
    fn a_failure_from_the_swap_on_is_a_rollback_and_before_it_a_refusal() {
        assert_eq!(RestorePhase::Fetching.failure(), RestorePhase::Failed);
        assert_eq!(RestorePhase::Verifying.failure(), RestorePhase::Failed);
        assert_eq!(RestorePhase::Swapping.failure(), RestorePhase::RolledBack);
        assert_eq!(RestorePhase::Checking.failure(), RestorePhase::RolledBack);
    }

    #[test]
    fn job_ids_are_lower_case_letters_digits_and_dashes() {
        assert!(valid_id("r-1"));
        assert!(valid_id(&new_id()));
        for bad in ["", "R1", "a_b", "a.b", &"x".repeat(64)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_fence_names_the_running_operation_and_opens_when_it_ends() {
        let ops = Arc::new(Operations::default());
        let g = ops.begin(OperationKind::Backup, "b-1").unwrap();
        let e = ops.begin(OperationKind::Restore, "r-1").unwrap_err();
        assert_eq!(e.code(), "operation_in_progress");
        assert!(e.to_string().contains("backup b-1"), "{e}");
        drop(g);
        assert!(ops.begin(OperationKind::Restore, "r-1").is_ok());
    }
}
