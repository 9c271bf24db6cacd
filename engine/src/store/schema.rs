//! Versioned schema migrations. Each entry runs once, in its own transaction, and bumps
//! `PRAGMA user_version`; a database newer than this engine is refused rather than guessed at.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// The full-text table; also used to recreate it on repair.
pub const CREATE_FTS: &str = "CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text, title, section, tokenize = 'porter unicode61 remove_diacritics 2'
    )";

const MIGRATIONS: &[&str] = &[
    // 1: documents, chunks, embeddings, FTS5 and a generation counter for derived data.
    r#"
    CREATE TABLE documents (
        id             TEXT PRIMARY KEY,
        source         TEXT NOT NULL UNIQUE,
        title          TEXT,
        extension      TEXT,
        mime           TEXT,
        doc_type       TEXT NOT NULL,
        size_bytes     INTEGER NOT NULL,
        modified_at    TEXT,
        content_hash   TEXT NOT NULL,
        char_count     INTEGER NOT NULL,
        word_count     INTEGER NOT NULL,
        line_count     INTEGER NOT NULL,
        chunk_count    INTEGER NOT NULL,
        metadata       TEXT NOT NULL DEFAULT '{}',
        format_metadata TEXT NOT NULL DEFAULT '{}',
        ingested_at    TEXT NOT NULL,
        updated_at     TEXT NOT NULL
    );
    CREATE TABLE chunks (
        id            INTEGER PRIMARY KEY,
        document_id   TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        chunk_index   INTEGER NOT NULL,
        section_path  TEXT NOT NULL DEFAULT '[]',
        text          TEXT NOT NULL,
        content_start INTEGER NOT NULL,
        doc_start     INTEGER NOT NULL,
        doc_end       INTEGER NOT NULL,
        token_count   INTEGER NOT NULL,
        UNIQUE (document_id, chunk_index)
    );
    CREATE TABLE embeddings (
        chunk_id  INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
        model     TEXT NOT NULL,
        vector    BLOB NOT NULL
    );
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text, title, section, tokenize = 'porter unicode61 remove_diacritics 2'
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('generation', '0');
    CREATE INDEX documents_doc_type ON documents(doc_type);
    CREATE INDEX documents_extension ON documents(extension);
    "#,
    // 2 (additive): the change log of continuous archiving (`store::changes`). Older engines
    // never see it (a newer schema is refused); older files gain an empty log.
    r#"
    CREATE TABLE changes (
        seq          INTEGER PRIMARY KEY,
        committed_at TEXT NOT NULL,
        op           TEXT NOT NULL,
        document_id  TEXT NOT NULL,
        bytes        INTEGER NOT NULL,
        payload      TEXT
    );
    "#,
];

pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > latest_version() {
        return Err(Error::Conflict(format!(
            "the database has schema version {current}, newer than this engine's {}; upgrade instant-db",
            latest_version()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        // IMMEDIATE: the write lock is taken first (waiting out the busy timeout), and the
        // version is read again under it, so processes opening a new file at once migrate it
        // once; a deferred transaction would fail to upgrade its lock ("database is locked")
        // or apply a migration another process has just applied ("table already exists").
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now >= version {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}
