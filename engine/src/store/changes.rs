//! The change log behind continuous archiving (see `docs/archiving.md`).
//!
//! Every document write appends one row to `changes` in the same transaction that changes the
//! document, so a change is never committed without its row and a rolled-back write leaves
//! none. A put row carries the whole document as it was written (record, chunks, embeddings):
//! the live tables only hold the newest version, and replaying an archive to a point between
//! two versions needs the older one. The archiver ships rows after `archive_shipped_seq` and
//! prunes them once shipped; the newest row is always kept, so a snapshot of the file says
//! which change it contains (its largest `seq`) and when that change was committed.

use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::{DocumentRecord, NewChunk, Store};
use crate::error::{Error, Result};

/// `meta` key naming the archive generation this file's change log belongs to.
pub const GENERATION_KEY: &str = "archive_generation";
/// `meta` key holding the last `seq` known to be in the archive.
pub const SHIPPED_KEY: &str = "archive_shipped_seq";
/// `meta` keys describing the generation's start: changes up to `archive_base_seq` are in the
/// base; `archive_started_empty` is 1 when the file held no document then.
pub const BASE_SEQ_KEY: &str = "archive_base_seq";
pub const STARTED_AT_KEY: &str = "archive_started_at";
pub const STARTED_EMPTY_KEY: &str = "archive_started_empty";

/// How the file's archive generation began (for its marker object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationStart {
    pub generation: String,
    pub started_at: String,
    pub base_seq: i64,
    pub started_empty: bool,
}

/// The start of the file's generation, if it belongs to one.
pub fn generation_start(c: &Connection) -> Result<Option<GenerationStart>> {
    let Some(generation) = meta_get(c, GENERATION_KEY)? else {
        return Ok(None);
    };
    Ok(Some(GenerationStart {
        generation,
        started_at: meta_get(c, STARTED_AT_KEY)?.unwrap_or_default(),
        base_seq: meta_get(c, BASE_SEQ_KEY)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        started_empty: meta_get(c, STARTED_EMPTY_KEY)?.as_deref() == Some("1"),
    }))
}

/// Makes the file the start of `generation`: everything it holds now is the base. Returns the
/// base seq.
pub fn begin_generation(tx: &Transaction, generation: &str) -> Result<i64> {
    let last: i64 = tx.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
        r.get(0)
    })?;
    let documents: i64 = tx.query_row("SELECT count(*) FROM documents", [], |r| r.get(0))?;
    set_meta(tx, GENERATION_KEY, generation)?;
    set_meta(tx, SHIPPED_KEY, &last.to_string())?;
    set_meta(tx, BASE_SEQ_KEY, &last.to_string())?;
    set_meta(tx, STARTED_AT_KEY, &format_time(chrono::Utc::now()))?;
    set_meta(
        tx,
        STARTED_EMPTY_KEY,
        if documents == 0 { "1" } else { "0" },
    )?;
    prune(tx, last)?;
    Ok(last)
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Put,
    Delete,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Result<Op> {
        match s {
            "put" => Ok(Op::Put),
            "delete" => Ok(Op::Delete),
            other => Err(Error::Integrity(format!(
                "change log: unknown operation {other:?}"
            ))),
        }
    }
}

/// A chunk as a put change carries it (the embedding too, so a replay needs no model and
/// gives back exactly the vectors the writer had).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkPayload {
    pub section_path: Vec<String>,
    pub text: String,
    pub content_start: usize,
    pub doc_start: usize,
    pub doc_end: usize,
    pub token_count: usize,
    /// Hex of the little-endian f32s, as the `embeddings` table stores them: exact, and much
    /// cheaper to write than JSON numbers (this runs inside every write transaction).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_vector")]
    pub embedding: Option<Vec<f32>>,
}

mod hex_vector {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<f32>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&hex::encode(crate::store::vector_to_blob(v))),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f32>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom(
                "an embedding is not a whole number of f32s",
            ));
        }
        Ok(Some(crate::store::blob_to_vector(&bytes)))
    }
}

impl From<&NewChunk> for ChunkPayload {
    fn from(c: &NewChunk) -> Self {
        ChunkPayload {
            section_path: c.section_path.clone(),
            text: c.text.clone(),
            content_start: c.content_start,
            doc_start: c.doc_start,
            doc_end: c.doc_end,
            token_count: c.token_count,
            embedding: c.embedding.clone(),
        }
    }
}

impl From<ChunkPayload> for NewChunk {
    fn from(c: ChunkPayload) -> Self {
        NewChunk {
            section_path: c.section_path,
            text: c.text,
            content_start: c.content_start,
            doc_start: c.doc_start,
            doc_end: c.doc_end,
            token_count: c.token_count,
            embedding: c.embedding,
        }
    }
}

/// The content of a put change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutPayload {
    pub document: DocumentRecord,
    pub model: String,
    pub chunks: Vec<ChunkPayload>,
}

/// One row of the change log.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub seq: i64,
    /// RFC 3339, microseconds, UTC.
    pub committed_at: String,
    pub op: Op,
    pub document_id: String,
    /// JSON of a [`PutPayload`] for puts.
    pub payload: Option<String>,
    /// Size of the payload, for the buffer bound.
    pub bytes: i64,
}

/// The change log as the archiver sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeLogState {
    pub generation: Option<String>,
    pub shipped_seq: i64,
    /// Largest `seq` in the file (0 when the log is empty).
    pub last_seq: i64,
    /// Rows after `shipped_seq`.
    pub pending: i64,
    pub pending_bytes: i64,
    /// Commit time of the oldest row after `shipped_seq`.
    pub oldest_pending_at: Option<String>,
}

/// Whether writes are captured, and what an uncaptured write must undo first.
#[derive(Debug, Default)]
pub(super) struct Capture {
    enabled: AtomicBool,
    /// Set once an uncaptured write has detached the file from its archive generation in this
    /// process, so later ones skip the statement.
    detached: AtomicBool,
}

/// The time format of `committed_at` (sorts as text, parses as RFC 3339).
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Capture {
    /// Called in the write transaction of every document change.
    fn on_write(
        &self,
        tx: &Transaction,
        op: Op,
        document_id: &str,
        payload: impl FnOnce() -> Result<String>,
    ) -> Result<()> {
        if self.enabled.load(Ordering::SeqCst) {
            let payload = match op {
                Op::Put => Some(payload()?),
                Op::Delete => None,
            };
            let bytes = payload.as_ref().map_or(0, |p| p.len() as i64) + document_id.len() as i64;
            tx.prepare_cached(
                "INSERT INTO changes (committed_at, op, document_id, bytes, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                format_time(chrono::Utc::now()),
                op.as_str(),
                document_id,
                bytes,
                payload
            ])?;
        } else if !self.detached.load(Ordering::SeqCst) {
            // A write the archive does not see breaks the chain of its generation: the next
            // archiver run starts a new one (which needs a new base snapshot) instead of
            // shipping a history with a hole in it.
            tx.execute("DELETE FROM meta WHERE key = ?1", [GENERATION_KEY])?;
            self.detached.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

pub(super) fn record_put(
    store: &Store,
    tx: &Transaction,
    doc: &DocumentRecord,
    chunks: &[NewChunk],
    model: &str,
) -> Result<()> {
    store.capture.on_write(tx, Op::Put, &doc.id, || {
        let payload = PutPayload {
            document: doc.clone(),
            model: model.to_string(),
            chunks: chunks.iter().map(ChunkPayload::from).collect(),
        };
        serde_json::to_string(&payload).map_err(|e| Error::Internal(e.to_string()))
    })
}

pub(super) fn record_delete(store: &Store, tx: &Transaction, id: &str) -> Result<()> {
    store
        .capture
        .on_write(tx, Op::Delete, id, || Ok(String::new()))
}

pub(super) fn meta_get(c: &Connection, key: &str) -> Result<Option<String>> {
    Ok(
        c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?,
    )
}

/// Whether a file has the change log table (schema 2 on; a staged snapshot may be older).
pub fn has_change_log(c: &Connection) -> Result<bool> {
    Ok(c.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'changes'",
        [],
        |r| r.get(0),
    )?)
}

/// The change log state of an open connection (also a staged snapshot's).
pub fn state_of(c: &Connection) -> Result<ChangeLogState> {
    let generation = meta_get(c, GENERATION_KEY)?;
    let shipped_seq = meta_get(c, SHIPPED_KEY)?
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let last_seq: i64 = c.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
        r.get(0)
    })?;
    let (pending, pending_bytes, oldest_pending_at) = c.query_row(
        "SELECT count(*), coalesce(sum(bytes), 0), min(committed_at) FROM changes WHERE seq > ?1",
        [shipped_seq],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(ChangeLogState {
        generation,
        shipped_seq,
        last_seq,
        pending,
        pending_bytes,
        oldest_pending_at,
    })
}

/// The newest change a file holds: (seq, commit time); `None` when its log is empty.
pub fn newest_change(c: &Connection) -> Result<Option<(i64, String)>> {
    Ok(c.query_row(
        "SELECT seq, committed_at FROM changes ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

/// Detaches a file from its archive generation (a restored file starts a new one): the
/// generation, the shipped position and every change row go.
pub fn detach(c: &Connection) -> Result<()> {
    c.execute_batch(&format!(
        "BEGIN; DELETE FROM changes; DELETE FROM meta WHERE key IN ('{GENERATION_KEY}', \
         '{SHIPPED_KEY}', '{BASE_SEQ_KEY}', '{STARTED_AT_KEY}', '{STARTED_EMPTY_KEY}'); COMMIT;"
    ))?;
    Ok(())
}

impl Store {
    /// Turns change capture on (archiving configured) or off.
    pub fn set_change_capture(&self, on: bool) {
        self.capture.enabled.store(on, Ordering::SeqCst);
    }

    pub fn change_log_state(&self) -> Result<ChangeLogState> {
        self.read(state_of)
    }

    /// Up to `max_bytes` of rows after `after` (at least one when there is one), in order.
    pub fn changes_after(&self, after: i64, max_bytes: i64) -> Result<Vec<ChangeRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, committed_at, op, document_id, payload, bytes FROM changes
                 WHERE seq > ?1 ORDER BY seq",
            )?;
            let mut rows = stmt.query([after])?;
            let mut out = Vec::new();
            let mut total = 0;
            while let Some(r) = rows.next()? {
                let op: String = r.get(2)?;
                let row = ChangeRow {
                    seq: r.get(0)?,
                    committed_at: r.get(1)?,
                    op: Op::parse(&op)?,
                    document_id: r.get(3)?,
                    payload: r.get(4)?,
                    bytes: r.get(5)?,
                };
                total += row.bytes;
                out.push(row);
                if total >= max_bytes {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// Starts a new archive generation at the file's current newest change: everything up to
    /// it is in the base (a snapshot), not in the archive. Returns that seq.
    pub fn start_generation(&self, generation: &str) -> Result<i64> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            let last = begin_generation(&tx, generation)?;
            tx.commit()?;
            self.capture.detached.store(false, Ordering::SeqCst);
            Ok(last)
        })
    }

    /// Records that every change up to `seq` of `generation` is in the archive and drops their
    /// rows (but the newest). `Ok(false)`, changing nothing, when the file no longer belongs
    /// to `generation` (it was replaced or detached meanwhile).
    pub fn mark_shipped(&self, generation: &str, seq: i64) -> Result<bool> {
        self.with_writer(|c| {
            let tx = c.transaction()?;
            if meta_get(&tx, GENERATION_KEY)?.as_deref() != Some(generation) {
                return Ok(false);
            }
            set_meta(&tx, SHIPPED_KEY, &seq.to_string())?;
            prune(&tx, seq)?;
            tx.commit()?;
            Ok(true)
        })
    }
}

pub(super) fn set_meta(tx: &Connection, key: &str, value: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// Drops shipped rows up to `seq`, keeping the newest row of the log (see the module doc).
fn prune(tx: &Transaction, seq: i64) -> Result<()> {
    tx.execute(
        "DELETE FROM changes WHERE seq <= ?1 AND seq < (SELECT max(seq) FROM changes)",
        [seq],
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::tests::doc;

    fn chunk(text: &str) -> NewChunk {
        NewChunk {
            section_path: vec!["S".into()],
            text: text.into(),
            content_start: 0,
            doc_start: 0,
            doc_end: text.len(),
            token_count: 2,
            embedding: Some(vec![0.25, -1.5]),
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        store.set_change_capture(true);
        (dir, store)
    }

    #[test]
    fn every_committed_write_has_its_row_and_a_failed_write_has_none() {
        let (_d, store) = open();
        store
            .put_document(&doc("d1", "/a"), &[chunk("one")], "m")
            .unwrap();
        // UNIQUE(source) fails the second write: its transaction, change row included, rolls back
        assert!(
            store
                .put_document(&doc("d2", "/a"), &[chunk("two")], "m")
                .is_err()
        );
        store.delete_document("d1").unwrap();
        let rows = store.changes_after(0, i64::MAX).unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (r.seq, r.op, r.document_id.as_str()))
                .collect::<Vec<_>>(),
            [(1, Op::Put, "d1"), (2, Op::Delete, "d1")]
        );
        let p: PutPayload = serde_json::from_str(rows[0].payload.as_deref().unwrap()).unwrap();
        assert_eq!(p.chunks[0].text, "one");
        assert_eq!(p.chunks[0].embedding.as_deref(), Some(&[0.25f32, -1.5][..]));
        assert_eq!(p.model, "m");
    }

    #[test]
    fn shipping_moves_the_position_and_prunes_all_but_the_newest_row() {
        let (_d, store) = open();
        assert_eq!(store.start_generation("g1").unwrap(), 0);
        for i in 0..3 {
            store
                .put_document(&doc(&format!("d{i}"), &format!("/{i}")), &[chunk("x")], "m")
                .unwrap();
        }
        let s = store.change_log_state().unwrap();
        assert_eq!((s.shipped_seq, s.last_seq, s.pending), (0, 3, 3));
        assert!(s.pending_bytes > 0 && s.oldest_pending_at.is_some());
        assert!(store.mark_shipped("g1", 3).unwrap());
        let s = store.change_log_state().unwrap();
        assert_eq!((s.shipped_seq, s.last_seq, s.pending), (3, 3, 0));
        // the newest row stays: a snapshot says which change it holds and when
        assert_eq!(store.read(newest_change).unwrap().map(|n| n.0), Some(3));
        assert_eq!(
            store
                .read(|c| Ok(
                    c.query_row("SELECT count(*) FROM changes", [], |r| r.get::<_, i64>(0))?
                ))
                .unwrap(),
            1
        );
        // the next change continues the numbering
        store.delete_document("d0").unwrap();
        assert_eq!(store.changes_after(3, i64::MAX).unwrap()[0].seq, 4);
    }

    #[test]
    fn a_position_of_another_generation_changes_nothing() {
        let (_d, store) = open();
        store.start_generation("g1").unwrap();
        store
            .put_document(&doc("d1", "/a"), &[chunk("x")], "m")
            .unwrap();
        assert!(!store.mark_shipped("g0", 1).unwrap());
        assert_eq!(store.change_log_state().unwrap().shipped_seq, 0);
    }

    #[test]
    fn a_write_with_capture_off_detaches_the_file_from_its_generation() {
        let (_d, store) = open();
        store.start_generation("g1").unwrap();
        store
            .put_document(&doc("d1", "/a"), &[chunk("x")], "m")
            .unwrap();
        store.set_change_capture(false);
        assert_eq!(
            store.change_log_state().unwrap().generation.as_deref(),
            Some("g1")
        );
        store
            .put_document(&doc("d2", "/b"), &[chunk("y")], "m")
            .unwrap();
        // the archive never saw d2: its generation must not go on as if it had
        assert_eq!(store.change_log_state().unwrap().generation, None);
        assert_eq!(store.change_log_state().unwrap().last_seq, 1);
    }

    #[test]
    fn a_detached_file_has_no_generation_position_or_rows() {
        let (_d, store) = open();
        store.start_generation("g1").unwrap();
        store
            .put_document(&doc("d1", "/a"), &[chunk("x")], "m")
            .unwrap();
        store.with_writer(|c| detach(c)).unwrap();
        let s = store.change_log_state().unwrap();
        assert_eq!((s.generation, s.shipped_seq, s.last_seq), (None, 0, 0));
    }
}
