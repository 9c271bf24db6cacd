//! SQLite storage, the source of truth: documents, chunks, embeddings and the FTS5 index.
//!
//! Tuning (documented in the README): WAL journal so readers never block the writer;
//! `synchronous=NORMAL` (durable at each checkpoint, never corrupt; a power cut may lose the last
//! commits, a process crash loses none); a 5 s busy timeout; a 64 MiB page cache on the writer;
//! prepared statements through rusqlite's statement cache; `PRAGMA optimize` on close.
//! One writer connection behind a mutex (SQLite has one writer anyway) and a small pool of
//! read-only connections for concurrent searches.

mod allowed;
pub mod changes;
mod damage;
mod integrity;
mod optimize;
pub mod schema;
mod vectors;

pub use integrity::{CheckLevel, IntegrityReport, check_file};
pub use optimize::OptimizeReport;
pub use vectors::StoredEmbeddings;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const READER_POOL_SIZE: usize = 8;

pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<ReaderPool>,
    /// Set at shutdown once the grace period is over: later write transactions are refused, so
    /// the final checkpoint leaves an empty WAL behind.
    writes_closed: std::sync::atomic::AtomicBool,
    /// Row counts as of (reader epoch, generation): every write bumps the generation and every
    /// file swap the epoch, so while both are unchanged the counts are exact without the full
    /// scans that `count(*)` costs. Health asks for them every few seconds.
    counts: Mutex<Option<CachedCounts>>,
    /// Set when the file is known to be damaged: the writer is then closed (an in-memory
    /// stand-in) and every read and write answers [`Error::DatabaseDamaged`] with what to do,
    /// until a restore puts a good file in place ([`Store::with_file_replaced`]).
    damaged: Mutex<Option<crate::error::Damage>>,
    /// Set while a restore runs: writes would be lost by its swap, so they are refused.
    writes_fenced: std::sync::atomic::AtomicBool,
    /// Change capture for continuous archiving (`changes`).
    capture: changes::Capture,
    /// Told the ids of chunks whose embeddings a write changes, inside its transaction before
    /// the commit (the vector index's journal): a failure rolls the write back.
    change_hook: Mutex<Option<ChangeHook>>,
    /// Filters' chunk sets, per database state (`allowed`).
    allowed: allowed::AllowedCache,
    /// How this process makes embedding input ([`Store::set_embedding_text`]): recorded in
    /// meta `embedding_text` by the first write that stores a vector.
    embedding_text: Mutex<Option<String>>,
}

/// The meta key naming how the stored vectors' input was made (`chunk::context`).
pub const EMBEDDING_TEXT_KEY: &str = "embedding_text";

/// See [`Store::set_change_hook`].
pub type ChangeHook = std::sync::Arc<dyn Fn(&[i64]) -> Result<()> + Send + Sync>;

#[derive(Clone, PartialEq, Eq)]
struct CachedCounts {
    epoch: u64,
    generation: String,
    documents: i64,
    chunks: i64,
    embeddings: i64,
}

/// Idle read-only connections. The epoch changes when the file is replaced (restore), so
/// connections opened on the old file are dropped instead of returned to the pool.
struct ReaderPool {
    epoch: u64,
    idle: Vec<Connection>,
}

/// A document as stored, without its chunks.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentRecord {
    pub id: String,
    pub source: String,
    pub title: Option<String>,
    pub extension: Option<String>,
    pub mime: Option<String>,
    pub doc_type: String,
    pub size_bytes: i64,
    pub modified_at: Option<String>,
    pub content_hash: String,
    pub char_count: i64,
    pub word_count: i64,
    pub line_count: i64,
    pub chunk_count: i64,
    /// Free user metadata.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Metadata the parser found (front matter, HTML meta, CSV columns...).
    #[schema(value_type = Object)]
    pub format_metadata: serde_json::Value,
    pub ingested_at: String,
    pub updated_at: String,
}

/// A chunk ready to store, with its embedding when the model is available.
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub section_path: Vec<String>,
    pub text: String,
    pub content_start: usize,
    pub doc_start: usize,
    pub doc_end: usize,
    pub token_count: usize,
    pub embedding: Option<Vec<f32>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChunkRecord {
    pub id: i64,
    pub document_id: String,
    pub chunk_index: i64,
    pub section_path: Vec<String>,
    pub text: String,
    pub token_count: i64,
}

/// A stored chunk to embed ([`Store::chunks_to_embed`]).
#[derive(Debug, Clone)]
pub struct ChunkToEmbed {
    pub id: i64,
    pub text: String,
    pub section_path: Vec<String>,
    pub title: Option<String>,
}

/// What a document write changed, for the vector index to follow.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    pub removed_chunk_ids: Vec<i64>,
    pub added: Vec<(i64, Vec<f32>)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreStats {
    pub documents: i64,
    pub chunks: i64,
    pub embeddings: i64,
    pub database_bytes: u64,
    pub schema_version: i64,
}

fn configure(conn: &Connection, writer: bool) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    if writer {
        set_wal(conn)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -65536)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
    } else {
        conn.pragma_update(None, "cache_size", -16384)?;
    }
    Ok(())
}

/// Switches the file to WAL. Switching a new file needs it to itself for a moment and SQLite
/// does not wait for that (no busy handler), so another process opening the same new file at
/// the same time makes it answer "database is locked": retried briefly (up to about 2 s).
fn set_wal(conn: &Connection) -> Result<()> {
    let mut attempts = 0;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && attempts < 100 =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Registers `REGEXP` so filters can use `x REGEXP pattern`; compiled patterns are cached by
/// SQLite's auxiliary-data mechanism per statement.
fn register_functions(conn: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re: std::sync::Arc<regex::Regex> = ctx.get_or_create_aux(0, |vr| {
                regex::Regex::new(vr.as_str()?).map_err(|e| {
                    rusqlite::Error::UserFunctionError(format!("invalid regex: {e}").into())
                })
            })?;
            let text = match ctx.get_raw(1) {
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                rusqlite::types::ValueRef::Real(f) => f.to_string(),
                _ => return Ok(false),
            };
            Ok(re.is_match(&text))
        },
    )?;
    Ok(())
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let store = Self::open_tolerant(path)?;
        match store.damaged() {
            Some(why) => Err(Error::DatabaseDamaged(why)),
            None => Ok(store),
        }
    }

    /// Like [`open`](Self::open), but a damaged file is not an error: the store comes up
    /// [damaged](Self::damaged), without the file open, so that a server can still answer
    /// health and admin requests and a restore can replace the file.
    pub fn open_tolerant(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::io(format!("cannot create data directory {}", dir.display()), e)
            })?;
        }
        let (writer, damaged) = match open_writer(path) {
            Ok(w) => (w, None),
            Err(Error::DatabaseDamaged(d)) => {
                let why = damage::damage_at(path, &d.detail);
                tracing::error!(error = %why, "database damaged");
                (Connection::open_in_memory()?, Some(why))
            }
            Err(e) => return Err(e),
        };
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(ReaderPool {
                epoch: 0,
                idle: Vec::new(),
            }),
            writes_closed: std::sync::atomic::AtomicBool::new(false),
            counts: Mutex::new(None),
            damaged: Mutex::new(damaged),
            writes_fenced: std::sync::atomic::AtomicBool::new(false),
            capture: changes::Capture::default(),
            change_hook: Mutex::new(None),
            allowed: Default::default(),
            embedding_text: Mutex::new(None),
        })
    }

    /// Closes the database file, runs `f` (which may replace the file on disk), then opens the
    /// file again, whatever `f` returned. Writers wait meanwhile; readers in flight finish on
    /// the old file and their connections are discarded.
    pub fn with_file_replaced<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut writer = self.writer.lock().map_err(|_| poisoned())?;
        // A file known to be damaged is not touched (its writer is closed already); another
        // may refuse the checkpoint, and the swap goes ahead regardless.
        if self.damaged().is_none()
            && let Err(e) = writer.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        {
            tracing::warn!(error = %e, "checkpoint before replacing the database failed");
        }
        self.close_file(&mut writer)?;
        let out = f();
        // Whatever is on disk now decides: a good file clears the damage, a damaged one (a
        // rolled-back restore of a damaged database) keeps the store closed.
        let reopened = open_writer(&self.path);
        let mut damaged = self.damaged.lock().map_err(|_| poisoned())?;
        match reopened {
            Ok(w) => {
                *writer = w;
                *damaged = None;
            }
            Err(Error::DatabaseDamaged(d)) => {
                *damaged = Some(damage::damage_at(&self.path, &d.detail));
            }
            Err(e) => return Err(e),
        }
        out
    }

    /// Closes every connection to the file: the writer (an in-memory stand-in takes its place)
    /// and the pooled readers (those in flight are discarded when they come back).
    fn close_file(&self, writer: &mut Connection) -> Result<()> {
        drop(std::mem::replace(writer, Connection::open_in_memory()?));
        self.reset_readers()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers what every write that adds, replaces or removes embeddings calls with the
    /// chunk ids concerned, before it commits.
    pub fn set_change_hook(&self, hook: ChangeHook) -> Result<()> {
        *self.change_hook.lock().map_err(|_| poisoned())? = Some(hook);
        Ok(())
    }

    fn note_changes(&self, ids: &[i64]) -> Result<()> {
        let hook = self.change_hook.lock().map_err(|_| poisoned())?.clone();
        match hook {
            Some(h) if !ids.is_empty() => h(ids),
            _ => Ok(()),
        }
    }

    fn open_reader(&self) -> Result<Connection> {
        self.usable()?;
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        configure(&conn, false)?;
        register_functions(&conn)?;
        Ok(conn)
    }

    /// Runs `f` on a pooled read-only connection.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.usable()?;
        let (epoch, pooled) = {
            let mut pool = self.readers.lock().map_err(|_| poisoned())?;
            (pool.epoch, pool.idle.pop())
        };
        let conn = match pooled {
            Some(c) => c,
            None => self.open_reader()?,
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().map_err(|_| poisoned())?;
        if pool.epoch == epoch && pool.idle.len() < READER_POOL_SIZE {
            pool.idle.push(conn);
        }
        out
    }

    /// Runs `f` in one write transaction and bumps the generation counter that derived data
    /// (the vector index) compares itself against.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().map_err(|_| poisoned())?;
        // Checked under the writer lock, so no transaction starts after `close_writes` returns.
        if self.writes_closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Unavailable(
                "the server is shutting down; nothing was written".into(),
            ));
        }
        self.usable()?;
        if self.writes_fenced.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::RestoreInProgress(
                "a restore is running: writes are refused until it ends (nothing was written); \
                 retry after it finishes (GET /admin/restores/{id} follows it)"
                    .into(),
            ));
        }
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'",
            [],
        )?;
        tx.commit()?;
        Ok(out)
    }

    /// Refuses every later write transaction; returns once the one in progress (if any) has
    /// committed or rolled back. Used at shutdown, after the grace period.
    pub fn close_writes(&self) -> Result<()> {
        let _conn = self.writer.lock().map_err(|_| poisoned())?;
        self.writes_closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Runs `f` on the writer connection outside a transaction (backup, checkpoint, pragmas).
    pub fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        self.usable()?;
        let mut conn = self.writer.lock().map_err(|_| poisoned())?;
        f(&mut conn)
    }

    pub fn generation(&self) -> Result<u64> {
        self.read(|c| {
            let v: String =
                c.query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                    r.get(0)
                })?;
            v.parse::<u64>()
                .map_err(|e| Error::Integrity(format!("meta.generation is not a number: {e}")))
        })
    }

    /// The content hash stored for `source`, if the document exists.
    pub fn hash_of_source(&self, source: &str) -> Result<Option<(String, String)>> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT id, content_hash FROM documents WHERE source = ?1")?
                    .query_row([source], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?,
            )
        })
    }

    /// Inserts or replaces one document with all its chunks in a single transaction: a crash
    /// leaves either the old version or the new one, never half of either.
    #[tracing::instrument(name = "store_document", level = "debug", skip_all, fields(source = %doc.source, chunks = chunks.len()))]
    pub fn put_document(
        &self,
        doc: &DocumentRecord,
        chunks: &[NewChunk],
        model: &str,
    ) -> Result<WriteOutcome> {
        self.write(|tx| {
            let mut outcome = WriteOutcome::default();
            {
                let mut old = tx.prepare_cached("SELECT id FROM chunks WHERE document_id = ?1")?;
                outcome.removed_chunk_ids = old
                    .query_map([&doc.id], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()?;
            }
            delete_fts_rows(tx, &outcome.removed_chunk_ids)?;
            tx.execute("DELETE FROM chunks WHERE document_id = ?1", [&doc.id])?;
            tx.prepare_cached(
                "INSERT INTO documents (id, source, title, extension, mime, doc_type, size_bytes,
                    modified_at, content_hash, char_count, word_count, line_count, chunk_count,
                    metadata, format_metadata, ingested_at, updated_at)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)
                 ON CONFLICT(id) DO UPDATE SET source=excluded.source, title=excluded.title,
                    extension=excluded.extension, mime=excluded.mime, doc_type=excluded.doc_type,
                    size_bytes=excluded.size_bytes, modified_at=excluded.modified_at,
                    content_hash=excluded.content_hash, char_count=excluded.char_count,
                    word_count=excluded.word_count, line_count=excluded.line_count,
                    chunk_count=excluded.chunk_count, metadata=excluded.metadata,
                    format_metadata=excluded.format_metadata, updated_at=excluded.updated_at",
            )?
            .execute(params![
                doc.id,
                doc.source,
                doc.title,
                doc.extension,
                doc.mime,
                doc.doc_type,
                doc.size_bytes,
                doc.modified_at,
                doc.content_hash,
                doc.char_count,
                doc.word_count,
                doc.line_count,
                chunks.len() as i64,
                doc.metadata.to_string(),
                doc.format_metadata.to_string(),
                doc.ingested_at,
                doc.updated_at,
            ])?;
            let mut ins_chunk = tx.prepare_cached(
                "INSERT INTO chunks (document_id, chunk_index, section_path, text, content_start,
                    doc_start, doc_end, token_count) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            )?;
            let mut ins_fts = tx.prepare_cached(
                "INSERT INTO chunks_fts (rowid, text, title, section) VALUES (?1,?2,?3,?4)",
            )?;
            let mut ins_emb = tx.prepare_cached(
                "INSERT INTO embeddings (chunk_id, model, vector) VALUES (?1,?2,?3)",
            )?;
            for (i, c) in chunks.iter().enumerate() {
                let section =
                    serde_json::to_string(&c.section_path).unwrap_or_else(|_| "[]".into());
                ins_chunk.execute(params![
                    doc.id,
                    i as i64,
                    section,
                    c.text,
                    c.content_start as i64,
                    c.doc_start as i64,
                    c.doc_end as i64,
                    c.token_count as i64
                ])?;
                let id = tx.last_insert_rowid();
                ins_fts.execute(params![
                    id,
                    c.text,
                    doc.title.as_deref().unwrap_or(""),
                    c.section_path.join(" / ")
                ])?;
                if let Some(v) = &c.embedding {
                    ins_emb.execute(params![id, model, vector_to_blob(v)])?;
                    outcome.added.push((id, v.clone()));
                }
            }
            if !outcome.added.is_empty() {
                self.note_embedding_text(tx)?;
            }
            changes::record_put(self, tx, doc, chunks, model)?;
            // Chunk ids are reused (rowids), so an added id may also be a removed one.
            let mut changed = outcome.removed_chunk_ids.clone();
            changed.extend(outcome.added.iter().map(|(id, _)| *id));
            self.note_changes(&changed)?;
            Ok(outcome)
        })
    }

    /// Deletes a document; returns the ids of its chunks (for the vector index).
    pub fn delete_document(&self, id: &str) -> Result<Vec<i64>> {
        self.write(|tx| {
            let ids: Vec<i64> = tx
                .prepare_cached("SELECT id FROM chunks WHERE document_id = ?1")?
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            delete_fts_rows(tx, &ids)?;
            let n = tx.execute("DELETE FROM documents WHERE id = ?1", [id])?;
            if n == 0 {
                return Err(Error::NotFound(format!("document {id}")));
            }
            changes::record_delete(self, tx, id)?;
            self.note_changes(&ids)?;
            Ok(ids)
        })
    }

    pub fn get_document(&self, id: &str) -> Result<DocumentRecord> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {DOC_COLUMNS} FROM documents WHERE id = ?1"
            ))?
            .query_row([id], document_from_row)
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("document {id}")))
        })
    }

    pub fn list_documents(&self, offset: usize, limit: usize) -> Result<Vec<DocumentRecord>> {
        self.read(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {DOC_COLUMNS} FROM documents ORDER BY source LIMIT ?1 OFFSET ?2"
            ))?
            .query_map(params![limit as i64, offset as i64], document_from_row)?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn chunks_of(&self, document_id: &str) -> Result<Vec<ChunkRecord>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT id, document_id, chunk_index, section_path, text, token_count
                 FROM chunks WHERE document_id = ?1 ORDER BY chunk_index",
            )?
            .query_map([document_id], chunk_from_row)?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn stats(&self) -> Result<StoreStats> {
        let bytes = ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", self.path.display())).ok())
            .map(|m| m.len())
            .sum();
        let epoch = self.readers.lock().map_err(|_| poisoned())?.epoch;
        self.read(|c| {
            // One snapshot, so the generation read names exactly the state that was counted.
            let tx = c.unchecked_transaction()?;
            let count = |sql: &str| -> Result<i64> { Ok(tx.query_row(sql, [], |r| r.get(0))?) };
            let generation: String =
                tx.query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                    r.get(0)
                })?;
            let cached = self
                .counts
                .lock()
                .map_err(|_| poisoned())?
                .clone()
                .filter(|k| k.epoch == epoch && k.generation == generation);
            let counts = match cached {
                Some(k) => k,
                None => {
                    let fresh = CachedCounts {
                        epoch,
                        generation,
                        documents: count("SELECT count(*) FROM documents")?,
                        chunks: count("SELECT count(*) FROM chunks")?,
                        embeddings: count("SELECT count(*) FROM embeddings")?,
                    };
                    *self.counts.lock().map_err(|_| poisoned())? = Some(fresh.clone());
                    fresh
                }
            };
            Ok(StoreStats {
                documents: counts.documents,
                chunks: counts.chunks,
                embeddings: counts.embeddings,
                database_bytes: bytes,
                schema_version: count("PRAGMA user_version")?,
            })
        })
    }

    /// Up to `limit` chunks after chunk id `after`, in id order, with what embedding them
    /// takes: those without an embedding of `model` (ingested while the model was down), or
    /// with `missing_only` false every chunk (a re-embedding).
    pub fn chunks_to_embed(
        &self,
        model: &str,
        after: i64,
        limit: usize,
        missing_only: bool,
    ) -> Result<Vec<ChunkToEmbed>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT c.id, c.text, c.section_path, d.title FROM chunks c
                   JOIN documents d ON d.id = c.document_id
                   LEFT JOIN embeddings e ON e.chunk_id = c.id AND e.model = ?1
                 WHERE c.id > ?2 AND (e.chunk_id IS NULL OR NOT ?4)
                 ORDER BY c.id LIMIT ?3",
            )?
            .query_map(params![model, after, limit as i64, missing_only], |r| {
                let path: String = r.get(2)?;
                Ok(ChunkToEmbed {
                    id: r.get(0)?,
                    text: r.get(1)?,
                    section_path: serde_json::from_str(&path).unwrap_or_default(),
                    title: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn put_embeddings(&self, model: &str, vectors: &[(i64, Vec<f32>)]) -> Result<()> {
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO embeddings (chunk_id, model, vector) VALUES (?1,?2,?3)",
            )?;
            for (id, v) in vectors {
                stmt.execute(params![id, model, vector_to_blob(v)])?;
            }
            if !vectors.is_empty() {
                self.note_embedding_text(tx)?;
            }
            let ids: Vec<i64> = vectors.iter().map(|(id, _)| *id).collect();
            self.note_changes(&ids)
        })
    }

    /// Names how this process makes embedding input, for the meta record.
    pub fn set_embedding_text(&self, name: &str) -> Result<()> {
        *self.embedding_text.lock().map_err(|_| poisoned())? = Some(name.to_string());
        Ok(())
    }

    /// Records the input recipe with the first stored vector; later writes keep the record (a
    /// different recipe is reported by `check`, and `repair --reembed` rewrites it).
    fn note_embedding_text(&self, tx: &Transaction) -> Result<()> {
        let name = self.embedding_text.lock().map_err(|_| poisoned())?.clone();
        if let Some(name) = name {
            tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                [EMBEDDING_TEXT_KEY, name.as_str()],
            )?;
        }
        Ok(())
    }

    /// A value of the meta table.
    pub fn meta_value(&self, key: &str) -> Result<Option<String>> {
        self.read(|c| changes::meta_get(c, key))
    }

    /// Sets a meta value that describes the data rather than changes it: without a
    /// generation bump, so the saved vector index stays current.
    pub fn record_meta(&self, key: &str, value: &str) -> Result<()> {
        self.usable()?;
        self.with_writer(|c| changes::set_meta(c, key, value))
    }

    /// Rebuilds the FTS index from the chunk table.
    pub fn rebuild_fts(&self) -> Result<usize> {
        self.write(|tx| {
            // Recreated rather than emptied: a damaged FTS index may not survive a DELETE.
            tx.execute_batch(&format!("DROP TABLE IF EXISTS chunks_fts; {};", schema::CREATE_FTS))?;
            let n = tx.execute(
                "INSERT INTO chunks_fts (rowid, text, title, section)
                 SELECT c.id, c.text, coalesce(d.title, ''),
                        coalesce((SELECT group_concat(value, ' / ') FROM json_each(c.section_path)), '')
                 FROM chunks c JOIN documents d ON d.id = c.document_id",
                [],
            )?;
            // Documents' recorded chunk counts are source data: where they disagree with the
            // chunk table, chunks were lost, and rewriting the counts would hide that.
            Ok(n)
        })
    }

    /// Moves the WAL into the main file and truncates it (on shutdown). Idle readers are
    /// closed first; a reader still busy makes SQLite report the checkpoint incomplete, so it
    /// is retried briefly.
    pub fn checkpoint(&self) -> Result<()> {
        if self.damaged().is_some() {
            // closed already; a damaged file is left as it is for the restore to set aside
            return Ok(());
        }
        self.reset_readers()?;
        // `optimize` may write statistics, so it runs before the checkpoint, not after.
        self.with_writer(|c| Ok(c.execute_batch("PRAGMA optimize")?))?;
        for _ in 0..40 {
            let busy: i64 = self.with_writer(|c| {
                Ok(c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?)
            })?;
            if busy == 0 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        tracing::warn!("WAL checkpoint stayed busy; the WAL will be replayed at the next start");
        Ok(())
    }

    /// Drops pooled readers (after the file changed underneath them).
    pub fn reset_readers(&self) -> Result<()> {
        let mut pool = self.readers.lock().map_err(|_| poisoned())?;
        pool.epoch += 1;
        pool.idle.clear();
        Ok(())
    }
}

fn open_writer(path: &Path) -> Result<Connection> {
    let mut writer = Connection::open(path)?;
    configure(&writer, true)?;
    register_functions(&writer)?;
    schema::migrate(&mut writer)?;
    Ok(writer)
}

fn delete_fts_rows(tx: &Transaction, ids: &[i64]) -> Result<()> {
    let mut stmt = tx.prepare_cached("DELETE FROM chunks_fts WHERE rowid = ?1")?;
    for id in ids {
        stmt.execute([id])?;
    }
    Ok(())
}

fn poisoned() -> Error {
    Error::Internal("a database connection lock was poisoned by a panic".into())
}

pub const DOC_COLUMNS: &str = "id, source, title, extension, mime, doc_type, size_bytes, modified_at, content_hash,
    char_count, word_count, line_count, chunk_count, metadata, format_metadata, ingested_at, updated_at";

pub fn document_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DocumentRecord> {
    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
        let s: String = r.get(i)?;
        Ok(serde_json::from_str(&s).unwrap_or(serde_json::Value::Null))
    };
    Ok(DocumentRecord {
        id: r.get(0)?,
        source: r.get(1)?,
        title: r.get(2)?,
        extension: r.get(3)?,
        mime: r.get(4)?,
        doc_type: r.get(5)?,
        size_bytes: r.get(6)?,
        modified_at: r.get(7)?,
        content_hash: r.get(8)?,
        char_count: r.get(9)?,
        word_count: r.get(10)?,
        line_count: r.get(11)?,
        chunk_count: r.get(12)?,
        metadata: json(13)?,
        format_metadata: json(14)?,
        ingested_at: r.get(15)?,
        updated_at: r.get(16)?,
    })
}

fn chunk_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChunkRecord> {
    let section: String = r.get(3)?;
    Ok(ChunkRecord {
        id: r.get(0)?,
        document_id: r.get(1)?,
        chunk_index: r.get(2)?,
        section_path: serde_json::from_str(&section).unwrap_or_default(),
        text: r.get(4)?,
        token_count: r.get(5)?,
    })
}

pub fn vector_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn blob_to_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests;
