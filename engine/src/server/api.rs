//! `/api/*`: search, documents, ingest, stats, config.

use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{ApiError, ApiResult, Json, blocking};
use crate::error::Error;
use crate::ingest::{IngestOptions, IngestReport, Progress, SourceDoc};
use crate::search::{SearchRequest, SearchResponse};
use crate::store::{ChunkRecord, DocumentRecord};

pub fn routes(max_upload: usize) -> Router<AppState> {
    Router::new()
        .route("/api/health", get(api_health))
        .route("/api/stats", get(stats))
        .route("/api/search", post(search))
        .route("/api/documents", post(add_documents).get(list_documents))
        .route(
            "/api/documents/{id}",
            get(get_document).delete(delete_document),
        )
        .route(
            "/api/process/file",
            post(process_file).layer(DefaultBodyLimit::max(upload_body_cap(max_upload))),
        )
        .route("/api/process/directory", post(process_directory))
        .route("/api/sync", post(super::sync::sync))
        .route("/api/config", get(config))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiHealth {
    pub status: String,
    pub model_loaded: bool,
    pub reason: Option<String>,
}

/// Liveness and model state in one small answer.
#[utoipa::path(get, path = "/api/health", responses((status = 200, body = ApiHealth)))]
pub async fn api_health(State(s): State<AppState>) -> axum::Json<ApiHealth> {
    let loaded = s.engine.embedder().is_some();
    axum::Json(ApiHealth {
        status: if loaded { "ok" } else { "degraded" }.into(),
        model_loaded: loaded,
        reason: s.engine.model_error().map(str::to_string),
    })
}

#[utoipa::path(get, path = "/api/stats", responses((status = 200, body = crate::engine::EngineStats)))]
pub async fn stats(State(s): State<AppState>) -> ApiResult<axum::Json<crate::engine::EngineStats>> {
    let engine = s.engine.clone();
    Ok(axum::Json(blocking(move || engine.stats()).await?))
}

/// Vector, keyword or hybrid search with filters.
#[utoipa::path(post, path = "/api/search", request_body = SearchRequest,
    responses((status = 200, body = SearchResponse), (status = 400, description = "bad query or filter"),
        (status = 429, description = "limits.max_concurrent_searches searches are running; retry after the Retry-After seconds")))]
pub async fn search(
    State(s): State<AppState>,
    Json(req): Json<SearchRequest>,
) -> ApiResult<axum::Json<SearchResponse>> {
    // Bounded: past the limit a search is refused at once instead of queueing a blocking
    // thread behind hundreds of others.
    let permit = s.search_permits.clone().try_acquire_owned().map_err(|_| {
        s.engine.metrics.searches_refused.inc();
        ApiError(Error::TooManyRequests(format!(
            "{} searches are already running (limits.max_concurrent_searches); retry in a moment",
            s.engine.config.limits.effective_max_concurrent_searches()
        )))
    })?;
    let engine = s.engine.clone();
    Ok(axum::Json(
        blocking(move || {
            let _permit = permit;
            engine.search(&req)
        })
        .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextDocument {
    /// The document's text (markdown is parsed as such when `format` is `md`).
    pub text: String,
    pub title: Option<String>,
    /// Stable name; re-sending the same name replaces the document. Without one the document is
    /// keyed by its content (a hash of its text and title): the report's `files[].source` is
    /// `api:<key>` and `files[].document_id` its id, and sending the same content again is a no-op.
    pub name: Option<String>,
    /// Parser to use: `txt` (default), `md`, `html`, `json`, `csv`…
    pub format: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AddDocuments {
    Many { documents: Vec<TextDocument> },
    One(TextDocument),
}

/// Adds text documents (idempotent by name, or by content when no name is given).
#[utoipa::path(post, path = "/api/documents", request_body = AddDocuments,
    responses((status = 200, body = IngestReport), (status = 400, description = "invalid document"),
        (status = 429, description = "ingest.max_concurrent ingests are running; retry after the Retry-After seconds")))]
pub async fn add_documents(
    State(s): State<AppState>,
    Json(body): Json<AddDocuments>,
) -> ApiResult<axum::Json<IngestReport>> {
    let docs = match body {
        AddDocuments::Many { documents } => documents,
        AddDocuments::One(d) => vec![d],
    };
    if docs.is_empty() {
        return Err(ApiError(Error::InvalidInput(
            "no documents in the request".into(),
        )));
    }
    let mut sources = Vec::with_capacity(docs.len());
    for d in docs {
        if d.text.trim().is_empty() {
            return Err(ApiError(Error::InvalidInput(
                "a document's text is empty".into(),
            )));
        }
        if let Some(m) = &d.metadata
            && !m.is_object()
        {
            return Err(ApiError(Error::InvalidInput(
                "metadata must be a JSON object".into(),
            )));
        }
        let format = d
            .format
            .as_deref()
            .unwrap_or("txt")
            .trim_start_matches('.')
            .to_lowercase();
        if s.engine.parsers.for_extension(&format).is_none() {
            return Err(ApiError(Error::InvalidInput(format!(
                "unknown format `{format}`; use one of {}",
                s.engine.parsers.extensions().join(", ")
            ))));
        }
        let text = match &d.title {
            // A title becomes the document's first heading (a plain text's first line) so it
            // is searchable and shown.
            Some(t) if format == "md" => format!("# {t}\n\n{}", d.text),
            Some(t) if format == "txt" => format!("{t}\n\n{}", d.text),
            _ => d.text.clone(),
        };
        // Without a name the key is the content, never the title: two different documents
        // with the same title are two documents, and the same one sent again is unchanged.
        let name = d
            .name
            .clone()
            .unwrap_or_else(|| crate::ingest::document_id(&text));
        sources.push(SourceDoc {
            source: format!("api:{name}"),
            name: format!("{name}.{format}"),
            bytes: text.into_bytes(),
            modified_at: None,
            metadata: d.metadata,
        });
    }
    let report = ingest_guarded(&s, move |engine, progress| {
        crate::ingest::ingest_sources(engine, sources, progress)
    })
    .await?;
    Ok(axum::Json(report))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    #[serde(default)]
    pub offset: usize,
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/documents", params(Page), responses((status = 200, body = [DocumentRecord])))]
pub async fn list_documents(
    State(s): State<AppState>,
    Query(p): Query<Page>,
) -> ApiResult<axum::Json<Vec<DocumentRecord>>> {
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError(Error::InvalidInput(
            "limit must be between 1 and 1000".into(),
        )));
    }
    let engine = s.engine.clone();
    Ok(axum::Json(
        blocking(move || engine.store.list_documents(p.offset, limit)).await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DocumentWithChunks {
    #[serde(flatten)]
    pub document: DocumentRecord,
    pub chunks: Vec<ChunkRecord>,
}

#[utoipa::path(get, path = "/api/documents/{id}", params(("id" = String, Path)),
    responses((status = 200, body = DocumentWithChunks), (status = 404, description = "no such document")))]
pub async fn get_document(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<axum::Json<DocumentWithChunks>> {
    let engine = s.engine.clone();
    let out = blocking(move || {
        let document = engine.store.get_document(&id)?;
        let chunks = engine.store.chunks_of(&id)?;
        Ok(DocumentWithChunks { document, chunks })
    })
    .await?;
    Ok(axum::Json(out))
}

#[utoipa::path(delete, path = "/api/documents/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, description = "no such document")))]
pub async fn delete_document(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<StatusCode> {
    let engine = s.engine.clone();
    blocking(move || engine.delete_document(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Keeps only a plain file name: no directories, no `..`, no control characters.
pub fn safe_file_name(raw: &str) -> Option<String> {
    let name = raw.rsplit(['/', '\\']).next()?.trim();
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && name.len() <= 255
        && !name.chars().any(|c| c.is_control());
    ok.then(|| name.to_string())
}

/// Stores an upload as `<uploads>/<content hash>/<name>`: two different files sent under the
/// same name both stay (each is its own document, titled from its own name or heading), while
/// sending the same file again lands on the same path, so its ingest is a no-op.
fn store_upload(uploads: &Path, name: &str, bytes: &[u8]) -> crate::error::Result<PathBuf> {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    let dir = uploads.join(hex::encode(&Sha256::digest(bytes)[..8]));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create uploads directory", e))?;
    let target = dir.join(name);
    // The name is a bare file name, so the target cannot leave its directory.
    debug_assert!(target.starts_with(&dir));
    // Written aside and renamed, so a crash never leaves a half-written file under the real
    // name. The temporary name is unique to this upload: identical uploads arriving together
    // land in the same directory, and a shared one was renamed away under the others.
    let mut tmp = tempfile::Builder::new()
        .prefix(".upload-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(|e| Error::io("store upload", e))?;
    tmp.write_all(bytes)
        .map_err(|e| Error::io("store upload", e))?;
    tmp.persist(&target)
        .map_err(|e| Error::io("store upload", e.error))?;
    Ok(target)
}

/// Uploads one file (multipart field `file`, optional field `metadata` with a JSON object),
/// stores it under `<data>/uploads/<content hash>/` and ingests it.
#[utoipa::path(post, path = "/api/process/file", request_body(content_type = "multipart/form-data", description = "fields: file, metadata (optional JSON object)"),
    responses((status = 200, body = IngestReport), (status = 413, description = "file over limits.max_upload_bytes"),
        (status = 429, description = "ingest.max_concurrent ingests are running (an upload takes its slot before its body is read); retry after the Retry-After seconds")))]
pub async fn process_file(
    State(s): State<AppState>,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<axum::Json<IngestReport>> {
    // Taken as a `Result` so a request that is not multipart gets the API's JSON error too.
    let mut form = form.map_err(|e| {
        ApiError(Error::InvalidInput(format!(
            "expected a multipart/form-data body with a `file` field: {}",
            e.body_text()
        )))
    })?;
    // The slot is taken before the body is read: uploads waiting for one are refused unread,
    // so at most `ingest.max_concurrent` bodies are in memory at once, however many arrive.
    let permit = match ingest_permit(&s) {
        Ok(p) => p,
        Err(e) => {
            drain_rejected_upload(&mut form).await;
            return Err(e);
        }
    };
    let received = read_upload(&s, &mut form).await;
    if received.is_err() {
        drain_rejected_upload(&mut form).await;
    }
    let (name, bytes, metadata) = received?;
    let uploads = s.engine.config.uploads_dir();
    let report = ingest_with(&s, permit, move |engine, progress| {
        let target = store_upload(&uploads, &name, &bytes)?;
        let opts = IngestOptions {
            metadata,
            ..Default::default()
        };
        crate::ingest::ingest_paths(engine, &[target], &opts, progress)
    })
    .await?;
    Ok(axum::Json(report))
}

/// Multipart framing and the metadata field add a little to the file.
const UPLOAD_FRAMING_BYTES: usize = 64 * 1024;
/// How long a rejected upload is read on before the answer goes out anyway.
const DRAIN_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// The request-body limit of the upload route: the largest accepted upload plus its framing, plus
/// as much again (at least 1 MiB) that is read and thrown away when an upload is refused, so that
/// the refusal reaches a client that is still sending (see [`drain_rejected_upload`]).
fn upload_body_cap(max_upload: usize) -> usize {
    max_upload
        .saturating_add(UPLOAD_FRAMING_BYTES)
        .saturating_add(max_upload.max(1024 * 1024))
}

/// Reads what is left of a refused upload and throws it away. A server that answers and closes
/// while request bytes are still unread makes the kernel reset the connection, and the reset
/// discards the answer on its way to the client (which then sees "connection closed before the
/// message completed" instead of the 413 or 400): nginx reads on after an error for the same
/// reason. Bounded by the route's body limit ([`upload_body_cap`]) and [`DRAIN_BUDGET`]; a
/// client sending beyond those may still see the reset.
async fn drain_rejected_upload(form: &mut Multipart) {
    let drain = async {
        while let Ok(Some(mut field)) = form.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    };
    let _ = tokio::time::timeout(DRAIN_BUDGET, drain).await;
}

/// The upload's file name, bytes and metadata, read from the multipart body; stops at the first
/// problem (the caller drains the rest).
async fn read_upload(
    s: &AppState,
    form: &mut Multipart,
) -> ApiResult<(String, Vec<u8>, Option<serde_json::Value>)> {
    let max = s.engine.config.limits.max_upload_bytes;
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut metadata = None;
    let bad = |m: String| ApiError(Error::InvalidInput(m));
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("invalid multipart body: {e}")))?
    {
        match field.name() {
            Some("file") => {
                let raw = field.file_name().unwrap_or_default().to_string();
                let name = safe_file_name(&raw)
                    .ok_or_else(|| bad(format!("unacceptable file name {raw:?}")))?;
                if s.engine.parsers.for_path(Path::new(&name)).is_none() {
                    return Err(bad(format!(
                        "unsupported file type `{name}`; supported: {}",
                        s.engine.parsers.extensions().join(", ")
                    )));
                }
                let mut bytes = Vec::new();
                let _in_memory = InMemory::new(&s.engine.metrics.uploads_in_memory);
                while let Some(chunk) = field.chunk().await.map_err(|e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError(Error::TooLarge(format!(
                            "the upload is over the {max}-byte limit (limits.max_upload_bytes)"
                        )))
                    } else {
                        bad(format!("upload interrupted: {e}"))
                    }
                })? {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > max {
                        return Err(ApiError(Error::TooLarge(format!(
                            "the upload is over the {max}-byte limit (limits.max_upload_bytes)"
                        ))));
                    }
                }
                file = Some((name, bytes));
            }
            Some("metadata") => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| bad(format!("invalid metadata field: {e}")))?;
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| bad(format!("metadata is not JSON: {e}")))?;
                if !v.is_object() {
                    return Err(bad("metadata must be a JSON object".into()));
                }
                metadata = Some(v);
            }
            other => {
                return Err(bad(format!(
                    "unexpected multipart field {other:?}; send `file` and optionally `metadata`"
                )));
            }
        }
    }
    let (name, bytes) = file.ok_or_else(|| bad("no `file` field in the upload".into()))?;
    Ok((name, bytes, metadata))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectoryRequest {
    /// A directory (or file) on the server, under one of `ingest.allowed_roots`.
    #[schema(value_type = String)]
    pub path: PathBuf,
    #[serde(default)]
    pub options: IngestOptions,
}

/// Ingests a directory the server can read; only under the configured roots.
#[utoipa::path(post, path = "/api/process/directory", request_body = DirectoryRequest,
    responses((status = 200, body = IngestReport), (status = 400, description = "a path with `..` or one that cannot be read"),
        (status = 403, description = "outside ingest.allowed_roots"),
        (status = 429, description = "ingest.max_concurrent ingests are running; retry after the Retry-After seconds")))]
pub async fn process_directory(
    State(s): State<AppState>,
    Json(req): Json<DirectoryRequest>,
) -> ApiResult<axum::Json<IngestReport>> {
    let path = confined_path(&s, &req.path)?;
    let opts = req.options;
    let roots = s.engine.config.ingest.allowed_roots.clone();
    let report = ingest_guarded(&s, move |engine, progress| {
        // The walk checks every file again: a symbolic link under the root may lead out of it.
        crate::ingest::ingest_paths_within(engine, &[path], &roots, &opts, progress)
    })
    .await?;
    Ok(axum::Json(report))
}

/// The canonical form of a path a request names, when it lies under `ingest.allowed_roots`
/// (400 for `..` or a path that cannot be resolved, 403 outside the roots). The walk checks
/// every file below it again: a symbolic link under a root may lead out of it.
pub(super) fn confined_path(s: &AppState, requested: &Path) -> ApiResult<PathBuf> {
    if requested.components().any(|c| c == Component::ParentDir) {
        return Err(ApiError(Error::InvalidInput(
            "the path may not contain `..`".into(),
        )));
    }
    let path = std::fs::canonicalize(requested).map_err(|e| {
        ApiError(Error::InvalidInput(format!(
            "cannot read {}: {e}",
            requested.display()
        )))
    })?;
    let allowed = s
        .engine
        .config
        .ingest
        .allowed_roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .any(|root| path.starts_with(root));
    if !allowed {
        return Err(ApiError(Error::Forbidden(format!(
            "{} is not under ingest.allowed_roots; add its root to the configuration",
            path.display()
        ))));
    }
    Ok(path)
}

/// The effective configuration (it holds no secrets: the admin token is only a file path).
#[utoipa::path(get, path = "/api/config", responses((status = 200, body = crate::config::Config)))]
pub async fn config(State(s): State<AppState>) -> axum::Json<crate::config::Config> {
    axum::Json(s.engine.config.clone())
}

/// Counts an upload body being read into memory (`instantdb_uploads_in_memory`) while it lives.
struct InMemory<'a>(&'a prometheus::IntGauge);

impl<'a> InMemory<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        InMemory(gauge)
    }
}

impl Drop for InMemory<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// An ingest slot (`ingest.max_concurrent`) if one is free, else 429.
fn ingest_permit(s: &AppState) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    s.ingest_permits.clone().try_acquire_owned().map_err(|_| {
        ApiError(Error::TooManyRequests(format!(
            "{} ingests are already running (ingest.max_concurrent); retry later",
            s.engine.config.ingest.max_concurrent
        )))
    })
}

/// The counts an ingest's span records.
pub(super) trait IngestCounts {
    /// (added, updated, failed)
    fn counts(&self) -> (usize, usize, usize);
}

impl IngestCounts for IngestReport {
    fn counts(&self) -> (usize, usize, usize) {
        (self.added, self.updated, self.failed)
    }
}

impl IngestCounts for crate::ingest::SyncReport {
    fn counts(&self) -> (usize, usize, usize) {
        (self.added.len(), self.changed.len(), self.failed())
    }
}

/// Runs an ingest (or a sync) if a slot is free (`ingest.max_concurrent`), else 429.
pub(super) async fn ingest_guarded<R: IngestCounts + Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&crate::engine::Engine, &dyn Progress) -> crate::error::Result<R> + Send + 'static,
) -> ApiResult<R> {
    let permit = ingest_permit(s)?;
    ingest_with(s, permit, f).await
}

/// Runs an ingest in its slot on a blocking thread, as the request's work: when the request
/// goes (timeout, client gone, or shutdown past its grace period) the ingest stops before its
/// next document or embedding batch, and its slot frees then (see [`super::work`]).
async fn ingest_with<R: IngestCounts + Send + 'static>(
    s: &AppState,
    permit: tokio::sync::OwnedSemaphorePermit,
    f: impl FnOnce(&crate::engine::Engine, &dyn Progress) -> crate::error::Result<R> + Send + 'static,
) -> ApiResult<R> {
    let engine = s.engine.clone();
    // Cancels the ingest when dropped: at the end of this function, or with this future when
    // the request is cut. The ingest checks it before each document, batch and write.
    let work = s.work.start();
    let progress = work.progress();
    // The permit lives in the worker, not in this future: a cut request's ingest still counts
    // against the limit (and at shutdown) until it has actually stopped.
    let span = tracing::info_span!(
        "ingest",
        added = tracing::field::Empty,
        updated = tracing::field::Empty,
        failed = tracing::field::Empty
    );
    let out = blocking(move || {
        let _permit = permit;
        let _entered = span.enter();
        let report = f(&engine, &progress)?;
        let (added, updated, failed) = report.counts();
        span.record("added", added);
        span.record("updated", updated);
        span.record("failed", failed);
        Ok(report)
    })
    .await;
    drop(work);
    out
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn upload_names_cannot_escape_the_uploads_directory() {
        assert_eq!(
            safe_file_name("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(safe_file_name("a\\..\\b.txt").as_deref(), Some("b.txt"));
        assert_eq!(safe_file_name(".."), None);
        assert_eq!(safe_file_name(".bashrc"), None);
        assert_eq!(safe_file_name("dir/"), None);
        assert_eq!(safe_file_name("ok name.md").as_deref(), Some("ok name.md"));
    }
}
