//! The stored embeddings as the vector index reads them: exact vectors for rescoring a search's
//! candidates, and every vector, a slice at a time, for a rebuild.

use rusqlite::params;

use super::{Store, blob_to_vector};
use crate::error::Result;
use crate::index::{StoredVectors, VectorSource};

/// The embeddings of one model with the index's dimensions.
pub struct StoredEmbeddings<'a> {
    pub store: &'a Store,
    pub model: &'a str,
    pub dimensions: usize,
}

impl StoredEmbeddings<'_> {
    fn blob_len(&self) -> i64 {
        (self.dimensions * std::mem::size_of::<f32>()) as i64
    }
}

impl VectorSource for StoredEmbeddings<'_> {
    fn vectors(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<f32>)>> {
        self.store.read(|c| {
            // By primary key, one cached statement: a search rescores a few dozen candidates.
            let mut stmt = c.prepare_cached(
                "SELECT vector FROM embeddings
                 WHERE chunk_id = ?1 AND model = ?2 AND length(vector) = ?3",
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let mut rows = stmt.query(params![id, self.model, self.blob_len()])?;
                if let Some(row) = rows.next()? {
                    let blob: Vec<u8> = row.get(0)?;
                    out.push((*id, blob_to_vector(&blob)));
                }
            }
            Ok(out)
        })
    }
}

impl StoredVectors for StoredEmbeddings<'_> {
    fn ids(&self) -> Result<Vec<i64>> {
        self.store.embedding_ids(self.model, self.dimensions)
    }

    fn for_each_slice(&self, slice: usize, f: &mut crate::index::SliceVisitor<'_>) -> Result<()> {
        let slice = slice.max(1);
        let mut after = i64::MIN;
        loop {
            // One short read per slice (by rowid, from where the last ended), so a rebuild
            // neither holds a read snapshot open for its whole length nor more than a slice.
            let part: Vec<(i64, Vec<f32>)> = self.store.read(|c| {
                Ok(c.prepare_cached(
                    "SELECT chunk_id, vector FROM embeddings
                     WHERE chunk_id > ?1 AND model = ?2 AND length(vector) = ?3
                     ORDER BY chunk_id LIMIT ?4",
                )?
                .query_map(
                    params![after, self.model, self.blob_len(), slice as i64],
                    |r| Ok((r.get(0)?, blob_to_vector(&r.get::<_, Vec<u8>>(1)?))),
                )?
                .collect::<rusqlite::Result<_>>()?)
            })?;
            let Some((last, _)) = part.last() else {
                return Ok(());
            };
            after = *last;
            f(&part)?;
        }
    }
}
