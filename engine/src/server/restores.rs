//! Restore jobs over HTTP: `POST /admin/restores` (202, idempotent by id), `GET
//! /admin/restores/{id}`, the synchronous `POST /admin/restore` kept as a thin wrapper over a job,
//! and the write fence that answers `503 restore_in_progress` while one runs.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiError, ApiResult, Json, blocking};
use crate::backup::{BackupProgress, ProgressSink};
use crate::error::Error;
use crate::maintenance::{PhaseSink, RestoreReport};
use crate::restore_job::{OperationGuard, OperationKind, RestoreJob, RestorePhase};

/// Seconds a client refused during a restore is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 30;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreJobRequest {
    /// Job id, `[a-z0-9-]{1,63}`; the same id again answers the same job. Default: generated.
    pub id: Option<String>,
    /// URL of a backup archive (as `location` of a completed backup); with `target_time`, the
    /// destination folder holding the backups and their `archive/`.
    pub source: String,
    /// Point-in-time restore: `latest` or an RFC 3339 time. The newest base snapshot before it
    /// plus the archived changes up to it (`docs/archiving.md`).
    #[serde(default)]
    pub target_time: Option<String>,
}

/// Starts a restore job; follow it with `GET /admin/restores/{id}`.
#[utoipa::path(post, path = "/admin/restores", request_body = RestoreJobRequest, security(("bearer" = [])),
    responses((status = 202, body = RestoreJob, description = "started"), (status = 200, body = RestoreJob, description = "a job with this id exists"),
        (status = 400), (status = 409, description = "operation_in_progress: another backup or restore runs")))]
pub async fn start_restore(
    State(s): State<AppState>,
    Json(body): Json<RestoreJobRequest>,
) -> ApiResult<(StatusCode, axum::Json<RestoreJob>)> {
    let (status, job, _) = start(&s, body.id, body.source, body.target_time)?;
    Ok((status, axum::Json(job)))
}

#[utoipa::path(get, path = "/admin/restores/{id}", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = RestoreJob), (status = 404)))]
pub async fn restore_status(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<RestoreJob>> {
    s.restores.get(&id).map(axum::Json).ok_or_else(|| {
        ApiError(Error::NotFound(format!(
            "no restore job {id} on this engine (job records are kept in <data>/jobs)"
        )))
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequestBody {
    /// URL of a backup archive (as `location` of a completed backup); with `target_time`, the
    /// destination folder.
    pub source: String,
    /// Point-in-time restore: `latest` or an RFC 3339 time.
    #[serde(default)]
    pub target_time: Option<String>,
}

/// Restores and answers when done: a thin wrapper over a restore job (prefer
/// `POST /admin/restores`, which does not hold a request open for the whole restore).
#[utoipa::path(post, path = "/admin/restore", request_body = RestoreRequestBody, security(("bearer" = [])),
    responses((status = 200, body = crate::maintenance::RestoreReport), (status = 400), (status = 409), (status = 503, description = "verification or integrity failed; nothing changed or the previous data is back")))]
pub async fn restore_and_wait(
    State(s): State<AppState>,
    Json(body): Json<RestoreRequestBody>,
) -> ApiResult<axum::Json<RestoreReport>> {
    let (_, _, handle) = start(&s, None, body.source, body.target_time)?;
    let handle =
        handle.ok_or_else(|| ApiError(Error::Internal("a new job was not started".into())))?;
    let report = handle
        .await
        .map_err(|e| ApiError(Error::Internal(e.to_string())))?
        .map_err(ApiError)?;
    Ok(axum::Json(report))
}

type JobHandle = tokio::task::JoinHandle<crate::error::Result<RestoreReport>>;

/// Validates, takes the fence, records the job and spawns it. An existing id answers 200 with
/// its job (and no handle).
fn start(
    s: &AppState,
    id: Option<String>,
    source: String,
    target_time: Option<String>,
) -> ApiResult<(StatusCode, RestoreJob, Option<JobHandle>)> {
    let id = id.unwrap_or_else(crate::restore_job::new_id);
    let target = target_time
        .as_deref()
        .map(crate::archive::TargetTime::parse)
        .transpose()
        .map_err(ApiError)?;
    if !crate::restore_job::valid_id(&id) {
        return Err(ApiError(Error::InvalidInput(format!(
            "invalid restore id {id:?}: use 1 to 63 lower-case letters, digits and '-'"
        ))));
    }
    let same = |existing: RestoreJob| -> ApiResult<(StatusCode, RestoreJob, Option<JobHandle>)> {
        if existing.source == crate::backup::redact_url(&source)
            && existing.target_time == target.map(|t| t.describe())
        {
            Ok((StatusCode::OK, existing, None))
        } else {
            Err(ApiError(Error::Conflict(format!(
                "restore job {id} exists with another source ({}); use a new id for another restore",
                existing.source
            ))))
        }
    };
    if let Some(existing) = s.restores.get(&id) {
        return same(existing);
    }
    // The same parse the restore itself makes (credentials from the configured directory), so
    // a source that cannot work is refused here, before the fence is taken.
    match target {
        Some(_) => crate::maintenance::location(&s.engine, &source).map(|_| ()),
        None => crate::maintenance::archive_location(&s.engine, &source).map(|_| ()),
    }
    .map_err(ApiError)?;
    let guard = match s.operations.begin(OperationKind::Restore, &id) {
        Ok(g) => g,
        // the same id posted twice at once: the first one holds the fence
        Err(e) => return s.restores.get(&id).map_or(Err(ApiError(e)), same),
    };
    let mut job = RestoreJob::new(id.clone(), &source);
    job.target_time = target.map(|t| t.describe());
    if let Err(existing) = s
        .restores
        .insert_unless(job.clone(), |_| true)
        .map_err(ApiError)?
    {
        return same(existing);
    }
    // From acceptance on, nothing may be written: the swap would drop it.
    s.engine.store.fence_writes(true);
    refresh_health(s);
    tracing::info!(id = %id, source = %job.source, "restore job started");
    let handle = tokio::spawn(run(s.clone(), id, source, target, guard));
    Ok((StatusCode::ACCEPTED, job, Some(handle)))
}

async fn run(
    s: AppState,
    id: String,
    source: String,
    target: Option<crate::archive::TargetTime>,
    guard: OperationGuard,
) -> crate::error::Result<RestoreReport> {
    let phase: PhaseSink = {
        let (jobs, id) = (s.restores.clone(), id.clone());
        Arc::new(move |p: RestorePhase| {
            if let Err(e) = jobs.update(&id, |j| j.enter(p)) {
                tracing::error!(id = %id, error = %e, "could not record the restore phase");
            }
        })
    };
    let progress: ProgressSink = {
        let (jobs, id) = (s.restores.clone(), id.clone());
        Arc::new(move |p: BackupProgress| {
            let _ = jobs.update(&id, |j| j.progress = Some(p));
        })
    };
    let started = std::time::Instant::now();
    let mut restored_to = None;
    let result = match target {
        None => {
            crate::maintenance::restore_observed(s.engine.clone(), &source, progress, phase).await
        }
        Some(t) => crate::archive::restore_to_time(s.engine.clone(), &source, t, progress, phase)
            .await
            .map(|r| {
                restored_to = r.restored_to;
                r.restore
            }),
    };
    s.engine
        .metrics
        .observe_restore(result.is_ok(), started.elapsed().as_secs_f64());
    let recorded = s.restores.update(&id, |j| match &result {
        Ok(r) => {
            j.document_count = Some(r.documents);
            j.chunk_count = Some(r.chunks);
            j.backup_id = Some(r.backup_id.clone());
            j.restored_to = restored_to.clone();
            j.enter(RestorePhase::Completed);
        }
        Err(e) => {
            j.error = Some(crate::backup::redact_url(&e.to_string()));
            j.enter(j.phase.failure());
        }
    });
    match &result {
        Ok(r) => {
            tracing::info!(id = %id, documents = r.documents, seconds = r.seconds, "restore completed");
        }
        Err(e) => tracing::error!(id = %id, error = %e, "restore failed"),
    }
    if let Err(e) = recorded {
        tracing::error!(id = %id, error = %e, "could not record the restore outcome");
    }
    s.engine.store.fence_writes(false);
    drop(guard);
    // The outcome decides readiness: a good restore clears a failed check, a rollback onto
    // damaged data keeps it.
    let st = s.clone();
    let _ = blocking(move || super::run_integrity_check(&st)).await;
    result
}

/// Publishes a fresh health snapshot now (a restore starting or ending changes it).
fn refresh_health(s: &AppState) {
    let s = s.clone();
    tokio::task::spawn_blocking(move || {
        s.health.refresh(&s.engine);
    });
}

/// The `restore` component of `/health/detailed`: which restore runs and where it is.
pub fn restore_component(jobs: &crate::restore_job::RestoreJobs) -> crate::health::ComponentHealth {
    let t = std::time::Instant::now();
    let (status, details) = match jobs.running() {
        Some(j) => (
            crate::health::Status::Degraded,
            serde_json::json!({"running": true, "id": j.id, "phase": j.phase, "source": j.source,
                "started_at": j.started_at, "writes": "refused with 503 restore_in_progress until it ends"}),
        ),
        None => (
            crate::health::Status::Healthy,
            serde_json::json!({"running": false}),
        ),
    };
    crate::health::ComponentHealth {
        status,
        response_time_ms: t.elapsed().as_secs_f64() * 1000.0,
        details,
    }
}

/// Whether a request changes data (`POST`/`PUT`/`PATCH`/`DELETE` under `/api/`, except the
/// read-only `POST /api/search`).
pub(super) fn is_write(method: &Method, path: &str) -> bool {
    path.starts_with("/api/")
        && !super::auth::is_read_post(path)
        && matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
}

/// While a restore runs, writes answer `503 restore_in_progress` with `Retry-After` before
/// any of their work (an upload is not even stored). Reads go on: until the swap they see the
/// previous data, after it the restored data. The store refuses writes too
/// ([`crate::store::Store::fence_writes`]); this answers early and names the job.
pub async fn refuse_writes_during_restore(
    State(s): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if is_write(req.method(), req.uri().path())
        && let Some(r) = s
            .operations
            .current()
            .filter(|r| r.kind == OperationKind::Restore)
    {
        return ApiError(Error::RestoreInProgress(format!(
            "restore {} is running: writes are refused until it ends (nothing was written); retry \
             in {RETRY_AFTER_SECS} s or follow it with GET /admin/restores/{}",
            r.id, r.id
        )))
        .into_response();
    }
    next.run(req).await
}

/// `Retry-After` for answers that say to come back later.
pub fn retry_after(resp: &mut Response, code: &str) {
    if code == "restore_in_progress"
        && let Ok(v) = header::HeaderValue::from_str(&RETRY_AFTER_SECS.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

#[cfg(test)]
mod tests {
    use super::is_write;
    use axum::http::Method;

    #[test]
    fn writes_are_the_changing_methods_under_api_but_search_and_export() {
        assert!(is_write(&Method::POST, "/api/documents"));
        assert!(is_write(&Method::DELETE, "/api/documents/x"));
        assert!(is_write(&Method::POST, "/api/process/file"));
        assert!(!is_write(&Method::POST, "/api/search"));
        assert!(!is_write(&Method::POST, "/api/export"));
        assert!(!is_write(&Method::GET, "/api/documents"));
        assert!(!is_write(&Method::POST, "/admin/restores"));
    }
}
