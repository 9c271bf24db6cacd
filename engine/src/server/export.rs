//! `POST /api/export`: the CLI's `instant-db export` as a streamed tar archive.
//!
//! The archive holds exactly the files the CLI writes into its directory (the same
//! [`crate::export::export_to`] fills both). It is written on a blocking thread through a
//! buffered writer into a bounded channel that is the response body, so memory stays at a few
//! buffers however large the database is, and a client that stops reading stops the export.
//!
//! Role `read`: a read key may already list every document and get each with its chunks, so an
//! export reveals nothing more; it is a read (it goes on during a restore or an index load).
//! One export runs at a time (it holds a blocking thread for as long as the client reads);
//! another meanwhile is answered 429 with `Retry-After`.

use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiError, ApiResult, Json};
use super::work::RequestProgress;
use crate::error::Error;
use crate::export::archive::TarSink;
use crate::export::{ExportFormat, ExportOptions};
use crate::filter::FilterInput;
use crate::ingest::{Cancel, Progress};
use tokio::sync::mpsc::error::TrySendError;

/// Bytes gathered before a piece of the archive goes to the client.
const CHUNK_BYTES: usize = 64 * 1024;
/// Pieces waiting for the client: with [`CHUNK_BYTES`] at most ~0.5 MiB per export.
const CHANNEL_PIECES: usize = 8;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/export", post(export))
}

fn yes() -> bool {
    true
}

/// The options of `instant-db export`, as JSON.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// File format of the documents and of the index (`--as`).
    #[serde(default)]
    pub format: ExportFormat,
    /// Largest file in MB, decimals allowed (`--max-size`): a larger document is split into
    /// parts at paragraph boundaries.
    pub max_size_mb: Option<f64>,
    /// One directory per document type (`--split-by-type`).
    #[serde(default)]
    pub split_by_type: bool,
    /// Source, type, dates and metadata under each title (`false`: `--no-metadata`).
    #[serde(default = "yes")]
    pub metadata: bool,
    /// Only the documents matching, in the syntax of the search API's `filter`.
    pub filter: Option<FilterInput>,
}

impl ExportRequest {
    fn options(self) -> crate::error::Result<ExportOptions> {
        Ok(ExportOptions {
            format: self.format,
            max_bytes: crate::export::max_bytes_from_mb(self.max_size_mb, "max_size_mb")?,
            split_by_type: self.split_by_type,
            metadata: self.metadata,
            filter: match &self.filter {
                Some(f) => f.conditions()?,
                None => Vec::new(),
            },
        })
    }
}

/// A piece of the archive, or the error that ended it.
type Piece = Result<Bytes, Error>;

/// The blocking side of the response body.
#[derive(Clone)]
struct Pipe {
    tx: tokio::sync::mpsc::Sender<Piece>,
    progress: RequestProgress,
    /// Set when the export failed: from then on nothing more is written, so the end-of-archive
    /// blocks the tar writer adds when dropped never follow a failure.
    aborted: Cancel,
    /// How long a client may read nothing before the export gives up on it
    /// (`limits.request_timeout_secs`): it holds the one export slot meanwhile.
    stall: Duration,
}

impl Pipe {
    fn send(&self, piece: Piece) -> std::io::Result<()> {
        let deadline = Instant::now() + self.stall;
        let mut piece = piece;
        loop {
            if self.progress.cancelled() {
                return Err(std::io::Error::other(
                    "export stopped: the request ended or the server is shutting down",
                ));
            }
            match self.tx.try_send(piece) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "export stopped: the client went away",
                    ));
                }
                Err(TrySendError::Full(p)) if Instant::now() < deadline => {
                    piece = p;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "export stopped: the client read nothing for {} s (limits.request_timeout_secs)",
                            self.stall.as_secs()
                        ),
                    ));
                }
            }
        }
    }
}

/// Each write is one piece for the client (a `BufWriter` in front makes them large).
struct ChannelWriter(Pipe);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.aborted.is_cancelled() {
            return Err(std::io::Error::other("export stopped after a failure"));
        }
        self.0.send(Ok(Bytes::copy_from_slice(buf)))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Exports the stored documents as a tar archive (`application/x-tar`), the same files as
/// `instant-db export` writes: one per document (or per part) and the index.
#[utoipa::path(post, path = "/api/export", request_body = ExportRequest,
    responses(
        (status = 200, content_type = "application/x-tar", body = Vec<u8>,
            description = "the archive, streamed; a failure after the first bytes cuts the body short (the archive then has no end marker)"),
        (status = 400, description = "bad option or filter"),
        (status = 429, description = "an export is already running; retry after the Retry-After seconds")))]
pub async fn export(
    State(s): State<AppState>,
    Json(req): Json<ExportRequest>,
) -> ApiResult<Response> {
    let opts = req.options()?;
    let permit = s.export_permits.clone().try_acquire_owned().map_err(|_| {
        ApiError(Error::TooManyRequests(
            "an export is already running (one at a time); retry when it ends".into(),
        ))
    })?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(CHANNEL_PIECES);
    // Cancels the export when the body is dropped (client gone) or at shutdown.
    let work = s.work.start();
    let pipe = Pipe {
        tx,
        progress: work.progress(),
        aborted: Cancel::default(),
        stall: Duration::from_secs(s.engine.config.limits.request_timeout_secs.max(1)),
    };
    let engine = s.engine.clone();
    let span = tracing::info_span!("export", documents = tracing::field::Empty);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _entered = span.enter();
        let mut sink = TarSink::new(BufWriter::with_capacity(
            CHUNK_BYTES,
            ChannelWriter(pipe.clone()),
        ));
        // `sink` stays alive on failure until the error is sent: dropping it first would
        // finish the archive.
        let done = match crate::export::export_to(&engine, &mut sink, &opts) {
            Ok(report) => sink.finish().map(|_| report),
            Err(e) => Err(e),
        };
        match done {
            Ok(report) => {
                span.record("documents", report.documents);
                tracing::info!(
                    files = report.files,
                    bytes = report.bytes,
                    "export streamed"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "export failed");
                pipe.aborted.cancel();
                // Ends the body with an error (the stream stops there), so the client cannot
                // take the cut archive for a whole one.
                let _ = pipe.send(Err(e));
            }
        }
    });
    // An error before the first piece (a damaged database, say) is still a JSON answer.
    let first = match rx.recv().await {
        Some(Ok(b)) => b,
        Some(Err(e)) => return Err(ApiError(e)),
        None => {
            return Err(ApiError(Error::Internal(
                "the export ended without writing anything".into(),
            )));
        }
    };
    let rest = futures::stream::unfold(Some((rx, work)), |state| async move {
        let (mut rx, work) = state?;
        match rx.recv().await? {
            Ok(b) => Some((Ok(b), Some((rx, work)))),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    let body = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::io::Error>(first) }),
        rest,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"instant-db-export.tar\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
