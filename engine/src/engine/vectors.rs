//! The engine's vector store: the embedded graph, or a Qdrant collection (`vector_store:
//! qdrant`). Writes commit to SQLite first; the store follows. A write Qdrant misses (an outage)
//! leaves the engine *behind*: the document is stored and found by keyword, and the next write,
//! the next start or `repair` uploads what is missing.

use std::sync::atomic::Ordering;

use super::Engine;
use crate::error::{Error, Result};
use crate::filter::Condition;
use crate::qdrant::payload::chunk_payloads;
use crate::qdrant::sync::{Resync, SyncReport, reconcile};
use crate::qdrant::{QdrantVectors, filter as qfilter};

impl Engine {
    /// The Qdrant collection, when it is the vector store.
    pub fn qdrant(&self) -> Option<&QdrantVectors> {
        self.qdrant.as_deref()
    }

    /// Whether Qdrant missed a write and a re-sync is pending.
    pub fn qdrant_behind(&self) -> bool {
        self.qdrant_behind.load(Ordering::Acquire)
    }

    /// The stored embeddings of the engine's model, where the embedded index reads exact
    /// vectors from.
    pub fn stored_vectors(&self) -> crate::store::StoredEmbeddings<'_> {
        crate::store::StoredEmbeddings {
            store: &self.store,
            model: self.model_name(),
            dimensions: self.index().dimensions(),
        }
    }

    /// Makes the vector store follow a commit: `removed` chunks out, `added` ones in.
    pub(super) fn vectors_follow(&self, removed: &[i64], added: &[(i64, Vec<f32>)]) -> Result<()> {
        let Some(q) = self.qdrant() else {
            let index = self.index();
            index.remove(removed)?;
            return index.add(added);
        };
        let result = q.delete(removed).and_then(|()| {
            let ids: Vec<i64> = added.iter().map(|(id, _)| *id).collect();
            let payloads = self.store.read(|c| chunk_payloads(c, &ids))?;
            q.upsert(added, &payloads)
        });
        match result {
            Ok(()) if self.qdrant_behind() => {
                // Qdrant is back: catch up with what it missed (listing ids: a missed delete
                // and a missed upload can leave the counts equal).
                if let Err(e) = self.resync_vectors(Resync::Listing) {
                    tracing::warn!(error = %e, "Qdrant is still behind the database");
                }
                Ok(())
            }
            Ok(()) => Ok(()),
            Err(e) => {
                // The commit stands (SQLite is the source of truth): the document is found by
                // keyword now and by vector once Qdrant has caught up.
                self.qdrant_behind.store(true, Ordering::Release);
                self.track_error("qdrant", e.code(), &e.to_string());
                tracing::warn!(
                    error = %e,
                    "the write is stored but Qdrant missed it; its vectors are uploaded at the \
                     next write, start or `instant-db repair`"
                );
                Ok(())
            }
        }
    }

    /// The `depth` nearest chunks among those the conditions admit.
    pub(super) fn vector_hits(
        &self,
        query: &[f32],
        depth: usize,
        conds: &[Condition],
    ) -> Result<Vec<(i64, f32)>> {
        let Some(q) = self.qdrant() else {
            let allowed = self.store.allowed_chunks(conds)?;
            let index = self.index();
            return index.search(query, depth, allowed.as_deref(), &self.stored_vectors());
        };
        let split = qfilter::translate(conds);
        let filter = if split.residual.is_empty() {
            split.filter
        } else {
            let allowed = self
                .store
                .allowed_chunks(&split.residual)?
                .unwrap_or_default();
            if allowed.is_empty() {
                return Ok(vec![]);
            }
            let ids = allowed.iter().filter_map(|id| u64::try_from(*id).ok());
            Some(qfilter::with_ids(split.filter, ids))
        };
        q.search(query, depth, filter)
    }

    /// Brings the Qdrant collection in line with the database (`None`: the embedded store,
    /// which [`Engine::reload_index`] rebuilds instead).
    pub fn resync_vectors(&self, how: Resync) -> Result<Option<SyncReport>> {
        let Some(q) = self.qdrant() else {
            return Ok(None);
        };
        let report = reconcile(&self.store, q, self.model_name(), how);
        match &report {
            Ok(r) => {
                self.qdrant_behind.store(false, Ordering::Release);
                if !r.already_in_sync {
                    tracing::info!(
                        uploaded = r.uploaded,
                        deleted = r.deleted,
                        points = r.points,
                        "the Qdrant collection is in sync with the database"
                    );
                }
            }
            Err(e) => {
                self.qdrant_behind.store(true, Ordering::Release);
                self.track_error("qdrant", e.code(), &e.to_string());
            }
        }
        report.map(Some)
    }

    /// The ids the vector store holds that the database does not and the reverse, for `check`:
    /// `None` when Qdrant cannot be asked now (an outage is not damage).
    pub(crate) fn qdrant_id_diff(&self, expected: &[i64]) -> Option<(usize, usize, usize)> {
        let q = self.qdrant()?;
        match q.ids(5_000) {
            Ok(ids) => {
                let have: std::collections::BTreeSet<i64> = ids.into_iter().collect();
                let want: std::collections::BTreeSet<i64> = expected.iter().copied().collect();
                Some((
                    have.len(),
                    want.difference(&have).count(),
                    have.difference(&want).count(),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the check could not list the Qdrant collection");
                None
            }
        }
    }

    /// The failure of a vector store call in a search, in words for a degraded hybrid answer.
    pub(super) fn vector_failure(e: &Error) -> String {
        format!("vector search failed ({e}); results are keyword-only")
    }
}
