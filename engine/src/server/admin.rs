//! `/admin/*`: integrity, repair, backups and restores (`restores`); the `admin` role (the admin
//! token) is checked for every `/admin/` path by `auth::require_role`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{ApiError, ApiResult, Json, blocking};
use crate::backup::{BackupProgress, ProgressSink};
use crate::error::Error;
use crate::job_records::{JobRecord, JobRecords};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/integrity", post(integrity))
        .route("/admin/repair", post(repair))
        .route("/admin/backups", post(start_backup).get(list_backups))
        .route(
            "/admin/backups/{id}",
            get(backup_status).delete(delete_backup),
        )
        .route("/admin/archive", get(super::archive::archive_status))
        .route("/admin/restore", post(super::restores::restore_and_wait))
        .route("/admin/restores", post(super::restores::start_restore))
        .route("/admin/restores/{id}", get(super::restores::restore_status))
        .route(
            "/admin/verifications",
            post(super::verifications::start_verification),
        )
        .route(
            "/admin/verifications/{id}",
            get(super::verifications::verification_status),
        )
}

/// Runs the integrity check now; the result also feeds health and readiness.
#[utoipa::path(post, path = "/admin/integrity", security(("bearer" = [])),
    responses((status = 200, body = crate::store::IntegrityReport)))]
pub async fn integrity(
    State(s): State<AppState>,
) -> ApiResult<axum::Json<crate::store::IntegrityReport>> {
    let st = s.clone();
    Ok(axum::Json(
        blocking(move || super::run_integrity_check(&st)).await?,
    ))
}

#[utoipa::path(post, path = "/admin/repair", security(("bearer" = [])),
    responses((status = 200, body = crate::maintenance::RepairReport)))]
pub async fn repair(
    State(s): State<AppState>,
) -> ApiResult<axum::Json<crate::maintenance::RepairReport>> {
    let st = s.clone();
    let report = blocking(move || {
        let r = crate::maintenance::repair(&st.engine)?;
        let _ = super::run_integrity_check(&st);
        Ok(r)
    })
    .await?;
    Ok(axum::Json(report))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Completed,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupJob {
    pub id: String,
    pub status: JobStatus,
    pub destination: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Current phase and bytes, while running.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<BackupProgress>,
    /// Where the archive is, when completed.
    pub location: Option<String>,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    pub document_count: Option<u64>,
    pub chunk_count: Option<u64>,
    pub engine_version: Option<String>,
    pub error: Option<String>,
    /// The verification of the stored archive, started when the backup completes (config
    /// `backup.verify`, on by default); absent when off or the backup failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::verify::Verification>,
}

/// The backup jobs of this data directory, each recorded in `<data>/jobs/backup-<id>.json`
/// with its verification, so `GET /admin/backups/{id}` answers after a restart.
pub type BackupJobs = JobRecords<BackupJob>;

impl JobRecord for BackupJob {
    const KIND: &'static str = "backup";

    fn id(&self) -> &str {
        &self.id
    }

    /// The backup ended and so did its verification (if one was started).
    fn is_final(&self) -> bool {
        self.status != JobStatus::Running
            && self
                .verification
                .as_ref()
                .is_none_or(|v| v.phase.is_final())
    }

    fn started_at(&self) -> &str {
        &self.started_at
    }

    fn milestone(&self) -> String {
        let v = self.verification.as_ref().map(|v| {
            (
                v.phase,
                &v.backup_id,
                &v.error,
                serde_json::to_string(&v.checks).unwrap_or_default(),
            )
        });
        format!(
            "{:?} {:?} {:?} {v:?}",
            self.status, self.location, self.error
        )
    }
}

impl BackupJob {
    /// A job that has just started writing to `destination` (already redacted).
    pub fn running(id: String, destination: String) -> Self {
        BackupJob {
            id,
            status: JobStatus::Running,
            destination,
            started_at: crate::health::now(),
            finished_at: None,
            progress: None,
            location: None,
            size_bytes: None,
            sha256: None,
            document_count: None,
            chunk_count: None,
            engine_version: None,
            error: None,
            verification: None,
        }
    }

    /// Ends a job found unfinished at start: a backup cut while writing is `failed` (no
    /// complete archive was recorded); a verification cut is `failed` as
    /// [`crate::verify::Verification::interrupted`] says. Both say what to do.
    pub fn interrupted(&mut self) {
        if self.status == JobStatus::Running {
            self.status = JobStatus::Failed;
            self.finished_at = Some(crate::health::now());
            self.progress = None;
            self.error = Some(format!(
                "interrupted by an engine restart while backup {} was being written: no \
                 complete archive was recorded (a partial one may be left at {}); take a new \
                 backup (`instant-db backup`, POST /admin/backups, or a new InstantDbBackup)",
                self.id, self.destination
            ));
        }
        if let Some(v) = self.verification.as_mut()
            && !v.phase.is_final()
        {
            v.interrupted();
        }
    }
}

/// Opens the backup job records of `data_dir`, ending those cut by a restart.
pub fn open_backup_jobs(data_dir: &std::path::Path) -> crate::error::Result<BackupJobs> {
    JobRecords::open(data_dir, |j: &mut BackupJob| {
        j.interrupted();
        tracing::warn!(id = %j.id, error = ?j.error, verification = ?j.verification.as_ref().and_then(|v| v.error.as_deref()), "backup job cut by a restart");
    })
}

/// Changes a backup job's record; a record that cannot be written is logged (the job itself
/// goes on, and its record in memory still answers until a restart).
fn update_job(jobs: &BackupJobs, id: &str, f: impl FnOnce(&mut BackupJob)) {
    if let Err(e) = jobs.update(id, f) {
        tracing::warn!(id, error = %e, "backup job record not written");
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequestBody {
    /// `/dir`, `file:///dir` or `s3://bucket/prefix?endpoint=…&region=…`.
    pub destination: String,
    /// Backup id (letters, digits, `.`, `_`, `-`); default: a timestamped id.
    pub id: Option<String>,
}

/// Starts a backup and answers at once with its id; follow it with `GET /admin/backups/{id}`.
#[utoipa::path(post, path = "/admin/backups", request_body = BackupRequestBody, security(("bearer" = [])),
    responses((status = 202, body = BackupJob), (status = 400, description = "bad destination"), (status = 409, description = "id in use")))]
pub async fn start_backup(
    State(s): State<AppState>,
    Json(body): Json<BackupRequestBody>,
) -> ApiResult<(StatusCode, axum::Json<BackupJob>)> {
    crate::maintenance::location(&s.engine, &body.destination).map_err(ApiError)?;
    let id = match body.id {
        Some(id) => {
            crate::backup::validate_id(&id)
                .map_err(|e| ApiError(Error::InvalidInput(e.to_string())))?;
            id
        }
        None => crate::backup::new_backup_id(),
    };
    // the request may carry credentials in the URL; the job record is readable by every
    // admin client and ends up in logs
    let job = BackupJob::running(id.clone(), crate::backup::redact_url(&body.destination));
    let taken = |j: &BackupJob| j.status != JobStatus::Failed;
    let conflict = || ApiError(Error::Conflict(format!("backup {id} already exists")));
    if s.backups.get(&id).is_some_and(|j| taken(&j)) {
        return Err(conflict());
    }
    // one backup or restore at a time: a backup during a restore would hold half of either
    let guard = s
        .operations
        .begin(crate::restore_job::OperationKind::Backup, &id)
        .map_err(ApiError)?;
    // recorded on the volume before the answer: an accepted backup is never forgotten
    if s.backups
        .insert_unless(job.clone(), taken)
        .map_err(ApiError)?
        .is_err()
    {
        return Err(conflict());
    }
    let jobs = s.backups.clone();
    let progress: ProgressSink = {
        let jobs = jobs.clone();
        let id = id.clone();
        Arc::new(move |p: BackupProgress| update_job(&jobs, &id, |j| j.progress = Some(p)))
    };
    let engine = s.engine.clone();
    let state = s.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let result = crate::maintenance::backup(
            engine.clone(),
            &body.destination,
            Some(id.clone()),
            progress,
        )
        .await;
        let seconds = started.elapsed().as_secs_f64();
        engine.metrics.observe_backup(result.is_ok(), seconds);
        let verify_source = match &result {
            Ok(r) if engine.config.backup.verify => Some(r.location.clone()),
            _ => None,
        };
        update_job(&jobs, &id, |j| {
            j.finished_at = Some(crate::health::now());
            match result {
                Ok(r) => {
                    tracing::info!(id = %r.id, location = %r.location, bytes = r.size_bytes, seconds, "backup completed");
                    j.status = JobStatus::Completed;
                    j.location = Some(r.location);
                    j.size_bytes = Some(r.size_bytes);
                    j.sha256 = Some(r.sha256);
                    j.document_count = Some(r.manifest.document_count);
                    j.chunk_count = Some(r.manifest.chunk_count);
                    j.engine_version = Some(r.manifest.engine_version);
                }
                Err(e) => {
                    tracing::error!(id = %j.id, error = %e, "backup failed");
                    j.status = JobStatus::Failed;
                    j.error = Some(crate::backup::redact_url(&e.to_string()));
                }
            }
        });
        // released before the verification: the next backup or a restore need not wait for it
        drop(guard);
        if let Some(source) = verify_source {
            verify_backup(&state, &jobs, &id, source);
        }
    });
    Ok((StatusCode::ACCEPTED, axum::Json(job)))
}

/// Starts the verification of a completed backup; its record is the job's `verification`.
fn verify_backup(s: &AppState, jobs: &Arc<BackupJobs>, id: &str, source: String) {
    let report: crate::verify::VerificationSink = {
        let (jobs, id) = (jobs.clone(), id.to_string());
        Arc::new(move |v: &crate::verify::Verification| {
            update_job(&jobs, &id, |j| j.verification = Some(v.clone()))
        })
    };
    let record = crate::verify::Verification::pending(id.to_string(), &source);
    if let Err(e) = s
        .verifications
        .start(s, record.clone(), source, report.clone())
    {
        // a restore started right after the backup: say so in the record rather than guess
        let mut failed = record;
        failed.phase = crate::verify::VerificationPhase::Failed;
        failed.verified_at = Some(crate::health::now());
        failed.error = Some(format!(
            "not verified: {e}; verify the archive later with POST /admin/verifications"
        ));
        report(&failed);
    }
}

#[utoipa::path(get, path = "/admin/backups/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = BackupJob), (status = 404)))]
pub async fn backup_status(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<BackupJob>> {
    s.backups.get(&id).map(axum::Json).ok_or_else(|| {
        ApiError(Error::NotFound(format!(
            "no backup job {id} on this engine; list stored backups with ?destination="
        )))
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DestinationQuery {
    /// List or delete the backups stored at this destination.
    pub destination: Option<String>,
}

/// Without `destination`: this engine's backup jobs (kept across restarts). With it: the
/// backups stored there.
#[utoipa::path(get, path = "/admin/backups", params(DestinationQuery), security(("bearer" = [])),
    responses((status = 200, description = "jobs or stored backups")))]
pub async fn list_backups(
    State(s): State<AppState>,
    Query(q): Query<DestinationQuery>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let value = match q.destination {
        None => serde_json::to_value(s.backups.list()),
        Some(dest) => {
            let loc = crate::maintenance::location(&s.engine, &dest).map_err(ApiError)?;
            let stored = crate::backup::list_backups(&loc)
                .await
                .map_err(|e| ApiError(Error::Unavailable(e.to_string())))?;
            serde_json::to_value(stored)
        }
    }
    .map_err(|e| ApiError(Error::Internal(e.to_string())))?;
    Ok(axum::Json(value))
}

/// Deletes a stored backup (retention), and with it the archived changes (`<destination>/archive/`)
/// no kept backup needs any more. The answer reports what the archive lost; a pruning failure
/// does not fail the deletion (it is in `archive.error` and the next deletion prunes again).
#[utoipa::path(delete, path = "/admin/backups/{id}", params(("id" = String, Path), DestinationQuery), security(("bearer" = [])),
    responses((status = 200, body = crate::archive::retention::BackupDeletion), (status = 400), (status = 404)))]
pub async fn delete_backup(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<DestinationQuery>,
) -> ApiResult<axum::Json<crate::archive::retention::BackupDeletion>> {
    let dest = q.destination.ok_or_else(|| {
        ApiError(Error::InvalidInput(
            "`destination` query parameter required".into(),
        ))
    })?;
    let loc = crate::maintenance::location(&s.engine, &dest).map_err(ApiError)?;
    crate::backup::validate_id(&id).map_err(|e| ApiError(Error::InvalidInput(e.to_string())))?;
    let deletion = crate::archive::retention::delete_backup(&s.engine, &loc, &id)
        .await
        .map_err(|e| match e {
            crate::backup::BackupError::NotFound(m) => ApiError(Error::NotFound(m)),
            other => ApiError(Error::Unavailable(other.to_string())),
        })?;
    Ok(axum::Json(deletion))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::verify::{Verification, VerificationPhase};

    fn job(status: JobStatus, verification: Option<VerificationPhase>) -> BackupJob {
        BackupJob {
            status,
            verification: verification.map(|phase| {
                let mut v = Verification::pending("b-1".into(), "s3://b/p/b-1.tar.gz");
                v.phase = phase;
                v
            }),
            ..BackupJob::running("b-1".into(), "s3://b/p".into())
        }
    }

    #[test]
    fn a_job_cut_by_a_restart_ends_failed_saying_so_and_what_to_do() {
        let mut running = job(JobStatus::Running, None);
        assert!(!running.is_final());
        running.interrupted();
        assert_eq!(running.status, JobStatus::Failed);
        assert!(running.finished_at.is_some() && running.is_final());
        let e = running.error.unwrap();
        assert!(e.contains("interrupted by an engine restart") && e.contains("take a new backup"));

        // the archive was stored; only its verification was cut: the backup stays completed
        let mut verifying = job(JobStatus::Completed, Some(VerificationPhase::Running));
        assert!(
            !verifying.is_final(),
            "a verification still running keeps the job open"
        );
        verifying.interrupted();
        assert_eq!(verifying.status, JobStatus::Completed);
        assert!(verifying.error.is_none());
        let v = verifying.verification.unwrap();
        assert_eq!(v.phase, VerificationPhase::Failed);
        let e = v.error.unwrap();
        assert!(
            e.contains("not verified: the engine restarted") && e.contains("verify it again"),
            "{e}"
        );

        // finished jobs are left as they are
        let mut passed = job(JobStatus::Completed, Some(VerificationPhase::Passed));
        assert!(passed.is_final());
        passed.interrupted();
        assert_eq!(
            passed.verification.unwrap().phase,
            VerificationPhase::Passed
        );
    }

    #[test]
    fn progress_is_no_milestone_but_a_status_or_verification_change_is() {
        let mut j = job(JobStatus::Running, None);
        let before = j.milestone();
        j.progress = Some(BackupProgress::new(crate::backup::Phase::Upload, 1, 2));
        assert_eq!(j.milestone(), before);
        j.status = JobStatus::Completed;
        let completed = j.milestone();
        assert_ne!(completed, before);
        j.verification = Some(Verification::pending("b-1".into(), "s3://b/p/b-1.tar.gz"));
        assert_ne!(j.milestone(), completed);
    }
}
