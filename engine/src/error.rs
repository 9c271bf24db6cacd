//! The engine's one error type. Every variant knows its HTTP status, its stable machine-readable
//! code and its process exit code, so the CLI and the HTTP API report the same failure the same way.

use std::path::PathBuf;

use http::StatusCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something we cannot act on (bad filter, empty query, unknown mode...).
    #[error("{0}")]
    InvalidInput(String),
    /// Configuration file, environment or flags are wrong; the message names the key.
    #[error("configuration error: {0}")]
    Config(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("payload too large: {0}")]
    TooLarge(String),
    /// The request target (path and query) is over `limits.max_uri_bytes` (HTTP 414).
    #[error("URI too long: {0}")]
    UriTooLong(String),
    /// The request headers are over `limits.max_header_bytes` (HTTP 431).
    #[error("request headers too large: {0}")]
    HeadersTooLarge(String),
    #[error("too many requests: {0}")]
    TooManyRequests(String),
    /// No key or a wrong key; the message says which key the request needs.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The embedding model or ONNX Runtime could not be loaded or used.
    #[error("embedding model unavailable: {0}")]
    ModelUnavailable(String),
    /// One inference run failed (e.g. an allocation): worth retrying, unlike a missing model.
    #[error("embedding inference failed: {0}")]
    Inference(String),
    /// Runtime assets (ONNX Runtime library, model files) are not installed.
    #[error("{0}")]
    AssetsMissing(String),
    #[error("database error: {0}")]
    Database(rusqlite::Error),
    /// The database file is damaged (SQLite reports it corrupt or not a database). The message
    /// says how to restore it; repair cannot, since the damage is in the source data.
    #[error("{0}")]
    DatabaseDamaged(Damage),
    /// A restore is running: writes are refused until it ends (HTTP: 503 with `Retry-After`).
    #[error("{0}")]
    RestoreInProgress(String),
    /// The vector index is still loading after the start (HTTP: 503 with `Retry-After`); the
    /// message says how far it is and what works meanwhile.
    #[error("{0}")]
    IndexLoading(String),
    /// Another backup or restore of this engine is running (one at a time).
    #[error("{0}")]
    OperationInProgress(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not parse {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: crate::parse::ParseError,
    },
    #[error("integrity check failed: {0}")]
    Integrity(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The external vector store (Qdrant) failed or refused a call; the message says which
    /// call and what to check. Keyword search keeps working meanwhile.
    #[error("vector store unavailable: {0}")]
    VectorStore(String),
    /// The credentials a backup location names (`credentials=NAME`) are not (yet) in the
    /// credentials directory: in Kubernetes, a new Secret the kubelet has not synced yet.
    #[error("{0}")]
    CredentialsNotFound(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A damaged database: what SQLite said and where, shown with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// SQLite's own words (e.g. "database disk image is malformed").
    pub detail: String,
    /// The data directory, when known.
    pub data_dir: Option<PathBuf>,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self
            .data_dir
            .as_ref()
            .map(|d| format!(" in {}", d.display()))
            .unwrap_or_default();
        write!(
            f,
            "the database{at} is damaged ({}); {}",
            self.detail,
            restore_advice(self.data_dir.as_deref())
        )
    }
}

/// What to do about a damaged database, with the command. `data_dir` is named when known.
pub fn restore_advice(data_dir: Option<&std::path::Path>) -> String {
    let dir = data_dir.map_or_else(|| "<data dir>".to_string(), |d| d.display().to_string());
    format!(
        "restore it from a backup: `instant-db restore --data-dir {dir} --from <archive URL>` \
         (a running server: `instant-db restore --server <URL> --from <archive URL>` or \
         POST /admin/restores); `instant-db repair` rebuilds derived data only and cannot bring \
         lost rows back"
    )
}

/// Whether SQLite says the file itself is damaged (as opposed to busy, full, locked...).
pub fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

impl From<rusqlite::Error> for Error {
    /// Corruption is reported with what to do about it wherever it surfaces (a search, an
    /// ingest, the startup check), not as a bare "database disk image is malformed".
    fn from(e: rusqlite::Error) -> Self {
        if is_corruption(&e) {
            Error::DatabaseDamaged(Damage {
                detail: e.to_string(),
                data_dir: None,
            })
        } else {
            Error::Database(e)
        }
    }
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A stable, machine-readable code for API clients and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "invalid_input",
            Error::Config(_) => "invalid_config",
            Error::NotFound(_) => "not_found",
            Error::TooLarge(_) => "payload_too_large",
            Error::TooManyRequests(_) => "too_many_requests",
            Error::UriTooLong(_) => "uri_too_long",
            Error::HeadersTooLarge(_) => "headers_too_large",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::ModelUnavailable(_) => "model_unavailable",
            Error::Inference(_) => "inference_failed",
            Error::AssetsMissing(_) => "assets_missing",
            Error::Database(_) => "database_error",
            Error::DatabaseDamaged(_) => "database_damaged",
            Error::RestoreInProgress(_) => "restore_in_progress",
            Error::IndexLoading(_) => "index_loading",
            Error::OperationInProgress(_) => "operation_in_progress",
            Error::Io { .. } => "io_error",
            Error::Parse { .. } => "parse_error",
            Error::Integrity(_) => "integrity_failed",
            Error::Unavailable(_) => "unavailable",
            Error::VectorStore(_) => "vector_store_unavailable",
            Error::CredentialsNotFound(_) => "credentials_not_found",
            Error::Internal(_) => "internal_error",
        }
    }

    pub fn http_status(&self) -> StatusCode {
        match self {
            Error::InvalidInput(_) | Error::Config(_) | Error::Parse { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Error::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Conflict(_) | Error::OperationInProgress(_) => StatusCode::CONFLICT,
            Error::ModelUnavailable(_)
            | Error::Inference(_)
            | Error::AssetsMissing(_)
            | Error::Unavailable(_)
            | Error::VectorStore(_)
            | Error::CredentialsNotFound(_)
            | Error::DatabaseDamaged(_)
            | Error::RestoreInProgress(_)
            | Error::IndexLoading(_)
            | Error::Integrity(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Io { .. } | Error::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Exit codes of the command line: 2 for bad usage or bad input, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidInput(_)
            | Error::Config(_)
            | Error::NotFound(_)
            | Error::TooLarge(_)
            | Error::UriTooLong(_)
            | Error::HeadersTooLarge(_)
            | Error::Parse { .. } => 2,
            _ => 1,
        }
    }
}
