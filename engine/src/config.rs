//! Engine configuration: a YAML file, then `INSTANT_DB_*` environment variables, then command-line
//! flags, each overriding the one before. All three are merged as one JSON tree and deserialised
//! once, so a wrong value is reported with the dotted key it belongs to, wherever it came from.
//!
//! Every key can be set from the environment as `INSTANT_DB_<SECTION>__<KEY>` (upper case, `__`
//! between levels: `INSTANT_DB_SEARCH__MAX_TOP_K`, `INSTANT_DB_HEALTH__THRESHOLDS__CPU_PERCENT_WARN`),
//! the value read as a YAML scalar (lists also as `a,b`). The short names of [`ENV_KEYS`] stay;
//! when both spell the same key, the `__` form wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields, rename_all = "snake_case")]
pub struct Config {
    /// Directory holding the SQLite database, the vector index and uploads.
    #[schema(value_type = String)]
    pub data_dir: PathBuf,
    /// Address the server listens on (API, health and metrics share it).
    pub listen: String,
    /// File holding the bearer token that guards `/admin/*`.
    #[schema(value_type = Option<String>)]
    pub admin_token_file: Option<PathBuf>,
    pub auth: AuthConfig,
    pub tls: TlsConfig,
    pub backup: BackupConfig,
    /// Continuous archiving (`docs/archiving.md`).
    pub archive: crate::archive::ArchiveConfig,
    pub embedding: EmbeddingConfig,
    pub chunking: ChunkingConfig,
    pub ingest: IngestConfig,
    pub search: SearchConfig,
    pub index: IndexConfig,
    /// Where vectors live: `embedded` (the graph in `data_dir`) or `qdrant` (`docs/qdrant.md`).
    pub vector_store: crate::qdrant::VectorStoreKind,
    /// The Qdrant connection, used when `vector_store` is `qdrant`.
    pub qdrant: crate::qdrant::QdrantConfig,
    pub limits: LimitsConfig,
    pub logging: LoggingConfig,
    pub otel: OtelConfig,
    pub health: HealthConfig,
    pub shutdown: ShutdownConfig,
    /// Circuit breakers and retries per dependency (`docs/resilience.md`).
    pub resilience: crate::resilience::ResilienceConfig,
}

/// API keys (see `server::auth`). The admin token (`admin_token_file`) is the `admin` role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Directory with the files `read` and/or `write`, each holding that role's keys (one per
    /// line, at least 16 characters). Read at start.
    #[schema(value_type = Option<String>)]
    pub keys_dir: Option<PathBuf>,
    /// `/metrics` needs a key (any role) too; by default it is open like the probes.
    pub metrics_requires_key: bool,
    /// Serve without any key on a non-loopback address (anyone who can reach it can write).
    pub insecure_no_auth: bool,
}

/// HTTPS for the API: both files or neither (see `server::tls`). Changed files are picked up
/// by new connections without a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first (a `kubernetes.io/tls` Secret's `tls.crt`).
    #[schema(value_type = Option<String>)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (`tls.key`).
    #[schema(value_type = Option<String>)]
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// The two files when HTTPS is on; [`Config::validate`] has refused one without the other.
    pub fn files(&self) -> Option<crate::server::tls::TlsFiles> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some(crate::server::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Directory of named object-store credentials: a location URL with `credentials=NAME`
    /// uses the files `NAME.AWS_ACCESS_KEY_ID`, `NAME.AWS_SECRET_ACCESS_KEY` and optionally
    /// `NAME.AWS_SESSION_TOKEN` here.
    #[schema(value_type = String)]
    pub credentials_dir: PathBuf,
    /// Verify every backup after it completes (download it, check every checksum, unpack it
    /// into scratch space, integrity check and test queries); the result is in the backup job.
    pub verify: bool,
    /// Directories that directory locations (backup destinations, restore and verification
    /// sources) must lie under; empty means `backups/` beside the data directory (for a data
    /// directory `/data`, `/backups`: where the operator mounts volume destinations).
    #[schema(value_type = Vec<String>)]
    pub allowed_roots: Vec<PathBuf>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            credentials_dir: PathBuf::from(crate::backup::DEFAULT_CREDENTIALS_DIR),
            verify: true,
            allowed_roots: vec![],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// Model name, for reports; the files come from `model_dir`.
    pub model: String,
    /// Directory with `model.onnx` and `tokenizer.json`; default: the setup cache.
    #[schema(value_type = Option<String>)]
    pub model_dir: Option<PathBuf>,
    /// Path of `libonnxruntime.so`; default: the setup cache (or `ORT_DYLIB_PATH`).
    #[schema(value_type = Option<String>)]
    pub onnxruntime: Option<PathBuf>,
    /// Texts per inference call.
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads of the ingest session; 0 means one per CPU core.
    pub threads: usize,
    /// Intra-op threads of the query session; 0 means one per CPU core. A hybrid search embeds
    /// its query there while its keyword half runs on the cores left over; a vector search
    /// embeds on the ingest session's threads when no ingest holds them.
    pub query_threads: usize,
    /// Tokens per text the model sees (sentence-transformers uses 256 for MiniLM).
    pub max_sequence_length: usize,
    /// What the model embeds for a chunk: `contextual` (title and section path, then the
    /// text) or `bare` (the text alone). The stored text is the same either way.
    pub text: crate::chunk::context::EmbeddingText,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkingConfig {
    /// Largest chunk, in tokens of the model's tokenizer.
    pub max_tokens: usize,
    /// Tokens of the previous chunk repeated at the start of the next (whole sentences).
    pub overlap_tokens: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Files larger than this are skipped with a warning.
    pub max_file_bytes: u64,
    /// Glob patterns of paths never ingested (matched against the full path).
    pub exclude: Vec<String>,
    /// Follow symbolic links (loops are detected and reported).
    pub follow_symlinks: bool,
    /// Directories that `POST /api/process/directory` may read; empty means none.
    #[schema(value_type = Vec<String>)]
    pub allowed_roots: Vec<PathBuf>,
    /// Ingest requests that may run at once over HTTP; more get 429.
    pub max_concurrent: usize,
    /// Index the outputs of Jupyter notebook code cells too (off: outputs are often long logs
    /// or data dumps that crowd out the notebook's prose and code).
    pub notebook_outputs: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    pub default_top_k: usize,
    pub max_top_k: usize,
    /// Longest accepted query, in characters.
    pub max_query_chars: usize,
    /// Below this many vectors, vector search is exact (brute force) instead of HNSW.
    pub exact_search_below: usize,
    /// Reciprocal-rank-fusion constant for hybrid search.
    pub rrf_k: f32,
    /// Chunks per thread of a keyword query: a collection larger than this splits each keyword
    /// query over the cores (the results are the same), and a hybrid search on it embeds its
    /// query beside the keyword half instead of before it.
    pub keyword_chunks_per_thread: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// HNSW links per node.
    pub m: usize,
    /// Candidate list size while inserting; higher builds a better-connected graph, slower.
    pub ef_construction: usize,
    /// Candidate list size at query time; higher is slower and more exact.
    pub ef_search: usize,
    /// The saved graph is rewritten in full once its journal lists this many changed chunks
    /// (and at shutdown and before a backup); until then a write only appends to the journal,
    /// which the next start replays.
    pub persist_after_changes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest JSON request body.
    pub max_request_bytes: usize,
    /// Largest uploaded file.
    pub max_upload_bytes: usize,
    /// Time a request may take before it gets 503; its work (an ingest) stops with it.
    pub request_timeout_secs: u64,
    /// Searches answered at once; more get 429 with `Retry-After`. 0: twice the CPU count.
    pub max_concurrent_searches: usize,
    /// Longest request target (path and query); longer gets a JSON 414. Past 64 KiB the HTTP
    /// library refuses the request itself, before the engine sees it (also a JSON 414).
    pub max_uri_bytes: usize,
    /// Largest total of request header names and values; more gets a JSON 431. The HTTP
    /// library's header count and read buffer are set above it (server/accept.rs); past those it
    /// refuses the request itself (also a JSON 431).
    pub max_header_bytes: usize,
}

impl LimitsConfig {
    /// `max_concurrent_searches`, with 0 resolved to twice the CPU count: a search is short
    /// CPU work, so more at once than that only queues threads instead of answering sooner.
    pub fn effective_max_concurrent_searches(&self) -> usize {
        match self.max_concurrent_searches {
            0 => 2 * crate::sysres::cores(),
            n => n,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter directive.
    pub level: String,
    /// `json` or `text`; unset means json when stderr is not a terminal.
    pub format: Option<String>,
    /// Also write logs to this file, rotated daily (`<file>.YYYY-MM-DD`), or by size when
    /// `max_file_bytes` is set.
    #[schema(value_type = Option<String>)]
    pub file: Option<PathBuf>,
    /// Rotate the log file when it passes this many bytes (`<file>`, then `<file>.1` the
    /// newest rotated one...) instead of daily; 0 (default): daily.
    pub max_file_bytes: u64,
    /// Rotated log files kept beside the current one (default 14).
    pub max_files: usize,
    /// A file holding the level (as `level`), followed while the engine serves: a change of its
    /// content changes the level without a restart (the operator's ConfigMap key `log-level`).
    /// When the file holds a level, it wins over `level`.
    #[schema(value_type = Option<String>)]
    pub level_file: Option<PathBuf>,
}

impl LoggingConfig {
    /// The level to log at now: the level file's, when it is configured and holds one, else
    /// `level`.
    pub fn effective_level(&self) -> String {
        self.level_file
            .as_deref()
            .and_then(|f| crate::log_level::read_level_file(f).ok().flatten())
            .unwrap_or_else(|| self.level.clone())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OtelConfig {
    /// OTLP/HTTP endpoint for traces; unset disables tracing export entirely.
    pub endpoint: Option<String>,
    /// `service.name` of exported traces; unset means `OTEL_SERVICE_NAME`, else `instant-db`.
    pub service_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Seconds that in-flight requests get to finish after SIGTERM. After that they are
    /// abandoned (each document is one transaction, so none is left half-written), the database
    /// is checkpointed and the process exits 0. Keep it below the pod's
    /// `terminationGracePeriodSeconds` (Kubernetes' default is 30).
    pub grace_period_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            grace_period_secs: 25,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Seconds between background health samples.
    pub check_interval_secs: u64,
    /// Seconds between periodic integrity checks; 0 disables them.
    pub integrity_interval_secs: u64,
    /// Seconds between runs of database maintenance (FTS5 `optimize`, then `ANALYZE`; writes
    /// wait while it runs); 0 disables it. The first run is one interval after the start.
    pub optimize_interval_secs: u64,
    /// CPU, memory and disk thresholds: warning makes health degraded, critical makes the
    /// engine not ready.
    #[schema(value_type = Object)]
    pub thresholds: crate::sysres::Thresholds,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./instant-db-data"),
            listen: "127.0.0.1:8080".into(),
            admin_token_file: None,
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            backup: BackupConfig::default(),
            archive: crate::archive::ArchiveConfig::default(),
            embedding: EmbeddingConfig::default(),
            chunking: ChunkingConfig::default(),
            ingest: IngestConfig::default(),
            search: SearchConfig::default(),
            index: IndexConfig::default(),
            vector_store: Default::default(),
            qdrant: Default::default(),
            limits: LimitsConfig::default(),
            logging: LoggingConfig::default(),
            otel: OtelConfig::default(),
            health: HealthConfig::default(),
            shutdown: ShutdownConfig::default(),
            resilience: Default::default(),
        }
    }
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            model: crate::assets::DEFAULT_MODEL.into(),
            model_dir: None,
            onnxruntime: None,
            batch_size: 32,
            threads: 0,
            query_threads: 1,
            max_sequence_length: 256,
            text: Default::default(),
        }
    }
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        ChunkingConfig {
            max_tokens: 200,
            overlap_tokens: 32,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_file_bytes: 20 * 1024 * 1024,
            exclude: vec![],
            follow_symlinks: true,
            allowed_roots: vec![],
            max_concurrent: 2,
            notebook_outputs: false,
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            default_top_k: 10,
            max_top_k: 1000,
            max_query_chars: 2000,
            exact_search_below: 20_000,
            rrf_k: 60.0,
            keyword_chunks_per_thread: 25_000,
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            m: 16,
            // Measured on 61k real Rust-docs chunks (`bench --suite recall`): 200/64 gave
            // recall@10 0.977, 400/128 gives 0.991. The extra build time is ~1 % of the
            // embedding time per chunk, the extra query time 0.1 ms of a 2 ms vector query.
            ef_construction: 400,
            ef_search: 128,
            // Replaying this many ids costs well under a second; rewriting a 100k-chunk graph
            // (about 150 MB) after every small ingest cost far more.
            persist_after_changes: 20_000,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_bytes: 2 * 1024 * 1024,
            max_upload_bytes: 20 * 1024 * 1024,
            request_timeout_secs: 300,
            max_concurrent_searches: 0,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            format: None,
            file: None,
            max_file_bytes: 0,
            max_files: crate::telemetry::KEEP_LOG_FILES,
            level_file: None,
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            check_interval_secs: 10,
            integrity_interval_secs: 3600,
            optimize_interval_secs: 86_400,
            thresholds: crate::sysres::Thresholds::default(),
        }
    }
}

/// Environment variables and the dotted config key each one sets.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("INSTANT_DB_DATA_DIR", "data_dir"),
    ("INSTANT_DB_LISTEN", "listen"),
    ("INSTANT_DB_ADMIN_TOKEN_FILE", "admin_token_file"),
    ("INSTANT_DB_API_KEYS_DIR", "auth.keys_dir"),
    ("INSTANT_DB_TLS_CERT", "tls.cert_file"),
    ("INSTANT_DB_TLS_KEY", "tls.key_file"),
    ("INSTANT_DB_CREDENTIALS_DIR", "backup.credentials_dir"),
    ("INSTANT_DB_BACKUP_VERIFY", "backup.verify"),
    ("INSTANT_DB_INSECURE_NO_AUTH", "auth.insecure_no_auth"),
    (
        "INSTANT_DB_METRICS_REQUIRES_KEY",
        "auth.metrics_requires_key",
    ),
    ("INSTANT_DB_MODEL", "embedding.model"),
    ("INSTANT_DB_MODEL_DIR", "embedding.model_dir"),
    ("INSTANT_DB_ONNXRUNTIME", "embedding.onnxruntime"),
    ("INSTANT_DB_EMBEDDING_BATCH_SIZE", "embedding.batch_size"),
    ("INSTANT_DB_EMBEDDING_THREADS", "embedding.threads"),
    (
        "INSTANT_DB_EMBEDDING_QUERY_THREADS",
        "embedding.query_threads",
    ),
    ("INSTANT_DB_CHUNK_MAX_TOKENS", "chunking.max_tokens"),
    ("INSTANT_DB_CHUNK_OVERLAP_TOKENS", "chunking.overlap_tokens"),
    ("INSTANT_DB_MAX_FILE_BYTES", "ingest.max_file_bytes"),
    ("INSTANT_DB_ALLOWED_ROOTS", "ingest.allowed_roots"),
    ("INSTANT_DB_BACKUP_ALLOWED_ROOTS", "backup.allowed_roots"),
    ("INSTANT_DB_MAX_UPLOAD_BYTES", "limits.max_upload_bytes"),
    (
        "INSTANT_DB_MAX_CONCURRENT_SEARCHES",
        "limits.max_concurrent_searches",
    ),
    ("INSTANT_DB_LOG_LEVEL", "logging.level"),
    ("INSTANT_DB_LOG_FORMAT", "logging.format"),
    ("INSTANT_DB_LOG_FILE", "logging.file"),
    ("INSTANT_DB_LOG_MAX_FILE_BYTES", "logging.max_file_bytes"),
    ("INSTANT_DB_LOG_MAX_FILES", "logging.max_files"),
    ("INSTANT_DB_LOG_LEVEL_FILE", "logging.level_file"),
    ("INSTANT_DB_OTEL_ENDPOINT", "otel.endpoint"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel.endpoint"),
    (
        "INSTANT_DB_INTEGRITY_INTERVAL_SECS",
        "health.integrity_interval_secs",
    ),
    (
        "INSTANT_DB_OPTIMIZE_INTERVAL_SECS",
        "health.optimize_interval_secs",
    ),
    (
        "INSTANT_DB_SHUTDOWN_GRACE_PERIOD_SECS",
        "shutdown.grace_period_secs",
    ),
    ("INSTANT_DB_OTEL_SERVICE_NAME", "otel.service_name"),
    ("INSTANT_DB_VECTOR_STORE", "vector_store"),
    ("INSTANT_DB_QDRANT_URL", "qdrant.url"),
    ("INSTANT_DB_QDRANT_COLLECTION", "qdrant.collection"),
    ("INSTANT_DB_QDRANT_API_KEY_FILE", "qdrant.api_key_file"),
];

impl Config {
    /// Builds the configuration from an optional YAML file, the process environment and flag
    /// overrides (dotted key → raw string value), in increasing precedence.
    pub fn load(file: Option<&Path>, flags: &BTreeMap<String, String>) -> Result<Config> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::load_from(file, &env, flags)
    }

    pub fn load_from(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: &BTreeMap<String, String>,
    ) -> Result<Config> {
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!("cannot read config file {}: {e}", path.display()))
                })?;
                let value: Value = serde_norway::from_str(&text).map_err(|e| {
                    Error::Config(format!("{} is not valid YAML: {e}", path.display()))
                })?;
                if value.is_null() {
                    Value::Object(Default::default())
                } else {
                    value
                }
            }
            None => Value::Object(Default::default()),
        };
        for (var, key) in ENV_KEYS {
            if let Some(raw) = env.get(*var).filter(|v| !v.is_empty()) {
                set_dotted(&mut tree, key, scalar_for(key, raw))
                    .map_err(|e| Error::Config(format!("{var}: {e}")))?;
            }
        }
        for (var, raw) in env.iter().filter(|(_, v)| !v.is_empty()) {
            let Some(key) = key_of_env_var(var) else {
                continue;
            };
            let value = env_value(&key, raw).map_err(|e| Error::Config(format!("{var}: {e}")))?;
            set_dotted(&mut tree, &key, value).map_err(|e| Error::Config(format!("{var}: {e}")))?;
        }
        for (key, raw) in flags {
            set_dotted(&mut tree, key, scalar_for(key, raw))
                .map_err(|e| Error::Config(format!("--{key}: {e}")))?;
        }
        let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let path = e.path().to_string();
            Error::Config(format!("key `{path}`: {}", e.inner()))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Range checks that types alone cannot express.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, msg: &str| Err(Error::Config(format!("key `{key}`: {msg}")));
        self.resilience.validate()?;
        self.qdrant.validate(self.vector_store)?;
        if self.embedding.batch_size == 0 || self.embedding.batch_size > 1024 {
            return bad("embedding.batch_size", "must be between 1 and 1024");
        }
        if !(16..=512).contains(&self.embedding.max_sequence_length) {
            return bad(
                "embedding.max_sequence_length",
                "must be between 16 and 512",
            );
        }
        if self.chunking.max_tokens < 16 || self.chunking.max_tokens > 8192 {
            return bad("chunking.max_tokens", "must be between 16 and 8192");
        }
        if self.chunking.overlap_tokens * 2 >= self.chunking.max_tokens {
            return bad(
                "chunking.overlap_tokens",
                "must be less than half of chunking.max_tokens",
            );
        }
        if self.search.default_top_k == 0 || self.search.default_top_k > self.search.max_top_k {
            return bad(
                "search.default_top_k",
                "must be between 1 and search.max_top_k",
            );
        }
        if self.search.keyword_chunks_per_thread == 0 {
            return bad("search.keyword_chunks_per_thread", "must be at least 1");
        }
        if self.index.m < 4 || self.index.m > 128 {
            return bad("index.m", "must be between 4 and 128");
        }
        if self.index.ef_search == 0 || self.index.ef_construction == 0 {
            return bad(
                "index.ef_search",
                "ef_search and ef_construction must be > 0",
            );
        }
        if self.ingest.max_concurrent == 0 {
            return bad("ingest.max_concurrent", "must be at least 1");
        }
        let cores = crate::sysres::cores();
        let searches = self.limits.effective_max_concurrent_searches();
        let room = crate::index::search_contexts(cores).saturating_sub(cores);
        if searches > room {
            return Err(Error::Config(format!(
                "key `limits.max_concurrent_searches`: {searches} is more than the vector index \
                 serves at once on {cores} cores ({room}); set it to {room} or less"
            )));
        }
        if let Some(f) = &self.logging.format
            && f != "json"
            && f != "text"
        {
            return bad("logging.format", "must be `json` or `text`");
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => {
                return bad(
                    "tls.key_file",
                    "tls.cert_file is set but tls.key_file is not: HTTPS needs both; give the certificate's private key with --tls-key / INSTANT_DB_TLS_KEY, or drop --tls-cert",
                );
            }
            (None, Some(_)) => {
                return bad(
                    "tls.cert_file",
                    "tls.key_file is set but tls.cert_file is not: HTTPS needs both; give the certificate with --tls-cert / INSTANT_DB_TLS_CERT, or drop --tls-key",
                );
            }
            _ => {}
        }
        if let Err((key, msg)) = self.archive.validate() {
            return bad(key, msg);
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("listen", "must be an address like 0.0.0.0:8080");
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("instant-db.sqlite")
    }

    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("index")
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }

    /// Where directory backup locations may be: `backup.allowed_roots`, or by default
    /// `backups/` beside the data directory.
    pub fn backup_roots(&self) -> Vec<PathBuf> {
        if !self.backup.allowed_roots.is_empty() {
            return self.backup.allowed_roots.clone();
        }
        let data = if self.data_dir.is_absolute() {
            self.data_dir.clone()
        } else {
            std::env::current_dir()
                .unwrap_or_default()
                .join(&self.data_dir)
        };
        let parent = data
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        vec![parent.join("backups")]
    }
}

/// Raw strings from the environment or flags become typed JSON: numbers and booleans as such,
/// lists for list-valued keys (comma-separated), strings otherwise.
fn scalar_for(key: &str, raw: &str) -> Value {
    if key.ends_with("allowed_roots") || key.ends_with("exclude") {
        return Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        );
    }
    if let Ok(n) = raw.parse::<u64>() {
        return Value::from(n);
    }
    if let Ok(f) = raw.parse::<f64>()
        && raw.contains('.')
        && !key.contains("dir")
        && !key.contains("file")
    {
        return Value::from(f);
    }
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(raw.to_string()),
    }
}

/// `INSTANT_DB_SEARCH__MAX_TOP_K` → `search.max_top_k`; `None` for variables not of that form.
fn key_of_env_var(var: &str) -> Option<String> {
    let rest = var.strip_prefix("INSTANT_DB_")?;
    if !rest.contains("__") {
        return None;
    }
    Some(
        rest.split("__")
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The environment variable that sets a dotted key.
pub fn env_var_of_key(key: &str) -> String {
    format!("INSTANT_DB_{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Types a raw environment value by the key's default: the key must exist, strings stay
/// strings (a model named `1.0` is not a number), lists also accept `a,b`, the rest is YAML.
fn env_value(key: &str, raw: &str) -> std::result::Result<Value, String> {
    let defaults = serde_json::to_value(Config::default()).map_err(|e| e.to_string())?;
    let unknown = || format!("unknown configuration key `{key}`");
    let mut node = &defaults;
    for part in key.split('.') {
        node = node
            .as_object()
            .and_then(|m| m.get(part))
            .ok_or_else(unknown)?;
    }
    let yaml = || {
        serde_norway::from_str::<Value>(raw)
            .map_err(|e| format!("`{raw}` is not a valid value for `{key}`: {e}"))
    };
    Ok(match node {
        // Every optional setting is a string or a path, so null defaults are treated as strings.
        Value::String(_) | Value::Null => Value::String(raw.to_string()),
        Value::Array(_) if !raw.trim_start().starts_with('[') => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        _ => yaml()?,
    })
}

fn set_dotted(tree: &mut Value, key: &str, value: Value) -> std::result::Result<(), String> {
    let mut node = tree;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(format!(
                "`{key}` cannot be set: its parent is not a mapping"
            ));
        };
        if i == parts.len() - 1 {
            map.insert((*part).to_string(), value);
            return Ok(());
        }
        node = map
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
