//! Which recipe made the stored vectors' input (`embedding.text`, `chunk::context`): recorded
//! in the database so a configuration change is noticed rather than mixing two kinds of
//! vectors silently.

use super::Engine;
use crate::chunk::context::EmbeddingText;
use crate::error::Result;
use crate::store::EMBEDDING_TEXT_KEY;

impl Engine {
    /// At open: tells the store the recipe its writes record, and names the recipe of a
    /// database from before the record existed (its vectors were made from the bare text).
    pub(super) fn settle_embedding_text(&self) {
        if self.store.damaged().is_some() {
            return;
        }
        let configured = self.config.embedding.text.recorded_name();
        if let Err(e) = self.store.set_embedding_text(configured) {
            tracing::warn!(error = %e, "embedding text recipe not set");
        }
        let legacy = match (
            self.store.meta_value(EMBEDDING_TEXT_KEY),
            self.store.stats(),
        ) {
            (Ok(None), Ok(stats)) => stats.embeddings > 0,
            _ => false,
        };
        if legacy
            && let Err(e) = self
                .store
                .record_meta(EMBEDDING_TEXT_KEY, EmbeddingText::Bare.recorded_name())
        {
            // Read-only data directories (a `check` of a mounted backup) are fine: the note
            // below still compares against what the vectors are.
            tracing::debug!(error = %e, "could not record the embedding text recipe");
        }
    }

    /// The recipe the stored vectors were made with, when known.
    pub fn stored_embedding_text(&self) -> Option<String> {
        match self.store.meta_value(EMBEDDING_TEXT_KEY) {
            Ok(Some(v)) => Some(v),
            Ok(None) if self.store.stats().is_ok_and(|s| s.embeddings > 0) => {
                Some(EmbeddingText::Bare.recorded_name().to_string())
            }
            _ => None,
        }
    }

    /// A note for `check` when the stored vectors were made another way than this engine
    /// makes them (queries then embed differently from the vectors they are compared with).
    pub fn embedding_text_note(&self) -> Option<String> {
        let stored = self.stored_embedding_text()?;
        let configured = self.config.embedding.text.recorded_name();
        (stored != configured).then(|| {
            format!(
                "the stored vectors were embedded from `{stored}` input but this engine embeds \
                 `{configured}` (embedding.text): vector search mixes the two until `instant-db \
                 repair --reembed` embeds every chunk again, or set embedding.text back"
            )
        })
    }

    /// After a re-embedding: the stored vectors are now all of this engine's recipe.
    pub(super) fn record_embedding_text(&self) -> Result<()> {
        self.store.record_meta(
            EMBEDDING_TEXT_KEY,
            self.config.embedding.text.recorded_name(),
        )
    }
}
