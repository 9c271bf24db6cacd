//! Bringing the collection in line with SQLite, the source of truth: at the start, after a
//! write Qdrant missed (an outage), after a restore and in `repair`.

use std::collections::BTreeSet;

use serde::Serialize;

use super::QdrantVectors;
use super::payload::chunk_payloads;
use crate::error::Result;
use crate::store::Store;

/// Vectors uploaded per round trip while re-syncing.
const UPLOAD_BATCH: usize = 512;
/// Ids per page while listing the collection.
const SCROLL_PAGE: u32 = 5_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    /// Points uploaded (missing from the collection, or all of them in a full re-sync).
    pub uploaded: usize,
    /// Points deleted (in the collection, no longer in the database).
    pub deleted: usize,
    /// Points in the collection afterwards.
    pub points: usize,
    /// Whether the counts agreed, so nothing had to be listed.
    pub already_in_sync: bool,
}

/// How much a re-sync checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// Compare counts; list ids only when they differ (each start).
    IfCountsDiffer,
    /// List the ids on both sides (after a write Qdrant missed: counts can agree by chance).
    Listing,
    /// Upload every stored vector again, payloads included (`repair`, after a restore).
    Everything,
}

/// What a re-sync must do: the ids to upload and to delete. `full` uploads every stored id
/// (refreshing payloads) instead of only the missing ones.
pub fn plan(
    stored: &BTreeSet<i64>,
    in_collection: &BTreeSet<i64>,
    full: bool,
) -> (Vec<i64>, Vec<i64>) {
    let upload = if full {
        stored.iter().copied().collect()
    } else {
        stored.difference(in_collection).copied().collect()
    };
    let delete = in_collection.difference(stored).copied().collect();
    (upload, delete)
}

/// Makes the collection hold exactly the vectors of `model` that SQLite holds.
pub fn reconcile(store: &Store, q: &QdrantVectors, model: &str, how: Resync) -> Result<SyncReport> {
    let stored_count = store.read(|c| {
        Ok(c.query_row(
            "SELECT count(*) FROM embeddings WHERE model = ?1",
            [model],
            |r| r.get::<_, i64>(0),
        )?)
    })?;
    let points = q.count()?;
    if how == Resync::IfCountsDiffer && u64::try_from(stored_count).ok() == Some(points) {
        return Ok(SyncReport {
            points: points as usize,
            already_in_sync: true,
            ..SyncReport::default()
        });
    }
    let stored: BTreeSet<i64> = store.read(|c| {
        let mut stmt = c.prepare("SELECT chunk_id FROM embeddings WHERE model = ?1")?;
        let ids = stmt.query_map([model], |r| r.get::<_, i64>(0))?;
        Ok(ids.collect::<rusqlite::Result<_>>()?)
    })?;
    let in_collection: BTreeSet<i64> = q.ids(SCROLL_PAGE)?.into_iter().collect();
    let (upload, delete) = plan(&stored, &in_collection, how == Resync::Everything);
    tracing::info!(
        collection = q.collection(),
        stored = stored.len(),
        points = in_collection.len(),
        upload = upload.len(),
        delete = delete.len(),
        "re-syncing the Qdrant collection from the database"
    );
    q.delete(&delete)?;
    for (done, batch) in upload.chunks(UPLOAD_BATCH).enumerate() {
        let items = store.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT vector FROM embeddings WHERE chunk_id = ?1 AND model = ?2",
            )?;
            let mut out = Vec::with_capacity(batch.len());
            for id in batch {
                let blob: Option<Vec<u8>> = stmt
                    .query_row(rusqlite::params![id, model], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })?;
                if let Some(b) = blob {
                    out.push((*id, crate::store::blob_to_vector(&b)));
                }
            }
            Ok(out)
        })?;
        let ids: Vec<i64> = items.iter().map(|(id, _)| *id).collect();
        let payloads = store.read(|c| chunk_payloads(c, &ids))?;
        q.upsert(&items, &payloads)?;
        tracing::info!(
            uploaded = (done * UPLOAD_BATCH + batch.len()),
            of = upload.len(),
            "uploading vectors to Qdrant"
        );
    }
    Ok(SyncReport {
        uploaded: upload.len(),
        deleted: delete.len(),
        points: stored.len(),
        already_in_sync: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[i64]) -> BTreeSet<i64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_resync_uploads_what_is_missing_and_deletes_what_the_database_lost() {
        let (upload, delete) = plan(&set(&[1, 2, 3]), &set(&[2, 3, 9]), false);
        assert_eq!(upload, vec![1]);
        assert_eq!(delete, vec![9]);
    }

    #[test]
    fn a_full_resync_uploads_every_stored_vector_again() {
        let (upload, delete) = plan(&set(&[1, 2]), &set(&[1, 2]), true);
        assert_eq!(upload, vec![1, 2]);
        assert!(delete.is_empty());
    }
}
