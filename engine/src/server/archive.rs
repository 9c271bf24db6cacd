//! `GET /admin/archive`: continuous archiving's position, lag, last error and recovery window.

use axum::extract::State;

use super::AppState;
use super::extract::ApiResult;

/// Archiving status and the recovery window (first and last recoverable times), read from the
/// destination on demand (a listing and the backups' manifests; nothing while nobody asks).
#[utoipa::path(get, path = "/admin/archive", security(("bearer" = [])),
    responses((status = 200, body = crate::archive::ArchiveReport)))]
pub async fn archive_status(
    State(s): State<AppState>,
) -> ApiResult<axum::Json<crate::archive::ArchiveReport>> {
    Ok(axum::Json(crate::archive::report(&s.engine).await?))
}
