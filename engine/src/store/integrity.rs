//! Integrity checks of the database: SQLite's own check, the source tables' agreement with each
//! other (documents, chunks, embeddings) and the full-text index's agreement with the chunks.
//!
//! Problems come in two kinds. Damage to *derived* data (the full-text index, the vector index,
//! missing embeddings of existing chunks) is rebuilt by `repair`. Damage to *source* data (pages
//! SQLite cannot read, chunks missing against their document's recorded count, embeddings or
//! chunks whose owner is gone) cannot be rebuilt from anything: the report then says
//! `source_damaged` and recommends a restore, with the command.

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::Store;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntegrityReport {
    pub ok: bool,
    /// Problems found, each a sentence; empty when `ok`.
    pub problems: Vec<String>,
    pub documents: i64,
    pub chunks: i64,
    pub fts_rows: i64,
    pub embeddings: i64,
    /// The damage is in source data that `repair` cannot rebuild: restore from a backup.
    #[serde(default)]
    pub source_damaged: bool,
    /// What to do about the problems, when there are any.
    #[serde(default)]
    pub advice: Option<String>,
    /// Worth knowing but not a problem (`ok` stays true), each with what to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// How thorough a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckLevel {
    /// `PRAGMA quick_check` and the row-count comparisons: run at every start, before the
    /// engine reports ready.
    Quick,
    /// `PRAGMA integrity_check` (also checks indexes against tables) and FTS5's own check:
    /// the periodic and on-demand check.
    Full,
}

impl IntegrityReport {
    /// Sets `ok` and the advice from the problems found.
    fn conclude(mut self, data_dir: Option<&std::path::Path>) -> Self {
        self.ok = self.problems.is_empty();
        self.advice = if self.source_damaged {
            Some(format!(
                "source data is damaged; {}",
                crate::error::restore_advice(data_dir)
            ))
        } else if !self.ok {
            Some(
                "only derived data is damaged: `instant-db repair` (or POST /admin/repair) \
                 rebuilds it"
                    .into(),
            )
        } else {
            None
        };
        if let Some(a) = self.advice.as_ref().filter(|_| self.source_damaged) {
            // also in the list, which is what health reasons and `repair` show
            self.problems.push(a.clone());
        }
        self
    }

    /// Another problem of derived data (e.g. the vector index), found outside the store.
    pub fn add_derived_problem(&mut self, problem: String, data_dir: Option<&std::path::Path>) {
        self.problems.retain(|p| Some(p) != self.advice.as_ref());
        self.problems.push(problem);
        *self = self.clone().conclude(data_dir);
    }
}

impl Store {
    /// The full check (see [`CheckLevel::Full`]).
    pub fn integrity_check(&self) -> Result<IntegrityReport> {
        self.integrity_check_at(CheckLevel::Full)
    }

    /// SQLite's page-level check plus the tables' consistency with each other.
    pub fn integrity_check_at(&self, level: CheckLevel) -> Result<IntegrityReport> {
        let data_dir = self.path.parent().map(std::path::Path::to_path_buf);
        // A fresh connection: a pooled one may answer from its page cache and miss damage on disk.
        // FTS5's own check is spelled as an INSERT: on a second connection it would take the
        // write lock beside the writer's, and one of them would wait out its busy timeout and
        // fail (an ingest, on a large corpus). On the writer connection, writes wait for it
        // on the writer mutex instead and none fails.
        check_database(data_dir.as_deref(), level, &|| self.open_reader(), &|| {
            self.with_writer(|c| Ok(c.execute_batch(FTS_CHECK)?))
        })
    }
}

/// The check of a database file that is not the live one (a backup unpacked in scratch space
/// by verification): opened read-only and never migrated, so what is checked is what the
/// archive holds. The advice names no data directory (the scratch copy is thrown away).
pub fn check_file(path: &std::path::Path, level: CheckLevel) -> Result<IntegrityReport> {
    // nobody writes to a scratch copy: its own read-write connection is fine
    let fts = || -> Result<()> {
        let rw = Connection::open(path)?;
        rw.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(rw.execute_batch(FTS_CHECK)?)
    };
    check_database(None, level, &fts_reader(path), &fts)
}

const FTS_CHECK: &str = "INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')";

fn fts_reader(path: &std::path::Path) -> impl Fn() -> Result<Connection> + '_ {
    move || {
        let c = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(c)
    }
}

fn check_database(
    data_dir: Option<&std::path::Path>,
    level: CheckLevel,
    fresh: &dyn Fn() -> Result<Connection>,
    fts_check: &dyn Fn() -> Result<()>,
) -> Result<IntegrityReport> {
    {
        (|| -> Result<IntegrityReport> {
            let c = &fresh()?;
            let mut problems = Vec::new();
            let mut source_damaged = false;
            let pragma = match level {
                CheckLevel::Quick => "PRAGMA quick_check",
                CheckLevel::Full => "PRAGMA integrity_check",
            };
            let mut stmt = c.prepare(pragma)?;
            let lines: Vec<String> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if lines != ["ok"] {
                source_damaged = true;
                problems.extend(lines.into_iter().take(20).map(|l| format!("sqlite: {l}")));
            }
            let count = |sql: &str| -> Result<i64> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
            let documents = count("SELECT count(*) FROM documents")?;
            let chunks = count("SELECT count(*) FROM chunks")?;
            let fts_rows = count("SELECT count(*) FROM chunks_fts")?;
            let embeddings = count("SELECT count(*) FROM embeddings")?;

            // Source tables against each other.
            let (missing, short_docs): (i64, i64) = c.query_row(
                "SELECT coalesce(sum(recorded - have), 0), count(*) FROM
                   (SELECT d.chunk_count AS recorded,
                           (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS have
                      FROM documents d)
                  WHERE recorded > have",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if missing > 0 {
                source_damaged = true;
                problems.push(format!(
                    "{missing} chunks are missing: {short_docs} documents record more chunks than \
                     the chunk table holds (their content is lost)"
                ));
            }
            // Rows whose owner is gone, or owners that hold more than they record.
            for (sql, what) in [
                (
                    "SELECT count(*) FROM documents d WHERE d.chunk_count <
                       (SELECT count(*) FROM chunks c WHERE c.document_id = d.id)",
                    "documents hold more chunks than they record",
                ),
                (
                    "SELECT count(*) FROM chunks c LEFT JOIN documents d ON d.id = c.document_id
                      WHERE d.id IS NULL",
                    "chunks belong to no document (their document rows are missing)",
                ),
                (
                    "SELECT count(*) FROM embeddings e LEFT JOIN chunks c ON c.id = e.chunk_id
                      WHERE c.id IS NULL",
                    "embeddings belong to no chunk (their chunks are missing)",
                ),
            ] {
                let n = count(sql)?;
                if n > 0 {
                    source_damaged = true;
                    problems.push(format!("{n} {what}"));
                }
            }

            // Derived data.
            if fts_rows != chunks {
                problems.push(format!("full-text index has {fts_rows} rows for {chunks} chunks"));
            }
            let orphans = count(
                "SELECT count(*) FROM chunks_fts f LEFT JOIN chunks c ON c.id = f.rowid WHERE c.id IS NULL",
            )?;
            if orphans > 0 {
                problems.push(format!("{orphans} full-text rows point at no chunk"));
            }
            if level == CheckLevel::Full
                && let Err(e) = fts_check()
            {
                problems.push(format!("fts5 integrity-check: {e}"));
            }
            Ok(IntegrityReport {
                ok: false,
                problems,
                documents,
                chunks,
                fts_rows,
                embeddings,
                source_damaged,
                advice: None,
                notes: vec![],
            }
            .conclude(data_dir))
        })()
        .or_else(|e| match e {
            // A damaged file often fails before any query returns: that is a failed check,
            // not an error of the checker.
            Error::Database(_) | Error::DatabaseDamaged(_) => Ok(IntegrityReport {
                ok: false,
                problems: vec![format!(
                    "sqlite: {}",
                    match &e {
                        Error::DatabaseDamaged(d) => d.detail.clone(),
                        other => other.to_string(),
                    }
                )],
                documents: 0,
                chunks: 0,
                fts_rows: 0,
                embeddings: 0,
                source_damaged: true,
                advice: None,
                notes: vec![],
            }
            .conclude(data_dir)),
            other => Err(other),
        })
    }
}

impl Store {
    /// Chunk ids with a stored embedding of `model` with `dimensions` values.
    pub fn embedding_ids(&self, model: &str, dimensions: usize) -> Result<Vec<i64>> {
        self.read(|c| {
            Ok(c.prepare(
                "SELECT chunk_id FROM embeddings WHERE model = ?1 AND length(vector) = ?2",
            )?
            .query_map(rusqlite::params![model, (dimensions * 4) as i64], |r| {
                r.get(0)
            })?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Stored embeddings of `model` with `dimensions` values (what the vector index should hold).
    pub fn embedding_count(&self, model: &str, dimensions: usize) -> Result<i64> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM embeddings WHERE model = ?1 AND length(vector) = ?2",
                rusqlite::params![model, (dimensions * 4) as i64],
                |r| r.get(0),
            )?)
        })
    }
}
