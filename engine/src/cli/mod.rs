//! Command line: argument parsing and dispatch. Every command works on a data directory with no
//! server running, and the data commands also work against a running server with `--server URL`.

mod export;
mod output;
mod progress;
mod remote;
mod sync;
mod watch;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::engine::{Engine, ModelLoading};
use crate::error::{Error, Result};
use crate::ingest::IngestOptions;
use crate::search::{Mode, SearchRequest};

pub use output::Format;

pub fn progress_bar(what: &'static str) -> progress::Bar {
    progress::Bar::new(what)
}

#[derive(Debug, Parser)]
#[command(name = "instant-db", version, about = "Document search database: ingest, embed, search", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Data directory (SQLite database, vector index, uploads).
    #[arg(long, global = true, env = "INSTANT_DB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// YAML configuration file.
    #[arg(long, global = true, env = "INSTANT_DB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format of results.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub format: Format,
    /// Log format; default json when stderr is not a terminal.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Log level or tracing filter (e.g. `info`, `instant_db=debug`).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Directory of named S3 credentials (`credentials=NAME` in a backup URL reads
    /// `NAME.AWS_ACCESS_KEY_ID` and `NAME.AWS_SECRET_ACCESS_KEY` there).
    #[arg(long, global = true, env = "INSTANT_DB_CREDENTIALS_DIR")]
    pub credentials_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the ONNX Runtime library and the embedding model (from PyPI) and check them.
    Setup(SetupArgs),
    /// Run the HTTP server (API, health, metrics).
    Serve(ServeArgs),
    /// Ingest files and directories.
    Ingest(IngestArgs),
    /// Bring the documents of directories in step with their files: add new files, replace
    /// changed ones, skip unchanged ones; --delete-missing removes those whose files are gone.
    Sync(sync::SyncArgs),
    /// Search the database.
    Search(SearchArgs),
    /// Write the stored documents out as files (Markdown, JSON or text) with an index.
    Export(export::ExportArgs),
    /// Document, chunk and index counts.
    Stats(RemoteArgs),
    /// Print the effective configuration.
    Config,
    /// Check the database and derived indexes; exits 1 when a problem is found.
    Check(AdminRemoteArgs),
    /// Rebuild derived data (full-text index, vector index, missing embeddings) from the source tables.
    Repair(RepairArgs),
    /// Back up the database and index (online; writes may continue) to a directory or S3.
    Backup(BackupArgs),
    /// Restore from a backup archive; verifies every checksum before replacing anything.
    Restore(RestoreArgs),
    /// Verify a stored backup without touching the live data: every checksum, the unpacked
    /// database's integrity check, a keyword and a vector search; exits 1 when it fails.
    Verify(RestoreArgs),
    /// Ingest the bundled demo corpus and answer questions about it, end to end over HTTP.
    Demo(DemoArgs),
    /// Measure ingest, embedding and search performance and print the numbers.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// `/dir`, `file:///dir` or `s3://bucket/prefix?endpoint=URL&region=R[&credentials=NAME]`
    /// (credentials from the files NAME.AWS_* of --credentials-dir, else from AWS_* variables).
    #[arg(long)]
    pub to: String,
    /// Backup id; default: a timestamped id.
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub remote: AdminRemoteArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// URL of a backup archive, as printed by `backup` (`…/<id>.tar.gz`).
    #[arg(long)]
    pub from: String,
    /// Restore only into a data directory that holds no database yet (the first start of a
    /// new instance); an existing database is kept and the command exits 0 saying so. Safe to
    /// run at every start: a bootstrap cut short is restored again at the next. Local only.
    #[arg(long, conflicts_with = "server")]
    pub bootstrap: bool,
    /// With --bootstrap: also write the report (one JSON line) to this file once it succeeded,
    /// e.g. `/dev/termination-log`, where Kubernetes takes an init container's message from.
    #[arg(long, requires = "bootstrap")]
    pub report_file: Option<PathBuf>,
    /// Point-in-time restore: `latest` or an RFC 3339 time (2026-12-02T05:00:00Z). --from is
    /// then the destination folder (the backups and their `archive/`, as archive.destination):
    /// the newest base snapshot before the time plus the archived changes up to it.
    #[arg(long, value_name = "RFC3339|latest")]
    pub to_time: Option<String>,
    #[command(flatten)]
    pub remote: AdminRemoteArgs,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    #[command(flatten)]
    pub remote: AdminRemoteArgs,
    /// Also embed every stored chunk again (after `embedding.text` or the model changed; `check`
    /// says when). Takes as long as embedding the corpus did; search keeps working meanwhile.
    /// Local data directories only.
    #[arg(long)]
    pub reembed: bool,
}

/// `--server` for the admin commands, which also need the server's admin token.
#[derive(Debug, Args)]
pub struct AdminRemoteArgs {
    /// Talk to a running server instead of opening the data directory.
    #[arg(long, env = "INSTANT_DB_SERVER")]
    pub server: Option<String>,
    /// File with the server's admin token (else the INSTANT_DB_ADMIN_TOKEN variable).
    #[arg(long, env = "INSTANT_DB_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// PEM CA certificate(s) to trust for an `https://` server, besides the public roots.
    #[arg(long, env = "INSTANT_DB_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

impl AdminRemoteArgs {
    fn server(&self) -> Result<Option<remote::Admin<'_>>> {
        self.server
            .as_deref()
            .map(|base| {
                Ok(remote::Admin {
                    base,
                    token_file: self.admin_token_file.as_deref(),
                    client: remote::client(self.ca_file.as_deref())?,
                })
            })
            .transpose()
    }
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Also build the int8 model (`all-MiniLM-L6-v2-int8`: int8 weights quantized from the
    /// default model, about 1.8x faster, vectors within about 0.01 in cosine); select it with
    /// `embedding.model`. Built anyway when `embedding.model` names it.
    #[arg(long)]
    pub int8: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address.
    #[arg(long, env = "INSTANT_DB_LISTEN")]
    pub listen: Option<String>,
    /// File with the bearer token for /admin/* (the `admin` role).
    #[arg(long, env = "INSTANT_DB_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Directory with the API key files `read` and/or `write` (one key per line).
    #[arg(long, env = "INSTANT_DB_API_KEYS_DIR")]
    pub api_keys_dir: Option<PathBuf>,
    /// Serve /api/* without keys on a non-loopback address (refused otherwise).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key; reloaded when it changes).
    #[arg(long, env = "INSTANT_DB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "INSTANT_DB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Talk to a running server instead of opening the data directory.
    #[arg(long, env = "INSTANT_DB_SERVER")]
    pub server: Option<String>,
    /// File with the API key sent to the server (else the INSTANT_DB_API_KEY variable).
    #[arg(long, env = "INSTANT_DB_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// PEM CA certificate(s) to trust for an `https://` server, besides the public roots.
    #[arg(long, env = "INSTANT_DB_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

impl RemoteArgs {
    fn server(&self) -> Result<Option<remote::Api<'_>>> {
        self.server
            .as_deref()
            .map(|base| {
                remote::Api::new(
                    base,
                    self.api_key_file.as_deref(),
                    remote::client(self.ca_file.as_deref())?,
                )
            })
            .transpose()
    }
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Only the top level of each directory.
    #[arg(long)]
    pub no_recursive: bool,
    /// Glob of paths to skip (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// JSON object of user metadata attached to every document.
    #[arg(long)]
    pub metadata: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    pub query: String,
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Filter, short syntax `field<op>value` (repeatable; all must hold) or JSON.
    #[arg(long)]
    pub filter: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory with the demo corpus (default: the repository's demo-corpus/).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Extra question to ask (repeatable); default: a set of questions about the corpus.
    #[arg(long)]
    pub question: Vec<String>,
}

impl GlobalArgs {
    /// Flags that override configuration keys.
    fn overrides(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if let Some(d) = &self.data_dir {
            m.insert("data_dir".into(), d.display().to_string());
        }
        if let Some(f) = self.log_format {
            m.insert("logging.format".into(), format!("{f:?}").to_lowercase());
        }
        if let Some(l) = &self.log_level {
            m.insert("logging.level".into(), l.clone());
        }
        if let Some(d) = &self.credentials_dir {
            m.insert("backup.credentials_dir".into(), d.display().to_string());
        }
        m
    }
}

pub fn load_config(cli: &Cli) -> Result<Config> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    load_config_with_env(cli, &env)
}

/// [`load_config`] with `env` standing for the process environment, so a test can start the
/// engine exactly as a container's command line and environment would, in its own process.
pub fn load_config_with_env(cli: &Cli, env: &BTreeMap<String, String>) -> Result<Config> {
    let mut flags = cli.global.overrides();
    if let Command::Serve(s) = &cli.command {
        if let Some(l) = &s.listen {
            flags.insert("listen".into(), l.clone());
        }
        if let Some(t) = &s.admin_token_file {
            flags.insert("admin_token_file".into(), t.display().to_string());
        }
        if let Some(d) = &s.api_keys_dir {
            flags.insert("auth.keys_dir".into(), d.display().to_string());
        }
        if s.insecure_no_auth {
            flags.insert("auth.insecure_no_auth".into(), "true".into());
        }
        if let Some(c) = &s.tls_cert {
            flags.insert("tls.cert_file".into(), c.display().to_string());
        }
        if let Some(k) = &s.tls_key {
            flags.insert("tls.key_file".into(), k.display().to_string());
        }
    }
    // clap reads INSTANT_DB_CONFIG from the real environment; `env` may hold it instead
    let file = cli
        .global
        .config
        .clone()
        .or_else(|| env.get("INSTANT_DB_CONFIG").map(PathBuf::from));
    Config::load_from(file.as_deref(), env, &flags)
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli, config: Config) -> Result<i32> {
    let fmt = cli.global.format;
    let data_dir_given = cli.global.data_dir.is_some();
    match cli.command {
        Command::Setup(args) => setup(&config, &args, fmt),
        Command::Serve(_) => {
            let rt = runtime()?;
            let served = rt.block_on(crate::server::serve(config));
            // Past the grace period the server has stopped its requests' work and closed
            // writes, but a blocking thread may still be inside one embedding batch or one
            // document's parse: nothing it does can be stored any more, so the process ends
            // without waiting for it (dropping the runtime would).
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            served?;
            Ok(0)
        }
        Command::Ingest(args) => {
            let metadata = parse_metadata(args.metadata.as_deref())?;
            let opts = IngestOptions {
                recursive: Some(!args.no_recursive),
                exclude: args.exclude,
                metadata,
            };
            let report = match args.remote.server()? {
                Some(api) => api.ingest(&args.paths, &opts)?,
                None => {
                    let engine = Engine::open(config, ModelLoading::BestEffort)?;
                    let bar = progress::Bar::new("ingest");
                    crate::ingest::ingest_paths(&engine, &args.paths, &opts, &bar)?
                }
            };
            output::ingest_report(fmt, &report);
            Ok(if report.failed > 0 { 1 } else { 0 })
        }
        Command::Sync(args) => sync::run(args, config, fmt),
        Command::Export(args) => export::run(args, config, fmt),
        Command::Search(args) => {
            let req = search_request(&args)?;
            let resp = match args.remote.server()? {
                Some(api) => api.search(&req)?,
                None => {
                    let loading = if req.mode == Mode::Keyword {
                        ModelLoading::Skip
                    } else {
                        ModelLoading::Required
                    };
                    Engine::open(config, loading)?.search(&req)?
                }
            };
            output::search_response(fmt, &resp);
            Ok(0)
        }
        Command::Stats(r) => {
            let stats = match r.server()? {
                Some(api) => api.get_json("/api/stats")?,
                None => serde_json::to_value(Engine::open(config, ModelLoading::Skip)?.stats()?)
                    .map_err(|e| Error::Internal(e.to_string()))?,
            };
            output::json_or_text(fmt, &stats);
            Ok(0)
        }
        Command::Config => {
            output::json_or_text(
                fmt,
                &serde_json::to_value(&config).map_err(|e| Error::Internal(e.to_string()))?,
            );
            Ok(0)
        }
        Command::Check(r) => {
            let report = match r.server()? {
                Some(admin) => {
                    serde_json::from_value(admin.post("/admin/integrity", &serde_json::json!({}))?)
                        .map_err(|e| Error::Internal(format!("unexpected reply: {e}")))?
                }
                None => crate::maintenance::check(&Engine::open(config, ModelLoading::Skip)?)?,
            };
            output::integrity(fmt, &report);
            Ok(if report.ok { 0 } else { 1 })
        }
        Command::Repair(r) => {
            let report = match r.remote.server()? {
                Some(_) if r.reembed => {
                    return Err(Error::InvalidInput(
                        "`repair --reembed` runs on a data directory, not over HTTP: stop the \
                         server (or run it in the pod) and give --data-dir"
                            .into(),
                    ));
                }
                Some(admin) => admin.post("/admin/repair", &serde_json::json!({}))?,
                None => {
                    let engine = Engine::open(
                        config,
                        if r.reembed {
                            ModelLoading::Required
                        } else {
                            ModelLoading::BestEffort
                        },
                    )?;
                    let reembedded = if r.reembed {
                        Some(engine.reembed_all()?)
                    } else {
                        None
                    };
                    let mut v = serde_json::to_value(crate::maintenance::repair(&engine)?)
                        .map_err(|e| Error::Internal(e.to_string()))?;
                    if let Some(n) = reembedded {
                        v["reembedded_chunks"] = n.into();
                    }
                    v
                }
            };
            output::json_or_text(fmt, &report);
            // Derived data rebuilt but source damage left (and reported): not a success.
            Ok(if report["integrity_ok"] == true { 0 } else { 1 })
        }
        Command::Backup(args) => {
            let bar = progress::ByteBar::new("backup");
            let summary = match args.remote.server()? {
                Some(admin) => admin.backup(&args.to, args.id.as_deref(), &bar.sink())?,
                None => {
                    let engine = std::sync::Arc::new(Engine::open(config, ModelLoading::Skip)?);
                    let report = runtime()?.block_on(crate::maintenance::backup(
                        engine,
                        &args.to,
                        args.id,
                        bar.sink(),
                    ))?;
                    serde_json::json!({
                        "id": report.id, "location": report.location, "size_bytes": report.size_bytes, "sha256": report.sha256,
                        "documents": report.manifest.document_count, "chunks": report.manifest.chunk_count,
                        "seconds": report.duration.as_secs_f64(),
                    })
                }
            };
            bar.finish();
            output::json_or_text(fmt, &summary);
            Ok(0)
        }
        Command::Restore(args) if args.bootstrap => {
            let bar = progress::ByteBar::new("restore");
            let target = args
                .to_time
                .as_deref()
                .map(crate::archive::TargetTime::parse)
                .transpose()?;
            let report = runtime()?.block_on(crate::bootstrap::bootstrap(
                config,
                &args.from,
                target,
                bar.sink(),
            ));
            bar.finish();
            let report =
                serde_json::to_value(report?).map_err(|e| Error::Internal(e.to_string()))?;
            if let Some(file) = &args.report_file {
                std::fs::write(file, format!("{report}\n"))
                    .map_err(|e| Error::io(format!("cannot write {}", file.display()), e))?;
            }
            output::json_or_text(fmt, &report);
            Ok(0)
        }
        Command::Restore(args) => {
            let target = args
                .to_time
                .as_deref()
                .map(crate::archive::TargetTime::parse)
                .transpose()?;
            let report = match args.remote.server()? {
                Some(admin) => {
                    let bar = progress::ByteBar::new("restore");
                    let job = admin.restore(&args.from, target, &bar.sink());
                    bar.finish();
                    job?
                }
                None => {
                    // Opens even a damaged database (closed, never read): the restore sets its
                    // files aside in previous-* and swaps the backup in.
                    let engine = std::sync::Arc::new(Engine::open(config, ModelLoading::Skip)?);
                    let bar = progress::ByteBar::new("restore");
                    let report = match target {
                        None => runtime()?
                            .block_on(crate::maintenance::restore(engine, &args.from, bar.sink()))
                            .and_then(|r| {
                                serde_json::to_value(&r).map_err(|e| Error::Internal(e.to_string()))
                            }),
                        Some(t) => runtime()?
                            .block_on(crate::archive::restore_to_time(
                                engine,
                                &args.from,
                                t,
                                bar.sink(),
                                std::sync::Arc::new(|_| {}),
                            ))
                            .and_then(|r| {
                                serde_json::to_value(&r).map_err(|e| Error::Internal(e.to_string()))
                            }),
                    };
                    bar.finish();
                    report?
                }
            };
            output::json_or_text(fmt, &report);
            Ok(0)
        }
        Command::Verify(args) => {
            if args.to_time.is_some() {
                return Err(Error::InvalidInput(
                    "verify checks one backup archive: --to-time is for restore only; drop it"
                        .into(),
                ));
            }
            let bar = progress::ByteBar::new("verify");
            let record = match args.remote.server()? {
                Some(admin) => admin.verify(&args.from, &bar.sink()),
                None => {
                    // the model, when it loads, adds the vector search to the checks
                    let engine =
                        std::sync::Arc::new(Engine::open(config, ModelLoading::BestEffort)?);
                    let record =
                        crate::verify::Verification::pending(crate::verify::new_id(), &args.from);
                    let sink = bar.sink();
                    let report: crate::verify::VerificationSink =
                        std::sync::Arc::new(move |v: &crate::verify::Verification| {
                            if let Some(p) = v.progress {
                                sink(p);
                            }
                        });
                    let v = runtime()?
                        .block_on(crate::verify::verify(engine, record, &args.from, report));
                    serde_json::to_value(&v).map_err(|e| Error::Internal(e.to_string()))
                }
            };
            bar.finish();
            let record = record?;
            output::json_or_text(fmt, &record);
            Ok(if record["phase"] == "passed" { 0 } else { 1 })
        }
        Command::Bench(mut args) => {
            args.data_dir_given = data_dir_given;
            crate::bench::run(config, args, fmt)
        }
        Command::Demo(args) => crate::demo::run(config, args.corpus, args.question, fmt),
    }
}

/// `--metadata`: a JSON object, or nothing.
fn parse_metadata(raw: Option<&str>) -> Result<Option<serde_json::Value>> {
    raw.map(|m| {
        serde_json::from_str::<serde_json::Value>(m)
            .ok()
            .filter(|v| v.is_object())
            .ok_or_else(|| Error::InvalidInput("--metadata must be a JSON object".into()))
    })
    .transpose()
}

/// `--filter` values: one JSON filter, or short-syntax conditions that must all hold.
fn parse_filter(raw: &[String]) -> Result<Option<crate::filter::FilterInput>> {
    Ok(match raw {
        [] => None,
        [one] if one.trim_start().starts_with(['{', '[']) => Some(
            serde_json::from_str(one)
                .map_err(|e| Error::InvalidInput(format!("--filter is not valid JSON: {e}")))?,
        ),
        many => Some(crate::filter::FilterInput::List(
            many.iter()
                .map(|s| crate::filter::FilterItem::Short(s.clone()))
                .collect(),
        )),
    })
}

fn search_request(args: &SearchArgs) -> Result<SearchRequest> {
    let filter = parse_filter(&args.filter)?;
    Ok(SearchRequest {
        query: args.query.clone(),
        mode: args.mode.parse()?,
        top_k: args.top_k,
        offset: args.offset,
        score_threshold: args.threshold,
        filter,
    })
}

fn setup(config: &Config, args: &SetupArgs, fmt: Format) -> Result<i32> {
    let paths = crate::assets::AssetPaths::resolve(&config.embedding);
    let int8 = args.int8 || config.embedding.model == crate::assets::INT8_MODEL;
    crate::assets::run_setup(&paths.home, int8)?;
    let embedder = crate::embed::Embedder::load(&config.embedding, &paths)?;
    let worst = crate::assets::self_check(&embedder)?;
    let summary = serde_json::json!({
        "home": paths.home,
        "onnxruntime": paths.onnxruntime,
        "model_dir": paths.model_dir,
        "model": embedder.model_name(),
        "dimensions": embedder.dimensions(),
        "self_check_min_cosine": worst,
    });
    output::json_or_text(fmt, &summary);
    Ok(0)
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
