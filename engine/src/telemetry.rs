//! Logs and traces.
//!
//! [`init`] installs the global `tracing` subscriber:
//! - logs to **stderr**, as JSON lines ([`LogFormat::Json`]) or a human format
//!   ([`LogFormat::Text`]); the default is JSON when stderr is not a terminal;
//!   span closings are logged with their timing (`time.busy`, `time.idle`);
//! - optionally also to a file rotated **daily** (`<file>.YYYY-MM-DD`) or **by size**
//!   ([`LogRotation::Size`]: `<file>` is written, `<file>.1` is the newest rotated one; the
//!   `file-rotate` crate, cutting at line ends so JSON lines stay whole), the last `keep_files`
//!   (default [`KEEP_LOG_FILES`]) rotated ones kept, written by a non-blocking worker;
//! - optionally **OTLP traces** over HTTP/protobuf (`opentelemetry-otlp`) with
//!   `service.name` from [`TelemetryConfig::service_name`], else the
//!   `OTEL_SERVICE_NAME` environment variable, else `instant-db`; only when
//!   `otlp_endpoint` is set (nothing is created otherwise). The endpoint is the collector's base URL
//!   (`http://collector:4318`); `/v1/traces` is appended unless present.
//!
//! `level` takes `tracing` filter directives: a level (`trace`, `debug`,
//! `info`, `warn`, `error`, `off`) optionally followed by per-target
//! overrides (`info,instant_db::backup=debug`).
//!
//! Keep the returned [`TelemetryGuard`] alive for the life of the process:
//! dropping it flushes the log file and shuts the tracer provider down
//! (exporting the spans still buffered).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::str::FromStr;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::{Deserialize, Serialize};
use tracing::Subscriber;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Service name reported in traces when neither the configuration nor `OTEL_SERVICE_NAME` names one.
pub const SERVICE_NAME: &str = "instant-db";
/// Rotated log files kept.
pub const KEEP_LOG_FILES: usize = 14;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable (colours when stderr is a terminal).
    Text,
}

impl LogFormat {
    /// JSON when stderr is not a terminal, text otherwise.
    pub fn auto() -> Self {
        if std::io::stderr().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

impl Default for LogFormat {
    fn default() -> Self {
        Self::auto()
    }
}

impl FromStr for LogFormat {
    type Err = TelemetryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(TelemetryError::InvalidFormat(s.to_string())),
        }
    }
}

/// When the log file is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogRotation {
    /// A new file each day: `<file>.YYYY-MM-DD`.
    #[default]
    Daily,
    /// A new file once the current one passes this many bytes: `<file>`, `<file>.1`, ...
    Size(u64),
}

/// Telemetry configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// Filter directives (default `info`).
    pub level: String,
    /// Log format (default: see [`LogFormat::auto`]).
    pub format: LogFormat,
    /// Also write logs to this file, rotated as `rotation` says.
    pub file: Option<PathBuf>,
    pub rotation: LogRotation,
    /// Rotated files kept (besides the one being written).
    pub keep_files: usize,
    /// OTLP/HTTP collector endpoint; `None` → no tracing export at all.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported traces; `None` → `OTEL_SERVICE_NAME`, else [`SERVICE_NAME`].
    pub service_name: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            format: LogFormat::auto(),
            file: None,
            rotation: LogRotation::Daily,
            keep_files: KEEP_LOG_FILES,
            otlp_endpoint: None,
            service_name: None,
        }
    }
}

/// The service name traces carry: the configured one, else `OTEL_SERVICE_NAME` (the
/// OpenTelemetry convention, which deployments set for every service alike), else
/// [`SERVICE_NAME`]. Blank values count as unset.
pub fn resolve_service_name(configured: Option<&str>, env: Option<&str>) -> String {
    [configured, env]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|n| !n.is_empty())
        .unwrap_or(SERVICE_NAME)
        .to_string()
}

/// Errors of [`init`].
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The level / filter string is not valid.
    #[error(
        "invalid log level {value:?}: {reason} (use trace, debug, info, warn, error or off, \
         optionally with per-target overrides like info,instant_db=debug)"
    )]
    InvalidLevel {
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The log format is not `json` or `text`.
    #[error("invalid log format {0:?}: use json or text")]
    InvalidFormat(String),
    /// The log file cannot be opened.
    #[error("cannot write log file {path}: {reason}")]
    LogFile {
        /// The configured path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The OTLP exporter could not be built.
    #[error("invalid OTLP endpoint {endpoint:?}: {reason}")]
    Otlp {
        /// The configured endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// No global logger to change (the process did not install one with [`init`]).
    #[error("the log level cannot be changed: no global logger is installed")]
    NotReloadable,
    /// A global subscriber is already installed.
    #[error("logging is already initialised: {0}")]
    AlreadyInitialized(String),
}

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Validate and build the filter. Bare words must be level names (so a typo
/// like `infoo` is an error rather than a silent target filter).
pub fn parse_filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    let bad = |reason: String| TelemetryError::InvalidLevel {
        value: level.to_string(),
        reason,
    };
    if level.trim().is_empty() {
        return Err(bad("empty".into()));
    }
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let lvl = match directive.rsplit_once('=') {
            Some((_, l)) => l,
            None if directive.contains('[') => continue,
            None => directive,
        };
        if !LEVELS.contains(&lvl.to_ascii_lowercase().as_str()) {
            return Err(bad(format!("unknown level {lvl:?}")));
        }
    }
    EnvFilter::builder()
        .with_regex(false)
        .parse(level)
        .map_err(|e| bad(e.to_string()))
}

/// Keeps background workers alive; flushes and shuts down on drop.
#[must_use = "dropping the guard stops file logging and trace export"]
pub struct TelemetryGuard {
    file_guard: Option<tracing_appender::non_blocking::WorkerGuard>,
    provider: Option<SdkTracerProvider>,
    default_guard: Option<tracing::subscriber::DefaultGuard>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("file", &self.file_guard.is_some())
            .field("otlp", &self.provider.is_some())
            .finish()
    }
}

impl TelemetryGuard {
    /// Whether OTLP export is active.
    pub fn otlp_enabled(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.force_flush() {
                eprintln!("instant-db: flushing traces failed: {e}");
            }
            if let Err(e) = p.shutdown() {
                eprintln!("instant-db: shutting down the tracer provider failed: {e}");
            }
        }
        // the thread-local default (tests) goes before the file worker flushes
        self.default_guard.take();
        self.file_guard.take();
    }
}

/// The level filter, swappable while the process runs ([`crate::log_level`]).
pub(crate) type LevelHandle = tracing_subscriber::reload::Handle<EnvFilter, Registry>;
type Base = tracing_subscriber::layer::Layered<
    tracing_subscriber::reload::Layer<EnvFilter, Registry>,
    Registry,
>;
type BoxedLayer = Box<dyn Layer<Base> + Send + Sync>;

fn fmt_layer<W>(format: LogFormat, writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_span_events(FmtSpan::CLOSE)
        .with_target(true);
    match format {
        LogFormat::Json => Box::new(base.json().with_current_span(true).with_span_list(false)),
        LogFormat::Text => Box::new(base.with_ansi(ansi)),
    }
}

/// OTLP endpoint as the full traces URL.
pub fn traces_url(endpoint: &str) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    if e.ends_with("/v1/traces") {
        e.to_string()
    } else {
        format!("{e}/v1/traces")
    }
}

/// `level` with the dependencies that narrate routine work at INFO held to warnings, unless the
/// level names them.
pub fn with_quiet_dependencies(level: &str) -> String {
    let mut level = level.to_string();
    for quiet in ["ort", "object_store"] {
        if !level.contains(quiet) {
            level.push_str(&format!(",{quiet}=warn"));
        }
    }
    level
}

fn build(
    cfg: &TelemetryConfig,
) -> Result<
    (
        impl Subscriber + Send + Sync + 'static,
        TelemetryGuard,
        LevelHandle,
    ),
    TelemetryError,
> {
    let (filter, handle) = tracing_subscriber::reload::Layer::new(parse_filter(&cfg.level)?);
    let mut layers: Vec<BoxedLayer> = vec![fmt_layer(
        cfg.format,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    )];

    let mut file_guard = None;
    if let Some(path) = &cfg.file {
        let file_err = |reason: String| TelemetryError::LogFile {
            path: path.clone(),
            reason,
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| file_err("the path has no file name".into()))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| file_err(e.to_string()))?;
        let keep = cfg.keep_files.max(1);
        let (writer, guard) = match cfg.rotation {
            LogRotation::Daily => {
                let appender = tracing_appender::rolling::RollingFileAppender::builder()
                    .rotation(tracing_appender::rolling::Rotation::DAILY)
                    .filename_prefix(name)
                    .max_log_files(keep)
                    .build(&dir)
                    .map_err(|e| file_err(e.to_string()))?;
                tracing_appender::non_blocking(appender)
            }
            LogRotation::Size(bytes) => {
                // Opened here so that a path that cannot be written is a startup error, as
                // for the daily file, rather than log lines lost later.
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| file_err(e.to_string()))?;
                let appender = file_rotate::FileRotate::new(
                    path,
                    file_rotate::suffix::AppendCount::new(keep),
                    // Surpassed, not exact: a line is never cut in two across files.
                    file_rotate::ContentLimit::BytesSurpassed(
                        usize::try_from(bytes.max(1)).unwrap_or(usize::MAX),
                    ),
                    file_rotate::compression::Compression::None,
                    None,
                );
                tracing_appender::non_blocking(appender)
            }
        };
        layers.push(fmt_layer(cfg.format, writer, false));
        file_guard = Some(guard);
    }

    let mut provider = None;
    if let Some(endpoint) = cfg
        .otlp_endpoint
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        let otlp_err = |reason: String| TelemetryError::Otlp {
            endpoint: endpoint.to_string(),
            reason,
        };
        let url = traces_url(endpoint);
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(otlp_err("must start with http:// or https://".into()));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .build()
            .map_err(|e| otlp_err(e.to_string()))?;
        let service = resolve_service_name(
            cfg.service_name.as_deref(),
            std::env::var("OTEL_SERVICE_NAME").ok().as_deref(),
        );
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build();
        let p = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = p.tracer(SERVICE_NAME);
        layers.push(Box::new(tracing_opentelemetry::layer().with_tracer(tracer)));
        provider = Some(p);
    }

    let subscriber = tracing_subscriber::registry().with(filter).with(layers);
    Ok((
        subscriber,
        TelemetryGuard {
            file_guard,
            provider,
            default_guard: None,
        },
        handle,
    ))
}

/// Install the global subscriber described by `cfg`. Call once, early.
pub fn init(cfg: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let (subscriber, guard, handle) = build(cfg)?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| TelemetryError::AlreadyInitialized(e.to_string()))?;
    crate::log_level::install(handle);
    Ok(guard)
}

/// Like [`init`] but only for the current thread, until the guard is
/// dropped (for tests).
pub fn init_thread_local(cfg: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let (subscriber, mut guard, _) = build(cfg)?;
    guard.default_guard = Some(tracing::subscriber::set_default(subscriber));
    Ok(guard)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn invalid_levels_name_the_value() {
        for bad in ["verbose", "infoo", "", "info,instant_db=loud"] {
            let e = parse_filter(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        for ok in ["info", "DEBUG", "warn,instant_db::backup=debug", "off"] {
            parse_filter(ok).unwrap();
        }
        assert!("yaml".parse::<LogFormat>().is_err());
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        let e = init(&TelemetryConfig {
            level: "chatty".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("\"chatty\""));
    }

    #[test]
    fn service_name_comes_from_config_then_otel_service_name_then_the_default() {
        assert_eq!(resolve_service_name(Some("cfg"), Some("env")), "cfg");
        assert_eq!(resolve_service_name(None, Some("env")), "env");
        assert_eq!(resolve_service_name(Some("  "), Some("env")), "env");
        assert_eq!(resolve_service_name(None, Some("")), SERVICE_NAME);
        assert_eq!(resolve_service_name(None, None), "instant-db");
    }

    #[test]
    fn traces_url_appends_the_signal_path() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn json_logs_go_to_a_rotating_file_and_spans_have_timing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TelemetryConfig {
            level: "info".into(),
            format: LogFormat::Json,
            file: Some(dir.path().join("logs/engine.log")),
            ..Default::default()
        };
        let guard = init_thread_local(&cfg).unwrap();
        assert!(!guard.otlp_enabled());
        {
            let span = tracing::info_span!("ingest", doc = "a.txt");
            let _e = span.enter();
            tracing::info!(chunks = 3, "document ingested");
            tracing::debug!("filtered out");
        }
        drop(guard);
        let entries: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
            .unwrap()
            .collect();
        assert_eq!(entries.len(), 1);
        let path = entries[0].as_ref().unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("engine.log."), "{name}");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l["fields"]["message"] == "document ingested"
                    && l["span"]["name"] == "ingest"),
            "{text}"
        );
        assert!(
            lines.iter().any(|l| l["fields"]["time.busy"].is_string()),
            "{text}"
        );
        assert!(!text.contains("filtered out"));
    }

    #[test]
    fn size_rotation_keeps_the_configured_count_and_never_cuts_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TelemetryConfig {
            level: "info".into(),
            format: LogFormat::Json,
            file: Some(dir.path().join("logs/engine.log")),
            rotation: LogRotation::Size(2000),
            keep_files: 2,
            ..Default::default()
        };
        let guard = init_thread_local(&cfg).unwrap();
        for i in 0..200 {
            tracing::info!(
                line = i,
                padding = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "a log line"
            );
        }
        drop(guard);
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("logs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["engine.log", "engine.log.1", "engine.log.2"]);
        let mut last_seen = vec![];
        for name in &names {
            let text = std::fs::read_to_string(dir.path().join("logs").join(name)).unwrap();
            let longest = text.lines().map(str::len).max().unwrap();
            // cut after the line that passed the limit, never inside one
            assert!(
                text.len() <= 2000 + longest + 1,
                "{name}: {} bytes",
                text.len()
            );
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
                last_seen.push(v["fields"]["line"].as_i64().unwrap());
            }
        }
        // The current file holds the newest lines; the oldest files were deleted.
        assert!(last_seen.contains(&199), "the last line is kept");
        assert!(
            !last_seen.contains(&0),
            "older files beyond the kept count are gone"
        );
    }

    #[test]
    fn otlp_spans_are_exported_over_http() {
        // a tiny collector that records what it receives
        // (path, body) of every request the collector received
        type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
        let received: Received = Arc::default();
        let rec = received.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/v1/traces",
                    axum::routing::post(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                        let rec = rec.clone();
                        async move {
                            rec.lock()
                                .unwrap()
                                .push((uri.path().to_string(), body.to_vec()));
                            ""
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    axum::serve(listener, app),
                )
                .await;
            });
        });
        let addr = rx.recv().unwrap();
        let cfg = TelemetryConfig {
            level: "info".into(),
            format: LogFormat::Text,
            file: None,
            otlp_endpoint: Some(format!("http://{addr}")),
            service_name: Some("search-east-7".into()),
            ..Default::default()
        };
        let guard = init_thread_local(&cfg).unwrap();
        assert!(guard.otlp_enabled());
        {
            let span = tracing::info_span!("search", mode = "hybrid");
            let _e = span.enter();
            tracing::info!("searching");
        }
        drop(guard); // flushes
        let got = received.lock().unwrap().clone();
        assert!(!got.is_empty(), "no OTLP request received");
        assert_eq!(got[0].0, "/v1/traces");
        assert!(
            got[0].1.windows(13).any(|w| w == b"search-east-7"),
            "the configured service name is not in the exported resource"
        );
        drop(server);
    }
}
