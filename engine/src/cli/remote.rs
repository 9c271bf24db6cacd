//! `--server URL`: the same commands against a running server over HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ingest::{IngestOptions, IngestReport};
use crate::search::{SearchRequest, SearchResponse};

fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    super::runtime()?.block_on(fut)
}

fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

async fn decode<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T> {
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| Error::Unavailable(format!("reading the reply failed: {e}")))?;
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        return Err(match status.as_u16() {
            400 | 404 | 413 => Error::InvalidInput(format!("server said {status}: {msg}")),
            401 => Error::Unauthorized(format!("server said {status}: {msg}")),
            403 => Error::Forbidden(format!("server said {status}: {msg}")),
            _ => Error::Unavailable(format!("server said {status}: {msg}")),
        });
    }
    serde_json::from_str(&body)
        .map_err(|e| Error::Internal(format!("unexpected reply from the server: {e}")))
}

fn unreachable(base: &str, e: reqwest::Error) -> Error {
    // reqwest's own text is only "error sending request"; the cause (refused connection,
    // unknown certificate issuer, wrong name on the certificate) is further down the chain.
    let mut why = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        why.push_str(&format!(": {s}"));
        source = s.source();
    }
    let hint = if why.contains("certificate") || why.contains("UnknownIssuer") {
        "; for a server with a private CA pass --ca-file / INSTANT_DB_CA_FILE with that CA's certificate"
    } else if base.starts_with("http://") && why.contains("connection closed") {
        "; is it serving HTTPS? then use https:// in --server"
    } else {
        "; is `instant-db serve` running there?"
    };
    Error::Unavailable(format!("cannot reach the server at {base}: {why}{hint}"))
}

/// The HTTP client of every `--server` command: the public roots plus, with `--ca-file`, the
/// CA(s) in that PEM file (a private CA, a self-signed certificate).
pub fn client(ca_file: Option<&Path>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if let Some(file) = ca_file {
        let pem = std::fs::read(file)
            .map_err(|e| Error::io(format!("cannot read CA file {}", file.display()), e))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "CA file {} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
                    file.display()
                ))
            })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| Error::Internal(format!("cannot set up the HTTP client: {e}")))
}

/// Environment variable that may hold the API key itself (a key file wins over it).
pub const API_KEY_ENV: &str = "INSTANT_DB_API_KEY";

/// The data endpoints of a server (`/api/*`), with the API key that opens them, if any.
pub struct Api<'a> {
    pub base: &'a str,
    pub key: Option<String>,
    pub client: reqwest::Client,
}

impl<'a> Api<'a> {
    /// The key from `--api-key-file` / `INSTANT_DB_API_KEY_FILE`, else `INSTANT_DB_API_KEY`;
    /// none is fine for a server that runs open on loopback.
    pub fn new(base: &'a str, key_file: Option<&Path>, client: reqwest::Client) -> Result<Api<'a>> {
        let key = match key_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        Error::io(format!("cannot read API key file {}", file.display()), e)
                    })?
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Error::InvalidInput(format!("API key file {} is empty", file.display()))
                    })?,
            ),
            None => std::env::var(API_KEY_ENV)
                .ok()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty()),
        };
        Ok(Api { base, key, client })
    }

    fn request(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        let base = self.base;
        block_on(async {
            let resp = self
                .request(self.client.post(url(base, "/api/search")))
                .json(req)
                .send()
                .await
                .map_err(|e| unreachable(base, e))?;
            decode(resp).await
        })
    }

    pub fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let base = self.base;
        block_on(async {
            let resp = self
                .request(self.client.get(url(base, path)))
                .send()
                .await
                .map_err(|e| unreachable(base, e))?;
            decode(resp).await
        })
    }
}

/// The admin endpoints of a server, with the token that opens them.
pub struct Admin<'a> {
    pub base: &'a str,
    /// `--admin-token-file` / `INSTANT_DB_ADMIN_TOKEN_FILE`; else `INSTANT_DB_ADMIN_TOKEN`.
    pub token_file: Option<&'a Path>,
    pub client: reqwest::Client,
}

/// Time between two looks at a running backup job.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

impl Admin<'_> {
    fn token(&self) -> Result<String> {
        if let Some(file) = self.token_file {
            return std::fs::read_to_string(file)
                .map(|t| t.trim().to_string())
                .map_err(|e| {
                    Error::io(
                        format!("cannot read admin token file {}", file.display()),
                        e,
                    )
                });
        }
        std::env::var("INSTANT_DB_ADMIN_TOKEN").map_err(|_| {
            Error::InvalidInput(
                "admin commands against a server need --admin-token-file, \
                 INSTANT_DB_ADMIN_TOKEN_FILE or INSTANT_DB_ADMIN_TOKEN"
                    .into(),
            )
        })
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        let token = self.token()?;
        block_on(async {
            let resp = self
                .client
                .post(url(self.base, path))
                .bearer_auth(token)
                .json(body)
                .send()
                .await
                .map_err(|e| unreachable(self.base, e))?;
            decode(resp).await
        })
    }

    /// Starts a job with `POST start` and polls `GET <follow>/<id>` every [`POLL_INTERVAL`],
    /// passing its `progress` to `progress`, until `outcome` says it has ended.
    fn follow_job(
        &self,
        start: &str,
        body: &serde_json::Value,
        follow: &str,
        progress: &crate::backup::ProgressSink,
        mut outcome: impl FnMut(&str, &serde_json::Value) -> Option<Result<serde_json::Value>>,
    ) -> Result<serde_json::Value> {
        let token = self.token()?;
        block_on(async {
            let client = &self.client;
            let resp = client
                .post(url(self.base, start))
                .bearer_auth(&token)
                .json(body)
                .send()
                .await
                .map_err(|e| unreachable(self.base, e))?;
            let job: serde_json::Value = decode(resp).await?;
            let id = job["id"]
                .as_str()
                .ok_or_else(|| Error::Internal(format!("the server's reply has no job id: {job}")))?
                .to_string();
            tracing::info!(id = %id, "job started on the server: {start}");
            loop {
                let resp = client
                    .get(url(self.base, &format!("{follow}/{id}")))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map_err(|e| unreachable(self.base, e))?;
                let job: serde_json::Value = decode(resp).await?;
                if let Ok(p) =
                    serde_json::from_value::<crate::backup::BackupProgress>(job["progress"].clone())
                {
                    progress(p);
                }
                match outcome(&id, &job) {
                    Some(done) => return done,
                    None => tokio::time::sleep(POLL_INTERVAL).await,
                }
            }
        })
    }

    /// Starts a backup on the server and follows it to the end, passing its progress to
    /// `progress`. A failed backup is an error (exit 1).
    pub fn backup(
        &self,
        destination: &str,
        id: Option<&str>,
        progress: &crate::backup::ProgressSink,
    ) -> Result<serde_json::Value> {
        let started = std::time::Instant::now();
        self.follow_job(
            "/admin/backups",
            &serde_json::json!({"destination": destination, "id": id}),
            "/admin/backups",
            progress,
            |id, job| match job["status"].as_str() {
                Some("running") => None,
                Some("completed") => Some(Ok(serde_json::json!({
                    "id": id, "location": job["location"], "size_bytes": job["size_bytes"],
                    "sha256": job["sha256"], "documents": job["document_count"],
                    "chunks": job["chunk_count"], "seconds": started.elapsed().as_secs_f64(),
                }))),
                _ => Some(Err(Error::Unavailable(format!(
                    "backup {id} failed on the server: {}",
                    job["error"].as_str().unwrap_or("no error given")
                )))),
            },
        )
    }

    /// Starts a restore job on the server (`POST /admin/restores`) and follows it to its end,
    /// passing download and verification progress to `progress` and each phase to the log.
    /// A job that ends `failed` or `rolled_back` is an error (exit 1) saying which.
    pub fn restore(
        &self,
        source: &str,
        target: Option<crate::archive::TargetTime>,
        progress: &crate::backup::ProgressSink,
    ) -> Result<serde_json::Value> {
        let mut last_phase = String::new();
        let mut body = serde_json::json!({"source": source});
        if let Some(t) = target {
            body["target_time"] = serde_json::Value::String(t.describe());
        }
        self.follow_job(
            "/admin/restores",
            &body,
            "/admin/restores",
            progress,
            |id, job| {
                let phase = job["phase"].as_str().unwrap_or_default();
                if phase != last_phase {
                    tracing::info!(id = %id, phase = %phase, "restore phase");
                    last_phase = phase.to_string();
                }
                match phase {
                    "completed" => Some(Ok(serde_json::json!({
                        "id": id, "backup_id": job["backup_id"], "source": job["source"],
                        "documents": job["document_count"], "chunks": job["chunk_count"],
                        "started_at": job["started_at"], "finished_at": job["finished_at"],
                        "target_time": job["target_time"], "restored_to": job["restored_to"],
                    }))),
                    "failed" | "rolled_back" => {
                        let what = if phase == "failed" {
                            "was refused; nothing was changed"
                        } else {
                            "was rolled back; the previous data is back"
                        };
                        Some(Err(Error::Unavailable(format!(
                            "restore {id} {what}: {}",
                            job["error"].as_str().unwrap_or("no error given")
                        ))))
                    }
                    _ => None,
                }
            },
        )
    }
}

impl Admin<'_> {
    /// Starts a verification on the server (`POST /admin/verifications`) and follows it to its
    /// end; returns its record, passed or failed (the caller decides the exit code).
    pub fn verify(
        &self,
        source: &str,
        progress: &crate::backup::ProgressSink,
    ) -> Result<serde_json::Value> {
        self.follow_job(
            "/admin/verifications",
            &serde_json::json!({"source": source}),
            "/admin/verifications",
            progress,
            |_, job| match job["phase"].as_str() {
                Some("passed" | "failed") => Some(Ok(job.clone())),
                _ => None,
            },
        )
    }
}

impl Api<'_> {
    /// Server-side sync of paths the server can read (its `ingest.allowed_roots`), in one
    /// request: the server refuses all of them when one is outside its roots.
    pub fn sync(
        &self,
        paths: &[PathBuf],
        opts: &crate::ingest::SyncOptions,
    ) -> Result<crate::ingest::SyncReport> {
        let base = self.base;
        let paths: Vec<PathBuf> = paths
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        let body = serde_json::json!({
            "paths": paths,
            "dry_run": opts.dry_run,
            "delete_missing": opts.delete_missing,
            "options": opts.ingest,
        });
        block_on(async {
            let resp = self
                .request(self.client.post(url(base, "/api/sync")))
                .json(&body)
                .send()
                .await
                .map_err(|e| unreachable(base, e))?;
            decode(resp).await
        })
    }

    /// Server-side ingest of paths the server can read (its `ingest.allowed_roots`).
    pub fn ingest(&self, paths: &[PathBuf], opts: &IngestOptions) -> Result<IngestReport> {
        let base = self.base;
        block_on(async {
            let client = &self.client;
            let mut total = IngestReport::default();
            let mut refused = vec![];
            for p in paths {
                let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                let body = serde_json::json!({ "path": abs, "options": opts });
                let resp = self
                    .request(client.post(url(base, "/api/process/directory")))
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| unreachable(base, e))?;
                let r: IngestReport = match decode(resp).await {
                    Ok(r) => r,
                    // One path the server cannot take (missing, outside its roots) is reported like
                    // a local ingest reports it, and the other paths still go.
                    Err(e @ (Error::InvalidInput(_) | Error::Forbidden(_))) => {
                        total.files_seen += 1;
                        total.failed += 1;
                        total.problems.push(crate::ingest::FileReport {
                            source: p.display().to_string(),
                            outcome: crate::ingest::FileOutcome::Failed,
                            document_id: None,
                            chunks: 0,
                            reason: Some(e.to_string()),
                            kind: Some(crate::ingest::ProblemKind::Unreadable),
                        });
                        refused.push(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                total.files_seen += r.files_seen;
                total.added += r.added;
                total.updated += r.updated;
                total.unchanged += r.unchanged;
                total.skipped += r.skipped;
                total.failed += r.failed;
                total.chunks += r.chunks;
                total.embedded_chunks += r.embedded_chunks;
                total.seconds += r.seconds;
                total.problems.extend(r.problems);
                total.degraded = total.degraded.or(r.degraded);
                if r.stopped.is_some() {
                    total.stopped = r.stopped;
                    break;
                }
            }
            if !paths.is_empty() && refused.len() == paths.len() {
                return Err(refused.remove(0));
            }
            total.nothing_ingested = crate::ingest::nothing_ingested(&total);
            Ok(total)
        })
    }
}
