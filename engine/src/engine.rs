//! The engine: one data directory opened for ingest and search. The HTTP server and the command
//! line both drive this type, so they behave the same.

mod embedding_text;
mod keyword;
mod vectors;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::Serialize;

use crate::assets::AssetPaths;
use crate::chunk::{HfTokenCounter, TokenCounter, WhitespaceTokenCounter};
use crate::config::Config;
use crate::embed::{Embedder, Lane};
use crate::error::{Error, Result};
use crate::index::{
    IndexJournal, IndexParams, IndexStats, LoadOutcome, LoadPhase, LoadProgress, LoadStatus,
    VectorIndex,
};
use crate::parse::ParserRegistry;
use crate::search::{self, Mode, SearchHit, SearchRequest, SearchResponse};
use crate::store::{DocumentRecord, NewChunk, Store, StoreStats, WriteOutcome};

/// Dimensions assumed for the vector index when no model is loaded (the default model's).
pub(crate) const DEFAULT_DIMENSIONS: usize = 384;

/// A search's vector hits (`None`: a hybrid search without them) and why it went without.
type VectorSide = (Option<Vec<(i64, f32)>>, Option<String>);
/// A search's query vector (`None`: a hybrid search without one) and why it went without.
type QuerySide = (Option<Vec<f32>>, Option<String>);

fn no_vector() -> Error {
    Error::Internal("the model returned no vector".into())
}

pub struct Engine {
    pub config: Config,
    pub store: Store,
    index: RwLock<Arc<VectorIndex>>,
    /// Held shared by every write from before its commit until the index has followed it, and
    /// exclusively by a save of the index: a saved graph and the generation saved with it always
    /// describe the same state (no commit is half-applied to the graph).
    index_sync: RwLock<()>,
    /// The changes since the saved graph (see [`IndexJournal`]); the store appends to it.
    journal: Arc<IndexJournal>,
    /// How the index was last loaded (reused or rebuilt, and why), for `/health/detailed`.
    index_load: std::sync::Mutex<Option<LoadOutcome>>,
    /// A load of the index still to run or running ([`Engine::open_deferred`]): until it ends,
    /// writes and vector search answer `index_loading`, hybrid search is keyword-only.
    index_progress: LoadProgress,
    embedder: Option<Arc<Embedder>>,
    model_error: Option<String>,
    pub parsers: ParserRegistry,
    counter: Box<dyn TokenCounter>,
    pub metrics: crate::metrics::Metrics,
    /// Opens after repeated embedding failures so searches fall back to keyword quickly
    /// instead of failing one by one.
    pub embed_breaker: crate::resilience::CircuitBreaker,
    /// Every circuit breaker (the embedding one and `object_storage`), for health and metrics.
    pub breakers: crate::resilience::Breakers,
    /// What the startup recovery of an interrupted restore did (restore jobs cut by a restart
    /// take their outcome from it).
    pub recovery: crate::backup::Recovery,
    /// Continuous archiving's state (the shipper task runs in the server).
    pub archive: Arc<crate::archive::Archive>,
    /// Failures grouped by component and kind, for `/health/detailed` and metrics.
    pub errors: crate::error_tracker::ErrorTracker,
    /// The Qdrant collection when `vector_store: qdrant` (the embedded graph stays empty then).
    qdrant: Option<Arc<crate::qdrant::QdrantVectors>>,
    /// Set when Qdrant missed a write (see `vectors.rs`), cleared by a re-sync.
    qdrant_behind: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelLoading {
    /// Load the model; if it fails, run degraded (keyword search only) and say why.
    BestEffort,
    /// Load the model or fail.
    Required,
    /// Do not load it (maintenance commands that never embed).
    Skip,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EngineStats {
    #[serde(flatten)]
    pub store: StoreStats,
    pub index: IndexStats,
    pub model: String,
    pub model_loaded: bool,
    pub model_error: Option<String>,
}

impl Engine {
    pub fn open(config: Config, model: ModelLoading) -> Result<Engine> {
        Self::open_with(config, model, false)
    }

    /// Like [`Engine::open`] without loading the vector index: the engine starts with an empty
    /// one and [`Engine::load_deferred_index`] loads it (the server does so after binding its
    /// listener, so probes see a pod that rebuilds its graph as alive, not dead).
    pub fn open_deferred(config: Config, model: ModelLoading) -> Result<Engine> {
        Self::open_with(config, model, true)
    }

    fn open_with(config: Config, model: ModelLoading, defer_index: bool) -> Result<Engine> {
        // Before the store opens: an interrupted restore must not end as a fresh empty database.
        let db_name = config
            .db_path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let recovery = crate::backup::recover_interrupted_restore(&config.data_dir, &db_name)
            .map_err(crate::maintenance::backup_err)?;
        // No verification runs yet: any scratch space left is from one a crash cut short.
        crate::verify::clean_stale_scratch(&config.data_dir);
        // A damaged file does not stop the engine: it comes up with the store closed, every
        // data request answering what to do, so that a restore can replace the file.
        let store = Store::open_tolerant(&config.db_path())?;
        // Captured whenever archiving is configured, also by commands that do not ship: the
        // server ships what they wrote at its next start.
        store.set_change_capture(config.archive.enabled());
        // The generation begins now, before any write of this process, so every change after
        // the open is in the archive (a file opened without archiving before is the base).
        if config.archive.enabled()
            && store.damaged().is_none()
            && store.change_log_state()?.generation.is_none()
        {
            store.start_generation(&crate::archive::segment::new_generation(chrono::Utc::now()))?;
        }
        let (embedder, model_error) = match model {
            ModelLoading::Skip => (None, Some("model not loaded for this command".to_string())),
            _ => {
                let paths = AssetPaths::resolve(&config.embedding);
                match Embedder::load(&config.embedding, &paths) {
                    Ok(e) => (Some(Arc::new(e)), None),
                    Err(e) if model == ModelLoading::BestEffort => {
                        tracing::warn!(error = %e, "embedding model unavailable: running degraded, keyword search only");
                        (None, Some(e.to_string()))
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let counter: Box<dyn TokenCounter> = match Self::tokenizer_for_counting(&config) {
            Some(t) => Box::new(HfTokenCounter::new(&t)),
            None => Box::new(WhitespaceTokenCounter),
        };
        let mut index_progress = LoadProgress::default();
        let qdrant_mode = config.vector_store == crate::qdrant::VectorStoreKind::Qdrant;
        let (index, index_load) = match store.damaged() {
            Some(_) => (Self::empty_index(&config, embedder.as_deref())?, None),
            // No graph of our own: the collection is the index (re-synced by the server's start).
            None if qdrant_mode => (Self::empty_index(&config, embedder.as_deref())?, None),
            None if defer_index => {
                // The count is only for the progress shown; a failure here surfaces in the load.
                let stored = store.stats().map_or(0, |s| s.embeddings.max(0) as usize);
                index_progress = LoadProgress::pending(stored);
                (Self::empty_index(&config, embedder.as_deref())?, None)
            }
            None => match Self::load_index(&config, &store, embedder.as_deref()) {
                Ok((i, outcome)) => (i, Some(outcome)),
                Err(Error::DatabaseDamaged(d)) => {
                    store.mark_damaged(&d.detail)?;
                    (Self::empty_index(&config, embedder.as_deref())?, None)
                }
                Err(e) => return Err(e),
            },
        };
        let journal = Arc::new(IndexJournal::new(&config.index_dir()));
        let hook = journal.clone();
        store.set_change_hook(Arc::new(move |ids: &[i64]| hook.append(ids)))?;
        let metrics = crate::metrics::Metrics::new().map_err(|e| Error::Internal(e.to_string()))?;
        let resilience = &config.resilience;
        let embed_breaker = crate::resilience::CircuitBreaker::new(
            crate::resilience::settings::EMBEDDING,
            resilience.breaker(crate::resilience::settings::EMBEDDING),
        )
        .with_hook(metrics.breaker_hook());
        let breakers = crate::resilience::Breakers::with_configs(
            resilience.breaker(crate::resilience::settings::DEFAULT),
            resilience.named_breakers(),
            Some(metrics.breaker_hook()),
        );
        breakers.insert(embed_breaker.clone());
        // created now so health and the gauge show it before the first backup
        breakers.get(crate::maintenance::OBJECT_STORAGE);
        let qdrant = if qdrant_mode {
            let api_key = config.qdrant.api_key(|k| std::env::var(k).ok())?;
            Some(Arc::new(crate::qdrant::QdrantVectors::new(
                &config.qdrant,
                api_key,
                embedder
                    .as_deref()
                    .map_or(DEFAULT_DIMENSIONS, Embedder::dimensions),
                breakers.get(crate::resilience::settings::QDRANT),
                resilience.retry(crate::resilience::settings::QDRANT),
            )?))
        } else {
            None
        };
        let parsers = ParserRegistry::with_options(crate::parse::ParseOptions {
            notebook_outputs: config.ingest.notebook_outputs,
        });
        let engine = Engine {
            archive: Arc::new(crate::archive::Archive::new(&config.archive)),
            breakers,
            metrics,
            embed_breaker,
            config,
            store,
            index: RwLock::new(Arc::new(index)),
            index_sync: RwLock::new(()),
            journal,
            index_load: std::sync::Mutex::new(index_load),
            index_progress,
            embedder,
            model_error,
            parsers,
            counter,
            recovery,
            errors: Default::default(),
            qdrant,
            qdrant_behind: AtomicBool::new(false),
        };
        engine.settle_embedding_text();
        Ok(engine)
    }

    /// The index of an engine whose database is damaged: empty until a restore reloads it.
    fn empty_index(config: &Config, embedder: Option<&Embedder>) -> Result<VectorIndex> {
        VectorIndex::new(
            embedder.map_or(DEFAULT_DIMENSIONS, Embedder::dimensions),
            &config.embedding.model,
            &config.index,
            config.search.exact_search_below,
        )
    }

    /// The tokenizer alone (no ONNX Runtime) so chunk sizes are model tokens even when the model
    /// itself cannot load.
    fn tokenizer_for_counting(config: &Config) -> Option<tokenizers::Tokenizer> {
        let paths = AssetPaths::resolve(&config.embedding);
        tokenizers::Tokenizer::from_file(paths.tokenizer_file()).ok()
    }

    fn load_index(
        config: &Config,
        store: &Store,
        embedder: Option<&Embedder>,
    ) -> Result<(VectorIndex, LoadOutcome)> {
        Self::load_index_reporting(config, store, embedder, &LoadProgress::default())
    }

    fn load_index_reporting(
        config: &Config,
        store: &Store,
        embedder: Option<&Embedder>,
        progress: &LoadProgress,
    ) -> Result<(VectorIndex, LoadOutcome)> {
        let started = Instant::now();
        let dims = embedder.map_or(DEFAULT_DIMENSIONS, Embedder::dimensions);
        let model = &config.embedding.model;
        let total = progress.status().map_or(0, |s| s.total);
        progress.set_phase(LoadPhase::ReadingEmbeddings, total);
        let stored = crate::store::StoredEmbeddings {
            store,
            model,
            dimensions: dims,
        };
        let generation = store.generation()?;
        let (index, outcome) = VectorIndex::load_with_progress(
            &config.index_dir(),
            generation,
            dims,
            model,
            &IndexParams {
                cfg: &config.index,
                exact_below: config.search.exact_search_below,
            },
            &stored,
            progress,
        )?;
        tracing::info!(
            vectors = index.len(),
            reused_dump = outcome.reused_dump,
            replayed = outcome.replayed,
            rebuild_reason = outcome.rebuild_reason.as_deref().unwrap_or(""),
            ms = started.elapsed().as_millis() as u64,
            "vector index ready"
        );
        Ok((index, outcome))
    }

    /// Loads the index of an engine opened with [`Engine::open_deferred`] (blocking; nothing to
    /// do otherwise). Writes are refused meanwhile, so the graph loaded is the database's state;
    /// a failure leaves the index empty and is returned for the caller to report.
    pub fn load_deferred_index(&self) -> Result<()> {
        if self.qdrant.is_some() {
            // A collection another process filled (or an outage left behind) catches up here.
            return self
                .resync_vectors(crate::qdrant::sync::Resync::IfCountsDiffer)
                .map(drop);
        }
        if !self.index_progress.is_loading() {
            return Ok(());
        }
        let result = self.load_deferred_locked();
        // Even after a failure: the engine goes on with what it has (the health check then
        // reports the index against the stored embeddings) rather than loading forever.
        self.index_progress.finish();
        result
    }

    fn load_deferred_locked(&self) -> Result<()> {
        let _sync = self.sync_exclusive()?;
        let loaded = Self::load_index_reporting(
            &self.config,
            &self.store,
            self.embedder.as_deref(),
            &self.index_progress,
        );
        let (fresh, outcome) = match loaded {
            Ok((i, o)) => (i, Some(o)),
            Err(Error::DatabaseDamaged(d)) => {
                self.store.mark_damaged(&d.detail)?;
                (
                    Self::empty_index(&self.config, self.embedder.as_deref())?,
                    None,
                )
            }
            Err(e) => return Err(e),
        };
        *self
            .index
            .write()
            .map_err(|_| Error::Internal("index lock poisoned".into()))? = Arc::new(fresh);
        match self.index_load.lock() {
            Ok(mut g) => *g = outcome,
            Err(p) => *p.into_inner() = outcome,
        }
        Ok(())
    }

    /// Counts a failure of the engine in the error tracker and `instantdb_errors_total`.
    pub fn track_error(&self, component: &str, kind: &str, message: &str) {
        let (component, kind) = self.errors.record(component, kind, message);
        self.metrics
            .errors_total
            .with_label_values(&[component.as_str(), kind.as_str()])
            .inc();
    }

    /// Where a deferred load of the index stands; `None` once the index is loaded.
    pub fn index_loading(&self) -> Option<LoadStatus> {
        self.index_progress.status()
    }

    /// `Err(IndexLoading)` while the index loads: a write now would be missing from the graph
    /// being built (or be applied twice).
    fn refuse_while_loading(&self) -> Result<()> {
        match self.index_loading() {
            Some(st) => Err(Error::IndexLoading(format!(
                "{}; writes and vector search resume when it is done (nothing was written), \
                 keyword search works meanwhile",
                st.describe()
            ))),
            None => Ok(()),
        }
    }

    /// How the vector index was last loaded: `None` while the database is damaged.
    pub fn index_load(&self) -> Option<LoadOutcome> {
        match self.index_load.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Journal entries written since the graph was last saved in full.
    pub fn journal_entries(&self) -> usize {
        self.journal.len()
    }

    fn sync_shared(&self) -> Result<std::sync::RwLockReadGuard<'_, ()>> {
        self.index_sync
            .read()
            .map_err(|_| Error::Internal("index sync lock poisoned".into()))
    }

    fn sync_exclusive(&self) -> Result<std::sync::RwLockWriteGuard<'_, ()>> {
        self.index_sync
            .write()
            .map_err(|_| Error::Internal("index sync lock poisoned".into()))
    }

    /// Stores one document with its chunks and makes the vector index follow, as one step
    /// for a concurrent save of the index.
    pub fn write_document(
        &self,
        doc: &DocumentRecord,
        chunks: &[NewChunk],
    ) -> Result<WriteOutcome> {
        self.refuse_while_loading()?;
        let _sync = self.sync_shared()?;
        let outcome = self.store.put_document(doc, chunks, self.model_name())?;
        self.vectors_follow(&outcome.removed_chunk_ids, &outcome.added)?;
        Ok(outcome)
    }

    pub fn index(&self) -> Arc<VectorIndex> {
        match self.index.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads the vector index from the database (after a restore or a repair).
    pub fn reload_index(&self) -> Result<()> {
        if self.qdrant.is_some() {
            // After a restore or in a repair: every stored vector again (ids and payloads of
            // the restored database replace the collection's).
            self.store.reset_readers()?;
            if self.store.damaged().is_some() {
                return Ok(());
            }
            // A failure leaves the engine behind (the next write or start catches up) rather
            // than failing the restore that called it: the database is what was restored.
            if let Err(e) = self.resync_vectors(crate::qdrant::sync::Resync::Everything) {
                tracing::warn!(error = %e, "Qdrant could not be re-synced from the database yet");
            }
            return Ok(());
        }
        let _sync = self.sync_exclusive()?;
        self.store.reset_readers()?;
        // One graph in memory at a time: the old one goes before the new one is built, and
        // meanwhile the index is loading, as at a start (keyword search works, vector search
        // answers 503 index_loading). The old graph would be wrong after a restore anyway.
        let dims = self.index().dimensions();
        let total = self
            .store
            .embedding_count(self.model_name(), dims)
            .map_or(0, |n| n.max(0) as usize);
        self.index_progress.begin(total);
        let reloaded = self.reload_index_locked();
        self.index_progress.finish();
        reloaded
    }

    fn reload_index_locked(&self) -> Result<()> {
        let empty = Arc::new(Self::empty_index(&self.config, self.embedder.as_deref())?);
        *self
            .index
            .write()
            .map_err(|_| Error::Internal("index lock poisoned".into()))? = empty;
        // A damaged database keeps the empty index until a restore or repair.
        let outcome = match self.store.damaged() {
            Some(_) => None,
            None => {
                let (fresh, outcome) = Self::load_index_reporting(
                    &self.config,
                    &self.store,
                    self.embedder.as_deref(),
                    &self.index_progress,
                )?;
                *self
                    .index
                    .write()
                    .map_err(|_| Error::Internal("index lock poisoned".into()))? = Arc::new(fresh);
                Some(outcome)
            }
        };
        self.journal.reset_count();
        match self.index_load.lock() {
            Ok(mut g) => *g = outcome,
            Err(p) => *p.into_inner() = outcome,
        }
        Ok(())
    }

    pub fn embedder(&self) -> Option<&Arc<Embedder>> {
        self.embedder.as_ref()
    }

    pub fn model_error(&self) -> Option<&str> {
        self.model_error.as_deref()
    }

    pub fn token_counter(&self) -> &dyn TokenCounter {
        self.counter.as_ref()
    }

    pub fn model_name(&self) -> &str {
        &self.config.embedding.model
    }

    /// Saves the vector index in full (with an empty journal) so the next start skips the
    /// rebuild. Writes wait meanwhile, so the generation saved is the graph's.
    pub fn persist_index(&self) -> Result<()> {
        if self.qdrant.is_some() {
            // Qdrant persists its own collection; there is no graph here to save.
            return Ok(());
        }
        if self.store.damaged().is_some() {
            // nothing to persist: the index is empty until a restore
            return Ok(());
        }
        if self.index_loading().is_some() {
            // Nothing newer than the saved state to save: the load saves what it rebuilt.
            return Ok(());
        }
        let _sync = self.sync_exclusive()?;
        let generation = self.store.generation()?;
        self.index().persist(&self.config.index_dir(), generation)?;
        self.journal.reset_count();
        Ok(())
    }

    /// After a start that rebuilt the graph: saves it, so that the next start (and `check`)
    /// finds a graph on disk. A failure is logged: the index is derived data.
    pub fn persist_index_if_rebuilt(&self) {
        let rebuilt = self.index_load().is_some_and(|o| !o.reused_dump);
        if rebuilt
            && !self.index().is_empty()
            && let Err(e) = self.persist_index()
        {
            tracing::warn!(error = %e, "the rebuilt vector index could not be saved");
        }
    }

    /// After a write: saves the index in full only when there is no saved graph yet or its
    /// journal has grown past `index.persist_after_changes`; otherwise the journal written
    /// during the write is all that a restart needs.
    pub fn persist_index_if_due(&self) -> Result<()> {
        let saved = self.config.index_dir().join("meta.json").exists();
        if !saved || self.journal.len() >= self.config.index.persist_after_changes {
            self.persist_index()
        } else {
            Ok(())
        }
    }

    pub fn stats(&self) -> Result<EngineStats> {
        Ok(EngineStats {
            store: self.store.stats()?,
            index: self.index().stats(),
            model: self.config.embedding.model.clone(),
            model_loaded: self.embedder.is_some(),
            model_error: self.model_error.clone(),
        })
    }

    /// Whether vector search can be attempted now (model loaded, breaker not open).
    pub fn vectors_available(&self) -> bool {
        self.embedder.is_some()
            && self.index_loading().is_none()
            && self.embed_breaker.state() != crate::resilience::BreakerState::Open
            && self
                .qdrant()
                .is_none_or(|q| q.breaker().state() != crate::resilience::BreakerState::Open)
    }

    /// Why hybrid search runs keyword-only now.
    fn vectors_unavailable_reason(&self) -> String {
        if let Some(st) = self.index_loading() {
            return st.describe();
        }
        if let Some(q) = self.qdrant()
            && q.breaker().state() == crate::resilience::BreakerState::Open
        {
            return "the qdrant circuit breaker is open after repeated failures".into();
        }
        self.model_error
            .clone()
            .unwrap_or_else(|| "embedding circuit breaker open".into())
    }

    /// Embeds texts through the circuit breaker, recording timings and counts (ingest and
    /// repair: the ingest session).
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_on(crate::embed::Lane::Ingest, texts)
    }

    /// Embeds texts on one of the model's sessions, through the circuit breaker and retries.
    fn embed_on(&self, lane: crate::embed::Lane, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let result = self.embed_guarded(lane, texts);
        if let Err(e) = &result {
            self.track_error("embedding", e.code(), &e.to_string());
            self.metrics
                .embedding_failures
                .with_label_values(&[lane.as_str()])
                .inc();
        }
        result
    }

    fn embed_guarded(&self, lane: crate::embed::Lane, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let embedder = self.embedder.as_ref().ok_or_else(|| {
            Error::ModelUnavailable(
                self.model_error
                    .clone()
                    .unwrap_or_else(|| "model not loaded".into()),
            )
        })?;
        if let Err(retry_in) = self.embed_breaker.try_acquire() {
            return Err(Error::ModelUnavailable(format!(
                "embedding circuit breaker is open after repeated failures; retrying in {}s",
                retry_in.as_secs()
            )));
        }
        let started = Instant::now();
        // A failed inference run is retried briefly; a missing or broken model is not, and the
        // breaker counts the call once, after the retries.
        let attempt = crate::resilience::retry_blocking(
            "embed",
            self.config
                .resilience
                .retry(crate::resilience::settings::EMBEDDING)
                .policy(),
            || embedder.embed_on(lane, texts),
            |e| matches!(e, Error::Inference(_)),
            std::thread::sleep,
        );
        match attempt {
            Ok(v) => {
                self.embed_breaker.record_success();
                self.metrics
                    .embedding_duration
                    .observe(started.elapsed().as_secs_f64());
                self.metrics.embedded_texts.inc_by(texts.len() as u64);
                Ok(v)
            }
            Err(e) => {
                self.embed_breaker.record_failure();
                Err(e)
            }
        }
    }

    /// Embeds a query on a free session: it never waits behind an ingest batch.
    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        self.embed_on(Lane::Query, &[query])?
            .pop()
            .ok_or_else(no_vector)
    }

    #[tracing::instrument(name = "search", skip_all, fields(mode = tracing::field::Empty, top_k = tracing::field::Empty, hits = tracing::field::Empty, degraded = tracing::field::Empty))]
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        let started = Instant::now();
        let plan = search::plan(req, &self.config.search)?;
        let span = tracing::Span::current();
        span.record("mode", plan.mode.as_str());
        span.record("top_k", plan.top_k);
        let want = plan.offset + plan.top_k;
        // Fusion needs deeper lists than the page it returns.
        let depth = if plan.mode == Mode::Hybrid {
            (want * 3).max(50)
        } else {
            want
        };
        let terms = search::query_terms(&plan.query);
        let chunk_span = match plan.mode {
            Mode::Vector => None,
            Mode::Hybrid | Mode::Keyword => self.chunk_span()?,
        };
        // Hybrid runs its keyword half on a thread of its own beside the graph walk and
        // rescoring. On a large collection the keyword half is the longest part, so its slices
        // start at once, on the cores the query session leaves (one, on two cores), while this
        // thread embeds the query there and walks the graph, then takes the slices still left.
        // On a small collection the embedding is the longest part, so it runs first on every
        // free core. (Beside ONNX Runtime's threads the keyword half would stall them: they
        // wait for each other at every operator.)
        let hybrid = plan.mode == Mode::Hybrid;
        let (vector_side, keyword_hits) = if hybrid && self.keyword_wants_cores(chunk_span) {
            let cores = crate::sysres::cores();
            let beside = cores.saturating_sub(self.query_threads()).max(1);
            self.keyword_work(&terms, &plan.conditions, depth, chunk_span, cores)
                .run_beside(beside, || {
                    self.query_side(&plan, Lane::QueryBeside)
                        .and_then(|q| self.vector_side(&plan, depth, q))
                })
        } else if hybrid {
            let query_side = self.query_side(&plan, Lane::Query)?;
            self.keyword_work(&terms, &plan.conditions, depth, chunk_span, 1)
                .run_beside(1, || self.vector_side(&plan, depth, query_side))
        } else {
            let query_side = self.query_side(&plan, Lane::Query)?;
            let vector_side = self.vector_side(&plan, depth, query_side);
            let keyword_hits = match plan.mode {
                Mode::Vector => Ok(vec![]),
                Mode::Hybrid | Mode::Keyword => {
                    let cores = crate::sysres::cores();
                    self.keyword_hits(&terms, &plan.conditions, depth, chunk_span, cores)
                }
            };
            (vector_side, keyword_hits)
        };
        let (vector_hits, degraded) = vector_side?;
        let keyword_hits = keyword_hits?;
        let use_vector = vector_hits.is_some();
        let vector_hits = vector_hits.unwrap_or_default();
        let ranked: Vec<(i64, f32)> = match plan.mode {
            Mode::Vector => vector_hits.clone(),
            Mode::Keyword => keyword_hits.clone(),
            Mode::Hybrid if use_vector => {
                search::rrf(&[&vector_hits, &keyword_hits], self.config.search.rrf_k)
            }
            Mode::Hybrid => keyword_hits.clone(),
        };
        let page: Vec<(i64, f32)> = ranked
            .into_iter()
            .filter(|(_, s)| plan.threshold.is_none_or(|t| *s >= t))
            .skip(plan.offset)
            .take(plan.top_k)
            .collect();
        let vscore: std::collections::HashMap<i64, f32> = vector_hits.into_iter().collect();
        let kscore: std::collections::HashMap<i64, f32> = keyword_hits.into_iter().collect();
        let loaded = self.store.read(|c| search::load_hits(c, &page, &terms))?;
        let scores: std::collections::HashMap<i64, f32> = page.iter().copied().collect();
        let hits: Vec<SearchHit> = loaded
            .into_iter()
            .enumerate()
            .map(|(i, (document, chunk, highlights))| SearchHit {
                rank: plan.offset + i + 1,
                score: scores.get(&chunk.id).copied().unwrap_or_default(),
                vector_score: vscore.get(&chunk.id).copied(),
                keyword_score: kscore.get(&chunk.id).copied(),
                document,
                chunk,
                highlights,
            })
            .collect();
        span.record("hits", hits.len());
        span.record("degraded", degraded.is_some());
        self.metrics
            .search_duration
            .with_label_values(&[plan.mode.as_str()])
            .observe(started.elapsed().as_secs_f64());
        Ok(SearchResponse {
            query: plan.query,
            mode: plan.mode,
            hits,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
            degraded,
        })
    }

    /// The query's vector, when the search uses one (`None` when a hybrid search goes on
    /// without), and why it went without; or the error a vector search answers with.
    fn query_side(&self, plan: &search::Plan, lane: Lane) -> Result<QuerySide> {
        let use_vector = match plan.mode {
            Mode::Keyword => return Ok((None, None)),
            Mode::Vector => {
                if let Some(st) = self.index_loading() {
                    return Err(Error::IndexLoading(format!(
                        "{}; vector search resumes when it is done, keyword and hybrid \
                         (keyword-only meanwhile) search work now",
                        st.describe()
                    )));
                }
                true
            }
            Mode::Hybrid => self.vectors_available(),
        };
        if !use_vector {
            return Ok((
                None,
                Some(format!(
                    "vector search unavailable ({}); results are keyword-only",
                    self.vectors_unavailable_reason()
                )),
            ));
        }
        let embedded = self
            .embed_on(lane, &[&plan.query])
            .and_then(|mut v| v.pop().ok_or_else(no_vector));
        match embedded {
            Ok(q) => Ok((Some(q), None)),
            Err(e) if plan.mode == Mode::Hybrid => Ok((
                None,
                Some(format!(
                    "vector search failed ({e}); results are keyword-only"
                )),
            )),
            Err(e) => Err(e),
        }
    }

    /// The vector hits of a query side (`None` when there is no vector or a hybrid search goes
    /// on without the vector store), and why a hybrid search went without.
    fn vector_side(
        &self,
        plan: &search::Plan,
        depth: usize,
        (query_vector, degraded): QuerySide,
    ) -> Result<VectorSide> {
        let Some(query_vector) = query_vector else {
            return Ok((None, degraded));
        };
        match self.vector_hits(&query_vector, depth, &plan.conditions) {
            Ok(hits) => Ok((Some(hits), degraded)),
            Err(e @ Error::VectorStore(_)) if plan.mode == Mode::Hybrid => {
                Ok((None, Some(Self::vector_failure(&e))))
            }
            Err(e) => Err(e),
        }
    }

    pub fn delete_document(&self, id: &str) -> Result<()> {
        self.refuse_while_loading()?;
        let _sync = self.sync_shared()?;
        let removed = self.store.delete_document(id)?;
        self.vectors_follow(&removed, &[])
    }

    /// Embeds chunks stored without a vector (ingested while the model was down).
    pub fn backfill_embeddings(&self) -> Result<usize> {
        self.embed_stored(true)
    }

    /// Embeds every stored chunk again (after `embedding.text` or the model changed), replacing
    /// its vector; search keeps working meanwhile, on old and new vectors mixed. Logs progress.
    pub fn reembed_all(&self) -> Result<usize> {
        let n = self.embed_stored(false)?;
        self.record_embedding_text()?;
        Ok(n)
    }

    fn embed_stored(&self, missing_only: bool) -> Result<usize> {
        let Some(_) = &self.embedder else {
            return Err(Error::ModelUnavailable(
                self.model_error.clone().unwrap_or_default(),
            ));
        };
        self.refuse_while_loading()?;
        let recipe = self.config.embedding.text;
        let total = self.store.stats().map_or(0, |s| s.chunks.max(0) as usize);
        let (mut done, mut after) = (0, 0);
        loop {
            let batch = self
                .store
                .chunks_to_embed(self.model_name(), after, 256, missing_only)?;
            let Some(last) = batch.last() else {
                return Ok(done);
            };
            // Embedded chunks drop out of a missing-only listing, so it restarts at 0.
            after = if missing_only { 0 } else { last.id };
            let inputs: Vec<std::borrow::Cow<'_, str>> = batch
                .iter()
                .map(|c| recipe.input(c.title.as_deref(), &c.section_path, &c.text))
                .collect();
            let texts: Vec<&str> = inputs.iter().map(|t| t.as_ref()).collect();
            let vectors = self.embed_texts(&texts)?;
            let items: Vec<(i64, Vec<f32>)> = batch.iter().map(|c| c.id).zip(vectors).collect();
            {
                let _sync = self.sync_shared()?;
                self.store.put_embeddings(self.model_name(), &items)?;
                self.vectors_follow(&[], &items)?;
            }
            done += items.len();
            tracing::info!(embedded = done, of = total, "embedding stored chunks");
        }
    }
}
