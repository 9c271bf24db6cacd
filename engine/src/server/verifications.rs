//! Backup verification over HTTP: `POST /admin/verifications` verifies any archive on demand
//! (202, idempotent by id), `GET /admin/verifications/{id}` follows it; a completed backup job
//! starts one itself when `backup.verify` is on ([`Verifications::start`]).
//!
//! Verifications run one at a time (they download and unpack whole archives onto the data
//! volume), in their own task and scratch space, so ingest and search go on. They never take
//! the backup/restore fence, so that a restore never waits for one, but one is refused while a
//! restore runs, and a restore that starts meanwhile does not disturb it (it reads only the
//! archive and its scratch copy).

use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiError, ApiResult, Json};
use crate::error::Error;
use crate::job_records::JobRecords;
use crate::restore_job::OperationKind;
use crate::verify::{Verification, VerificationSink};

/// The verifications asked for over HTTP, each recorded in
/// `<data>/jobs/verification-<id>.json` (a backup's own verification is in the backup's
/// record), one running at a time.
pub struct Verifications {
    jobs: JobRecords<Verification>,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Verifications {
    /// Opens the records of `data_dir`; a verification cut by a restart ends `failed`
    /// ([`Verification::interrupted`]).
    pub fn open(data_dir: &std::path::Path) -> crate::error::Result<Verifications> {
        let jobs = JobRecords::open(data_dir, |v: &mut Verification| {
            v.interrupted();
            tracing::warn!(id = %v.id, "verification cut by a restart");
        })?;
        Ok(Verifications {
            jobs,
            one_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    pub fn get(&self, id: &str) -> Option<Verification> {
        self.jobs.get(id)
    }

    /// Records `v` (new or changed); a record that cannot be written is logged, and the
    /// verification goes on.
    fn put(&self, v: &Verification) {
        let result = match self.jobs.insert_unless(v.clone(), |_| true) {
            Ok(Err(_)) => self.jobs.update(&v.id, |r| *r = v.clone()),
            Ok(Ok(())) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(id = %v.id, error = %e, "verification record not written");
        }
    }

    /// Queues a verification of `source` and returns its pending record; `report` sees every
    /// change. Refused while a restore runs.
    pub fn start(
        self: &Arc<Self>,
        s: &AppState,
        record: Verification,
        source: String,
        report: VerificationSink,
    ) -> crate::error::Result<Verification> {
        refuse_during_restore(s)?;
        let engine = s.engine.clone();
        let this = self.clone();
        let pending = record.clone();
        report(&pending);
        tokio::spawn(async move {
            let _turn = this.one_at_a_time.lock().await;
            crate::verify::verify(engine, record, &source, report).await;
        });
        Ok(pending)
    }
}

fn refuse_during_restore(s: &AppState) -> crate::error::Result<()> {
    match s.operations.current() {
        Some(r) if r.kind == OperationKind::Restore => Err(Error::OperationInProgress(format!(
            "restore {} is running on this engine; verify when it has finished \
             (GET /admin/restores/{})",
            r.id, r.id
        ))),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationRequest {
    /// Verification id, `[a-z0-9-]{1,63}`; the same id again answers the same verification.
    /// Default: generated.
    pub id: Option<String>,
    /// URL of a backup archive (as `location` of a completed backup), e.g. an old one.
    pub source: String,
}

/// Verifies a stored backup archive without touching the live data: download, every checksum,
/// unpack into scratch space, full integrity check, a keyword and a vector search, counts
/// against the manifest. Follow it with `GET /admin/verifications/{id}`.
#[utoipa::path(post, path = "/admin/verifications", request_body = VerificationRequest, security(("bearer" = [])),
    responses((status = 202, body = crate::verify::Verification, description = "accepted (pending until the verification before it finishes)"),
        (status = 200, body = crate::verify::Verification, description = "a verification with this id exists"),
        (status = 400, description = "bad id or source"),
        (status = 409, description = "operation_in_progress: a restore runs; or the id is taken by another source")))]
pub async fn start_verification(
    State(s): State<AppState>,
    Json(body): Json<VerificationRequest>,
) -> ApiResult<(StatusCode, axum::Json<Verification>)> {
    let id = body.id.unwrap_or_else(crate::verify::new_id);
    if !crate::restore_job::valid_id(&id) {
        return Err(ApiError(Error::InvalidInput(format!(
            "invalid verification id {id:?}: use 1 to 63 lower-case letters, digits and '-'"
        ))));
    }
    if let Some(existing) = s.verifications.get(&id) {
        return if existing.source == crate::backup::redact_url(&body.source) {
            Ok((StatusCode::OK, axum::Json(existing)))
        } else {
            Err(ApiError(Error::Conflict(format!(
                "verification {id} exists for another source ({}); use a new id",
                existing.source
            ))))
        };
    }
    // the parse the verification makes, so a source that cannot work is refused now
    crate::maintenance::archive_location(&s.engine, &body.source).map_err(ApiError)?;
    let table = s.verifications.clone();
    let report: VerificationSink = Arc::new(move |v: &Verification| table.put(v));
    let record = Verification::pending(id, &body.source);
    let pending = s
        .verifications
        .start(&s, record, body.source, report)
        .map_err(ApiError)?;
    Ok((StatusCode::ACCEPTED, axum::Json(pending)))
}

#[utoipa::path(get, path = "/admin/verifications/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = crate::verify::Verification), (status = 404)))]
pub async fn verification_status(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<Verification>> {
    s.verifications.get(&id).map(axum::Json).ok_or_else(|| {
        ApiError(Error::NotFound(format!(
            "no verification {id} on this engine; verify the archive with \
             POST /admin/verifications"
        )))
    })
}
