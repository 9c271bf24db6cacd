//! Integrity checks of the database: SQLite's own check and the full-text index's agreement
//! with the chunk table.

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
}

impl Store {
    /// SQLite's own page-level check plus the FTS index's consistency with the chunk table.
    pub fn integrity_check(&self) -> Result<IntegrityReport> {
        // A fresh connection: a pooled one may answer from its page cache and miss damage on disk.
        let fresh = || -> Result<Connection> { self.open_reader() };
        (|| -> Result<IntegrityReport> {
            let c = &fresh()?;
            let mut problems = Vec::new();
            let mut stmt = c.prepare("PRAGMA integrity_check")?;
            let lines: Vec<String> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if lines != ["ok"] {
                problems.extend(lines.into_iter().take(20).map(|l| format!("sqlite: {l}")));
            }
            let count = |sql: &str| -> Result<i64> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
            let documents = count("SELECT count(*) FROM documents")?;
            let chunks = count("SELECT count(*) FROM chunks")?;
            let fts_rows = count("SELECT count(*) FROM chunks_fts")?;
            let embeddings = count("SELECT count(*) FROM embeddings")?;
            if fts_rows != chunks {
                problems.push(format!("full-text index has {fts_rows} rows for {chunks} chunks"));
            }
            let orphans = count(
                "SELECT count(*) FROM chunks_fts f LEFT JOIN chunks c ON c.id = f.rowid WHERE c.id IS NULL",
            )?;
            if orphans > 0 {
                problems.push(format!("{orphans} full-text rows point at no chunk"));
            }
            let mismatched = count(
                "SELECT count(*) FROM documents d WHERE d.chunk_count !=
                   (SELECT count(*) FROM chunks c WHERE c.document_id = d.id)",
            )?;
            if mismatched > 0 {
                problems.push(format!("{mismatched} documents have a wrong chunk count"));
            }
            // FTS5's own check is spelled as an INSERT, so it needs a read-write connection;
            // a separate one keeps the writer free while it runs.
            let fts_check = Connection::open(&self.path).and_then(|rw| {
                rw.busy_timeout(std::time::Duration::from_secs(5))?;
                rw.execute_batch("INSERT INTO chunks_fts(chunks_fts) VALUES('integrity-check')")
            });
            if let Err(e) = fts_check {
                problems.push(format!("fts5 integrity-check: {e}"));
            }
            Ok(IntegrityReport {
                ok: problems.is_empty(),
                problems,
                documents,
                chunks,
                fts_rows,
                embeddings,
            })
        })()
        .or_else(|e| match e {
            // A damaged file often fails before any query returns: that is a failed check,
            // not an error of the checker.
            Error::Database(db) => Ok(IntegrityReport {
                ok: false,
                problems: vec![format!("sqlite: {db}")],
                documents: 0,
                chunks: 0,
                fts_rows: 0,
                embeddings: 0,
            }),
            other => Err(other),
        })
    }
}
