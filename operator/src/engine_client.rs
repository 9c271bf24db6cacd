//! Client of the engine's health endpoint (`GET /health/detailed`), backup jobs
//! (`POST /admin/backups`, `GET /admin/backups/{id}`) and restore jobs (`POST /admin/restores`,
//! `GET /admin/restores/{id}`), with the bearer admin token.
//!
//! An engine with `spec.tls` is called over HTTPS: the client trusts exactly the instance's CA
//! (no public roots) and checks the pod's DNS name on the certificate, while connecting to the
//! pod IP (reqwest's `resolve`), so no DNS lookup is needed and no other pod can answer for it.
//!
//! The body is decoded into typed structs that mirror the engine's `HealthReport`
//! (`engine/src/health.rs`), keeping only the fields the operator reads. Unknown fields are
//! ignored and an unknown status value decodes as [`HealthStatus::Unknown`], so a newer engine
//! does not break an older operator; a body of another shape is an error.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

#[path = "engine_client_archive.rs"]
mod archive;
pub use archive::ArchiveReport;

/// Overall health the engine reports (the engine's `Status`, serialized in snake case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything works.
    Healthy,
    /// Serving, with a problem (for example keyword search only, model missing).
    Degraded,
    /// Not serving.
    Unhealthy,
    /// Missing or unrecognised (a status value added by a newer engine).
    #[default]
    #[serde(other)]
    Unknown,
}

/// Result of the engine's latest integrity check.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IntegrityCheck {
    /// When it ran.
    pub at: Option<Timestamp>,
    /// Whether it passed (unknown when the engine did not say).
    pub ok: Option<bool>,
    /// Details when it failed.
    pub message: Option<String>,
}

/// The parts of `/health/detailed` the operator uses.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DetailedHealth {
    /// Overall status.
    pub status: HealthStatus,
    /// Whether the engine says it can serve (its `/health/ready`); None from an engine that
    /// does not report it.
    pub ready: Option<bool>,
    /// Why the engine is not healthy or not ready (empty when it is both).
    pub reasons: Vec<String>,
    /// Status of each component (database, vector_index, embedding_model, disk...).
    pub components: BTreeMap<String, HealthStatus>,
    /// Number of documents.
    pub document_count: Option<i64>,
    /// Latest integrity check.
    pub last_integrity_check: Option<IntegrityCheck>,
    /// Engine version.
    pub version: Option<String>,
}

impl DetailedHealth {
    /// Names of the components that are not healthy.
    pub fn unhealthy_components(&self) -> Vec<String> {
        self.components
            .iter()
            .filter(|(_, s)| matches!(s, HealthStatus::Degraded | HealthStatus::Unhealthy))
            .map(|(n, s)| {
                format!(
                    "{n}={}",
                    if *s == HealthStatus::Degraded {
                        "degraded"
                    } else {
                        "unhealthy"
                    }
                )
            })
            .collect()
    }
}

/// The engine's `HealthReport`, as far as the operator reads it.
#[derive(Deserialize)]
struct HealthReport {
    #[serde(default)]
    status: Option<HealthStatus>,
    #[serde(default)]
    ready: Option<bool>,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    version: Option<String>,
    document_count: i64,
    #[serde(default)]
    last_integrity_check: Option<IntegrityStatus>,
    components: BTreeMap<String, ComponentHealth>,
}

/// The engine's `ComponentHealth`, as far as the operator reads it.
#[derive(Deserialize)]
struct ComponentHealth {
    #[serde(default)]
    status: Option<HealthStatus>,
}

/// The engine's `IntegrityStatus`, as far as the operator reads it.
#[derive(Deserialize)]
struct IntegrityStatus {
    ok: bool,
    checked_at: String,
    #[serde(default)]
    problems: Vec<String>,
}

/// Decodes a `/health/detailed` body; the error says what in it was wrong.
fn decode(body: &Value) -> std::result::Result<DetailedHealth, String> {
    let report = HealthReport::deserialize(body)
        .map_err(|e| format!("the body is not the engine's health report: {e}"))?;
    let last_integrity_check = report
        .last_integrity_check
        .map(|i| {
            let at = i.checked_at.parse::<Timestamp>().map_err(|e| {
                format!(
                    "last_integrity_check.checked_at {:?} is not an RFC 3339 timestamp: {e}",
                    i.checked_at
                )
            })?;
            Ok::<_, String>(IntegrityCheck {
                at: Some(at),
                ok: Some(i.ok),
                message: (!i.problems.is_empty()).then(|| i.problems.join("; ")),
            })
        })
        .transpose()?;
    Ok(DetailedHealth {
        status: report.status.unwrap_or_default(),
        ready: report.ready,
        reasons: report.reasons,
        components: report
            .components
            .into_iter()
            .map(|(name, c)| (name, c.status.unwrap_or_default()))
            .collect(),
        document_count: Some(report.document_count),
        last_integrity_check,
        version: report.version,
    })
}

/// Parses a `/health/detailed` body ([`Error::Engine`] when it is not the engine's report).
pub fn parse_detailed_health(body: &Value) -> Result<DetailedHealth> {
    decode(body).map_err(Error::Engine)
}

/// State of a backup job on the engine (the engine's `JobStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupJobStatus {
    /// Still copying or uploading.
    Running,
    /// The archive and its checksum are stored.
    Completed,
    /// It stopped; `error` says why.
    Failed,
    /// A status value added by a newer engine.
    #[default]
    #[serde(other)]
    Unknown,
}

/// A backup job as the engine reports it (its `BackupJob`, the fields the operator reads).
#[derive(Clone, Debug, PartialEq, Eq, Default, Deserialize)]
pub struct BackupJob {
    /// Backup id (the archive is `<id>.tar.gz`).
    pub id: String,
    /// Running, completed or failed.
    pub status: BackupJobStatus,
    /// Where the archive is, credentials removed (when completed).
    #[serde(default)]
    pub location: Option<String>,
    /// Archive size.
    #[serde(default)]
    pub size_bytes: Option<u64>,
    /// sha256 of the archive.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Documents in the backup.
    #[serde(default)]
    pub document_count: Option<u64>,
    /// Version of the engine that wrote it.
    #[serde(default)]
    pub engine_version: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The verification the engine runs after the backup completed (absent when it does not).
    #[serde(default)]
    pub verification: Option<Verification>,
}

/// Phase of a backup verification on the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationPhase {
    /// Queued behind another verification.
    Pending,
    /// Downloading, unpacking or checking.
    Running,
    /// Every check passed.
    Passed,
    /// A check failed or it could not run; `error` says which and what to do.
    Failed,
    /// A phase added by a newer engine.
    #[default]
    #[serde(other)]
    Unknown,
}

/// A verification as the engine reports it (the fields the operator reads).
#[derive(Clone, Debug, PartialEq, Eq, Default, Deserialize)]
pub struct Verification {
    /// Where it is.
    pub phase: VerificationPhase,
    /// When it ended (RFC 3339).
    #[serde(default)]
    pub verified_at: Option<String>,
    /// Which check failed and what to do.
    #[serde(default)]
    pub error: Option<String>,
}

/// Phase of a restore job on the engine (`GET /admin/restores/{id}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestorePhase {
    /// Accepted, not started.
    Pending,
    /// Downloading the archive.
    Fetching,
    /// Checking every checksum.
    Verifying,
    /// Putting the restored data in place.
    Swapping,
    /// Checking the integrity of the restored data.
    Checking,
    /// The restored data is live and passed its check.
    Completed,
    /// The restored data failed its check; the previous data was put back.
    RolledBack,
    /// Refused before anything changed (`error` says why).
    Failed,
    /// A phase added by a newer engine.
    #[default]
    #[serde(other)]
    Unknown,
}

impl RestorePhase {
    /// Whether the job is over (completed, rolled back or failed).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RestorePhase::Completed | RestorePhase::RolledBack | RestorePhase::Failed
        )
    }
}

/// A restore job as the engine reports it (the fields the operator reads).
#[derive(Clone, Debug, PartialEq, Eq, Default, Deserialize)]
pub struct RestoreJob {
    /// Job id.
    pub id: String,
    /// Where it is.
    pub phase: RestorePhase,
    /// Why it failed or rolled back (or that it was interrupted).
    #[serde(default)]
    pub error: Option<String>,
    /// Documents in the restored database.
    #[serde(default)]
    pub document_count: Option<u64>,
    /// Id of the restored backup (for a point-in-time restore, the base snapshot).
    #[serde(default)]
    pub backup_id: Option<String>,
    /// Point-in-time restore: the target as the engine took it (`latest` or RFC 3339).
    #[serde(default)]
    pub target_time: Option<String>,
    /// Point-in-time restore: commit time of the newest change restored.
    #[serde(default)]
    pub restored_to: Option<String>,
}

/// One engine pod to call: its IP, and how to verify it when it serves HTTPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineTarget {
    /// The pod IP the connection goes to.
    pub ip: String,
    /// HTTPS with this CA and name (`spec.tls`); plain HTTP when None.
    pub tls: Option<EngineTls>,
}

impl EngineTarget {
    /// An engine serving plain HTTP.
    pub fn http(ip: impl Into<String>) -> Self {
        EngineTarget {
            ip: ip.into(),
            tls: None,
        }
    }
}

/// How to verify an engine's certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct EngineTls {
    /// PEM of the only CA trusted (the TLS Secret's `ca.crt`, else its `tls.crt`).
    pub ca_pem: Vec<u8>,
    /// The name the certificate must carry: the pod's `<pod>.<headless>.<ns>.svc`.
    pub server_name: String,
}

impl std::fmt::Debug for EngineTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineTls")
            .field("server_name", &self.server_name)
            .field("ca_pem_bytes", &self.ca_pem.len())
            .finish()
    }
}

/// What the controllers need from an engine. A trait so tests can use a fake engine.
pub trait EngineApi: Send + Sync {
    /// `GET http(s)://<pod>:<port>/health/detailed` with the admin token.
    fn detailed_health<'a>(
        &'a self,
        engine: &'a EngineTarget,
        token: &'a str,
    ) -> BoxFuture<'a, Result<DetailedHealth>>;

    /// `POST /admin/backups` with `{destination, id}`: starts the backup and answers at once.
    /// An id the engine already knows is [`Error::BackupIdInUse`]. Engines that only report
    /// health (test fakes) keep this default, which refuses.
    fn start_backup<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
        _destination: &'a str,
        _id: &'a str,
    ) -> BoxFuture<'a, Result<BackupJob>> {
        Box::pin(async {
            Err(Error::Engine(
                "this engine client cannot run backups".into(),
            ))
        })
    }

    /// `POST /admin/restores` with `{id, source}` (and `target_time` for a point-in-time
    /// restore, `source` then being the destination folder): starts (or, for a known id,
    /// finds) the restore job. Another backup or restore running is
    /// [`Error::OperationInProgress`].
    fn start_restore<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
        _source: &'a str,
        _target_time: Option<&'a str>,
        _id: &'a str,
    ) -> BoxFuture<'a, Result<RestoreJob>> {
        Box::pin(async { Err(Error::Engine("this engine client cannot restore".into())) })
    }

    /// `GET /admin/archive`: continuous archiving and the recovery window. The engine lists
    /// its destination to answer (a few requests), so it is asked on the engine-numbers timer,
    /// not at every reconcile.
    fn archive_report<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
    ) -> BoxFuture<'a, Result<ArchiveReport>> {
        Box::pin(async {
            Err(Error::Engine(
                "this engine client cannot report archiving".into(),
            ))
        })
    }

    /// `GET /admin/restores/{id}`; None when the engine has no record of the id.
    fn restore_job<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
        _id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RestoreJob>>> {
        Box::pin(async { Err(Error::Engine("this engine client cannot restore".into())) })
    }

    /// `DELETE /admin/backups/{id}?destination=…`: removes a stored archive. `Ok(false)` when
    /// there was none.
    fn delete_backup<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
        _destination: &'a str,
        _id: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async {
            Err(Error::Engine(
                "this engine client cannot delete backups".into(),
            ))
        })
    }

    /// `GET /admin/backups/{id}`; None when the engine does not know the id (it restarted since).
    fn backup_job<'a>(
        &'a self,
        _engine: &'a EngineTarget,
        _token: &'a str,
        _id: &'a str,
    ) -> BoxFuture<'a, Result<Option<BackupJob>>> {
        Box::pin(async {
            Err(Error::Engine(
                "this engine client cannot run backups".into(),
            ))
        })
    }
}

/// Most HTTPS clients kept (one per CA, name and pod IP); past it the cache starts over, so pod
/// IPs that come and go over months do not pile up.
const MAX_TLS_CLIENTS: usize = 256;

/// Key of a cached HTTPS client: the CA's PEM, the server name and the pod IP.
type TlsClientKey = (Vec<u8>, String, String);

/// HTTP implementation of [`EngineApi`].
#[derive(Clone, Debug)]
pub struct HttpEngineClient {
    http: reqwest::Client,
    port: u16,
    timeout: Duration,
    /// HTTPS clients by (CA, server name, IP): each trusts one CA only and maps one name to one
    /// IP, and is kept so its connections are reused.
    tls_clients: Arc<Mutex<HashMap<TlsClientKey, reqwest::Client>>>,
}

impl HttpEngineClient {
    /// A client with a short timeout (health must answer fast).
    pub fn new(port: u16, timeout: Duration) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Engine(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            http,
            port,
            timeout,
            tls_clients: Arc::default(),
        })
    }

    fn url(&self, engine: &EngineTarget, path: &str) -> String {
        match &engine.tls {
            Some(tls) => format!("https://{}:{}{path}", tls.server_name, self.port),
            None if engine.ip.contains(':') => {
                format!("http://[{}]:{}{path}", engine.ip, self.port)
            }
            None => format!("http://{}:{}{path}", engine.ip, self.port),
        }
    }

    /// The client for `engine`: the plain one, or one trusting only the engine's CA with the
    /// certificate's name resolved to the pod IP.
    fn client_for(&self, engine: &EngineTarget) -> Result<reqwest::Client> {
        let Some(tls) = &engine.tls else {
            return Ok(self.http.clone());
        };
        let key = (
            tls.ca_pem.clone(),
            tls.server_name.clone(),
            engine.ip.clone(),
        );
        let mut cache = match self.tls_clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let ip: IpAddr = engine
            .ip
            .parse()
            .map_err(|e| Error::Engine(format!("pod IP {:?}: {e}", engine.ip)))?;
        let ca = reqwest::Certificate::from_pem(&tls.ca_pem).map_err(|e| {
            Error::Engine(format!(
                "the CA certificate of the TLS Secret does not parse: {e}"
            ))
        })?;
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .https_only(true)
            .resolve(&tls.server_name, SocketAddr::new(ip, self.port))
            .build()
            .map_err(|e| Error::Engine(format!("cannot build HTTPS client: {e}")))?;
        if cache.len() >= MAX_TLS_CLIENTS {
            cache.clear();
        }
        cache.insert(key, client.clone());
        Ok(client)
    }
}

/// Sends `req` with the admin token. `what` (method and URL, no credentials) names the request
/// in the error; the URL reqwest would add is left out, as a query may carry credentials.
async fn send(what: &str, req: reqwest::RequestBuilder, token: &str) -> Result<reqwest::Response> {
    req.bearer_auth(token).send().await.map_err(|e| {
        // The cause (refused, timed out, a certificate from another CA or for another name) is
        // down the source chain; reqwest's own text is only "error sending request".
        let e = e.without_url();
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why.push_str(&format!(": {s}"));
            source = s.source();
        }
        Error::Engine(format!("{what}: {why}"))
    })
}

/// The status and JSON body of an engine answer.
async fn json_answer(what: &str, resp: reqwest::Response) -> Result<(reqwest::StatusCode, Value)> {
    let code = resp.status();
    let body = resp
        .json()
        .await
        .map_err(|e| Error::Engine(format!("{what}: HTTP {code}, body is not JSON: {e}")))?;
    Ok((code, body))
}

/// The `message` of the engine's JSON error (`{"error": {code, message}}`).
pub fn engine_message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .or(body["message"].as_str())
        .unwrap_or("no message")
}

/// The `code` of the engine's JSON error.
fn engine_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .or(body["code"].as_str())
        .unwrap_or_default()
}

/// The error for a non-2xx engine answer: another operation running (409
/// `operation_in_progress`), credentials files not (yet) in the pod, or the engine's message.
fn engine_error(what: &str, code: reqwest::StatusCode, body: &Value) -> Error {
    let message = engine_message(body);
    if code == reqwest::StatusCode::CONFLICT && engine_code(body) == "operation_in_progress" {
        return Error::OperationInProgress(message.to_string());
    }
    // The engine's 503 `credentials_not_found`: the files of a `credentials=NAME` are not in
    // its credentials directory yet (the kubelet syncs a changed Secret within about a minute).
    if engine_code(body) == "credentials_not_found" {
        return Error::CredentialsNotReady(message.to_string());
    }
    Error::Engine(format!("{what}: HTTP {code}: {message}"))
}

/// Reads an `/admin/backups` answer: the job on success, the engine's `{code, message}` in
/// the error otherwise.
async fn backup_answer(what: &str, resp: reqwest::Response) -> Result<BackupJob> {
    let (code, body) = json_answer(what, resp).await?;
    if !code.is_success() {
        return Err(match engine_error(what, code, &body) {
            Error::Engine(_) if code == reqwest::StatusCode::CONFLICT => {
                Error::BackupIdInUse(what.to_string())
            }
            e => e,
        });
    }
    BackupJob::deserialize(&body)
        .map_err(|e| Error::Engine(format!("{what}: the body is not a backup job: {e}")))
}

/// Reads an `/admin/restores` answer: the job on success, else the engine's error.
async fn restore_answer(what: &str, resp: reqwest::Response) -> Result<RestoreJob> {
    let (code, body) = json_answer(what, resp).await?;
    if !code.is_success() {
        return Err(match engine_error(what, code, &body) {
            // A request the engine will never take (bad URL, unknown archive): not retried.
            Error::Engine(_)
                if code.is_client_error() && code != reqwest::StatusCode::NOT_FOUND =>
            {
                Error::RestoreRefused(format!("HTTP {code}: {}", engine_message(&body)))
            }
            e => e,
        });
    }
    RestoreJob::deserialize(&body)
        .map_err(|e| Error::Engine(format!("{what}: the body is not a restore job: {e}")))
}

impl EngineApi for HttpEngineClient {
    fn detailed_health<'a>(
        &'a self,
        engine: &'a EngineTarget,
        token: &'a str,
    ) -> BoxFuture<'a, Result<DetailedHealth>> {
        Box::pin(async move {
            let http = self.client_for(engine)?;
            let url = self.url(engine, "/health/detailed");
            let what = format!("GET {url}");
            let resp = send(&what, http.get(&url), token).await?;
            // 503 still carries the JSON report of a degraded engine.
            let (code, body) = json_answer(&what, resp).await?;
            if code.is_client_error() {
                return Err(Error::Engine(format!("{what}: HTTP {code}")));
            }
            decode(&body).map_err(|e| Error::Engine(format!("{what}: HTTP {code}: {e}")))
        })
    }

    fn start_backup<'a>(
        &'a self,
        engine: &'a EngineTarget,
        token: &'a str,
        destination: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<BackupJob>> {
        Box::pin(async move {
            let http = self.client_for(engine)?;
            let url = self.url(engine, "/admin/backups");
            // The destination may carry credentials: only the id goes into messages.
            let what = format!("POST {url} (backup {id})");
            let body = serde_json::json!({"destination": destination, "id": id});
            let resp = send(&what, http.post(&url).json(&body), token).await?;
            backup_answer(&what, resp).await
        })
    }

    fn delete_backup<'a>(
        &'a self,
        engine: &'a EngineTarget,
        token: &'a str,
        destination: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let http = self.client_for(engine)?;
            let url = self.url(engine, &format!("/admin/backups/{id}"));
            // The destination carries credentials: it goes in the query, never in messages.
            let what = format!("DELETE {url}");
            let req = http.delete(&url).query(&[("destination", destination)]);
            let resp = send(&what, req, token).await?;
            match resp.status() {
                reqwest::StatusCode::NO_CONTENT | reqwest::StatusCode::OK => Ok(true),
                reqwest::StatusCode::NOT_FOUND => Ok(false),
                code => {
                    let body: Value = resp.json().await.unwrap_or_default();
                    Err(engine_error(&what, code, &body))
                }
            }
        })
    }

    fn start_restore<'a>(
        &'a self,
        engine: &'a EngineTarget,
        token: &'a str,
        source: &'a str,
        target_time: Option<&'a str>,
        id: &'a str,
    ) -> BoxFuture<'a, Result<RestoreJob>> {
        Box::pin(async move {
            let http = self.client_for(engine)?;
            let url = self.url(engine, "/admin/restores");
            let what = format!("POST {url} (restore {id})");
            let mut body = serde_json::json!({"id": id, "source": source});
            if let Some(t) = target_time {
                body["target_time"] = Value::from(t);
            }
            let resp = send(&what, http.post(&url).json(&body), token).await?;
            restore_answer(&what, resp).await
        })
    }

    fn archive_report<'a>(
        &'a self,
        engine: &'a EngineTarget,
        token: &'a str,
    ) -> BoxFuture<'a, Result<ArchiveReport>> {
        Box::pin(async move {
            let http = self.client_for(engine)?;
            let url = self.url(engine, "/admin/archive");
            let what = format!("GET {url}");
            let resp = send(&what, http.get(&url), token).await?;
            let (code, body) = json_answer(&what, resp).await?;
            if !code.is_success() {
                return Err(engine_error(&what, code, &body));
            }
            archive::decode(&body).map_err(|e| Error::Engine(format!("{what}: {e}")))
        })
    }

    fn restore_job<'a>(
        &'a self,
        engine: &'a EngineTarget,
        token: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RestoreJob>>> {
        Box::pin(async move {
            let http = self.client_for(engine)?;
            let url = self.url(engine, &format!("/admin/restores/{id}"));
            let what = format!("GET {url}");
            let resp = send(&what, http.get(&url), token).await?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            restore_answer(&what, resp).await.map(Some)
        })
    }

    fn backup_job<'a>(
        &'a self,
        engine: &'a EngineTarget,
        token: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<BackupJob>>> {
        Box::pin(async move {
            let http = self.client_for(engine)?;
            let url = self.url(engine, &format!("/admin/backups/{id}"));
            let what = format!("GET {url}");
            let resp = send(&what, http.get(&url), token).await?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            backup_answer(&what, resp).await.map(Some)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    /// A body in the shape the engine's `HealthReport` serializes to (engine/src/health.rs),
    /// here with a failed integrity check and no model loaded.
    fn engine_report() -> Value {
        json!({
            "status": "unhealthy",
            "ready": false,
            "reasons": [
                "embedding model unavailable, keyword search only: not loaded",
                "integrity check failed at 2026-01-02T03:04:05Z: page 7 corrupt; orphan chunk 12"
            ],
            "version": "0.4.0",
            "checked_at": "2026-01-02T03:05:00Z",
            "uptime_seconds": 3600.5,
            "document_count": 42,
            "chunk_count": 420,
            "last_integrity_check": {
                "ok": false,
                "checked_at": "2026-01-02T03:04:05Z",
                "duration_ms": 12.5,
                "problems": ["page 7 corrupt", "orphan chunk 12"]
            },
            "components": {
                "database": {
                    "status": "healthy",
                    "response_time_ms": 0.4,
                    "details": {"path": "/data/instant.db", "schema_version": 3, "bytes": 81920}
                },
                "vector_index": {
                    "status": "healthy",
                    "response_time_ms": 0.1,
                    "details": {"vectors": 420, "dimensions": 384, "loaded": true, "problems": []}
                },
                "embedding_model": {
                    "status": "degraded",
                    "response_time_ms": 0.0,
                    "details": {"error": "not loaded"}
                },
                "integrity": {
                    "status": "unhealthy",
                    "response_time_ms": 12.5,
                    "details": {"ok": false, "checked_at": "2026-01-02T03:04:05Z", "duration_ms": 12.5, "problems": ["page 7 corrupt", "orphan chunk 12"]}
                }
            }
        })
    }

    #[test]
    fn engine_errors_are_read_from_the_engines_error_body() {
        let what = "POST /admin/restores";
        let busy = json!({"error": {"code": "operation_in_progress", "message": "backup b1 runs"}});
        assert!(matches!(
            engine_error(what, reqwest::StatusCode::CONFLICT, &busy),
            Error::OperationInProgress(m) if m == "backup b1 runs"
        ));
        let creds = json!({"error": {"code": "credentials_not_found",
            "message": "credentials s3-creds not found: /etc/instant-db-credentials/s3-creds.AWS_ACCESS_KEY_ID"}});
        assert!(matches!(
            engine_error(what, reqwest::StatusCode::SERVICE_UNAVAILABLE, &creds),
            Error::CredentialsNotReady(_)
        ));
        let other = json!({"error": {"code": "invalid_input", "message": "bucket missing"}});
        // (restore answers turn such a 4xx into RestoreRefused: see restore_answer)
        let e = engine_error(what, reqwest::StatusCode::BAD_REQUEST, &other).to_string();
        assert!(e.contains("HTTP 400 Bad Request: bucket missing"), "{e}");
    }

    #[test]
    fn a_restore_job_decodes_every_phase_and_tolerates_new_ones() {
        for (text, phase) in [
            ("pending", RestorePhase::Pending),
            ("fetching", RestorePhase::Fetching),
            ("verifying", RestorePhase::Verifying),
            ("swapping", RestorePhase::Swapping),
            ("checking", RestorePhase::Checking),
            ("completed", RestorePhase::Completed),
            ("rolled_back", RestorePhase::RolledBack),
            ("failed", RestorePhase::Failed),
            ("warming_up", RestorePhase::Unknown),
        ] {
            let job = RestoreJob::deserialize(&json!({
                "id": "r1", "source": "s3://b/p/x.tar.gz?credentials=c", "phase": text,
                "started_at": "2026-12-01T10:00:00Z", "finished_at": null, "error": null,
                "document_count": 3, "chunk_count": 9, "backup_id": "x"
            }))
            .unwrap();
            assert_eq!(job.phase, phase, "{text}");
            assert_eq!(job.document_count, Some(3));
        }
        assert!(RestorePhase::RolledBack.is_finished() && !RestorePhase::Checking.is_finished());
    }

    #[test]
    fn parses_the_engines_report() {
        let h = parse_detailed_health(&engine_report()).unwrap();
        assert_eq!(h.status, HealthStatus::Unhealthy);
        assert_eq!(h.document_count, Some(42));
        assert_eq!(h.version.as_deref(), Some("0.4.0"));
        assert_eq!(h.components.len(), 4);
        assert_eq!(h.components["database"], HealthStatus::Healthy);
        assert_eq!(
            h.unhealthy_components(),
            vec![
                "embedding_model=degraded".to_string(),
                "integrity=unhealthy".to_string()
            ]
        );
        let i = h.last_integrity_check.unwrap();
        assert_eq!(i.ok, Some(false));
        assert_eq!(i.at.unwrap().to_string(), "2026-01-02T03:04:05Z");
        assert_eq!(
            i.message.as_deref(),
            Some("page 7 corrupt; orphan chunk 12")
        );
    }

    #[test]
    fn a_passed_or_absent_integrity_check_has_no_message() {
        let mut body = engine_report();
        body["last_integrity_check"]["ok"] = json!(true);
        body["last_integrity_check"]["problems"] = json!([]);
        let i = parse_detailed_health(&body)
            .unwrap()
            .last_integrity_check
            .unwrap();
        assert_eq!((i.ok, i.message), (Some(true), None));
        body["last_integrity_check"] = Value::Null;
        assert_eq!(
            parse_detailed_health(&body).unwrap().last_integrity_check,
            None
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut body = engine_report();
        body["replication"] = json!({"lag_seconds": 3});
        body["components"]["database"]["wal_bytes"] = json!(1024);
        body["last_integrity_check"]["pages_checked"] = json!(900);
        let h = parse_detailed_health(&body).unwrap();
        assert_eq!(h, parse_detailed_health(&engine_report()).unwrap());
    }

    #[test]
    fn an_unknown_or_missing_status_is_unknown() {
        let mut body = engine_report();
        body["status"] = json!("maintenance");
        body["components"]["database"]["status"] = json!("rebuilding");
        body["components"]["vector_index"]
            .as_object_mut()
            .unwrap()
            .remove("status");
        let h = parse_detailed_health(&body).unwrap();
        assert_eq!(h.status, HealthStatus::Unknown);
        assert_eq!(h.components["database"], HealthStatus::Unknown);
        assert_eq!(h.components["vector_index"], HealthStatus::Unknown);
        body.as_object_mut().unwrap().remove("status");
        assert_eq!(
            parse_detailed_health(&body).unwrap().status,
            HealthStatus::Unknown
        );
    }

    #[test]
    fn a_body_of_another_shape_is_an_error_naming_the_problem() {
        let err = |body: Value| parse_detailed_health(&body).unwrap_err().to_string();
        assert!(
            err(json!({"foo": 1})).contains("missing field"),
            "{}",
            err(json!({"foo": 1}))
        );
        assert!(err(json!("healthy")).contains("not the engine's health report"));
        assert!(err(json!(null)).contains("not the engine's health report"));
        let mut body = engine_report();
        body["components"] = json!([{"name": "database", "status": "healthy"}]);
        assert!(err(body).contains("invalid type"));
        let mut body = engine_report();
        body["components"]["database"] = json!("healthy");
        assert!(err(body).contains("invalid type"));
        let mut body = engine_report();
        body["status"] = json!(true);
        assert!(err(body).contains("invalid type"));
        let mut body = engine_report();
        body["last_integrity_check"]
            .as_object_mut()
            .unwrap()
            .remove("ok");
        assert!(err(body).contains("missing field `ok`"));
        let mut body = engine_report();
        body["last_integrity_check"]["checked_at"] = json!("yesterday");
        assert!(err(body).contains("last_integrity_check.checked_at"));
    }
}
