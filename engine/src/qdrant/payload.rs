//! What each point carries besides its vector: the chunk's document id and the document fields
//! filters can test, read from SQLite in one statement per chunk.

use std::collections::HashMap;

use qdrant_client::Payload;
use rusqlite::types::ValueRef;

use crate::error::Result;

/// The chunk's section path, joined with ` / ` as the `section` filter field compares it.
pub const SECTION: &str = "section";
/// Payload keys holding text (left out when the column is NULL).
pub const TEXT_FIELDS: &[&str] = &[
    "document_id",
    "source",
    "title",
    "extension",
    "mime",
    "doc_type",
    "modified_at",
    "ingested_at",
    SECTION,
];
/// Payload keys holding integers.
pub const INTEGER_FIELDS: &[&str] = &[
    "size_bytes",
    "char_count",
    "word_count",
    "line_count",
    "chunk_count",
];

/// The payload key of a `documents` column: `id` is `document_id` (a point's own id is the chunk's).
pub fn payload_key(column: &str) -> &str {
    if column == "id" {
        "document_id"
    } else {
        column
    }
}

/// The payloads of the given chunks; a chunk no longer in the database is left out.
pub fn chunk_payloads(conn: &rusqlite::Connection, ids: &[i64]) -> Result<HashMap<i64, Payload>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.source, d.title, d.extension, d.mime, d.doc_type, d.modified_at,
                d.ingested_at,
                (SELECT group_concat(value, ' / ') FROM json_each(c.section_path)),
                d.size_bytes, d.char_count, d.word_count, d.line_count, d.chunk_count
         FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ?1",
    )?;
    let mut out = HashMap::with_capacity(ids.len());
    for id in ids {
        let mut rows = stmt.query([id])?;
        let Some(row) = rows.next()? else { continue };
        let mut payload = Payload::with_capacity(TEXT_FIELDS.len() + INTEGER_FIELDS.len());
        for (i, key) in TEXT_FIELDS.iter().chain(INTEGER_FIELDS).enumerate() {
            match row.get_ref(i)? {
                ValueRef::Text(t) => payload.insert(*key, String::from_utf8_lossy(t).into_owned()),
                ValueRef::Integer(n) => payload.insert(*key, n),
                ValueRef::Real(f) => payload.insert(*key, f),
                ValueRef::Null | ValueRef::Blob(_) => {}
            }
        }
        out.insert(*id, payload);
    }
    Ok(out)
}
