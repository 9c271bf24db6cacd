//! `POST /api/sync`: keep the documents of server folders in step with their files.

use std::path::PathBuf;

use axum::extract::State;
use serde::Deserialize;

use super::AppState;
use super::api::{confined_path, ingest_guarded};
use super::extract::{ApiError, ApiResult, Json};
use crate::error::Error;
use crate::ingest::{IngestOptions, SyncOptions, SyncReport};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Directories (or files) on the server, each under one of `ingest.allowed_roots`.
    #[schema(value_type = Vec<String>)]
    pub paths: Vec<PathBuf>,
    /// List what would happen; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Remove the documents under `paths` whose files no longer exist.
    #[serde(default)]
    pub delete_missing: bool,
    /// Recursion, excludes and the user metadata of added or changed documents.
    #[serde(default)]
    pub options: IngestOptions,
}

/// Syncs server folders: adds new files, replaces changed ones (by content hash), skips
/// unchanged ones and, with `delete_missing`, removes the documents (under `paths` only) whose
/// files are gone. `dry_run` lists what would happen without changing anything.
#[utoipa::path(post, path = "/api/sync", request_body = SyncRequest,
    responses((status = 200, body = SyncReport), (status = 400, description = "no paths, a path with `..` or one that cannot be read"),
        (status = 403, description = "a path outside ingest.allowed_roots"),
        (status = 429, description = "ingest.max_concurrent ingests are running; retry after the Retry-After seconds")))]
pub async fn sync(
    State(s): State<AppState>,
    Json(req): Json<SyncRequest>,
) -> ApiResult<axum::Json<SyncReport>> {
    if req.paths.is_empty() {
        return Err(ApiError(Error::InvalidInput(
            "no paths in the request".into(),
        )));
    }
    // Every path is checked before anything runs: one outside the roots refuses the request.
    let paths = req
        .paths
        .iter()
        .map(|p| confined_path(&s, p))
        .collect::<ApiResult<Vec<_>>>()?;
    let opts = SyncOptions {
        dry_run: req.dry_run,
        delete_missing: req.delete_missing,
        ingest: req.options,
    };
    let roots = s.engine.config.ingest.allowed_roots.clone();
    let report = ingest_guarded(&s, move |engine, progress| {
        crate::ingest::sync_paths(engine, &paths, &opts, Some(roots.as_slice()), progress)
    })
    .await?;
    Ok(axum::Json(report))
}
