//! The chunks a search filter admits, cached per database state. Building the set scans every
//! chunk the filter's SQL reaches (tens of milliseconds at 100k chunks); dashboards and
//! assistants repeat the same few filters, so a set is kept until a write or a file swap
//! changes what it would be.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use super::{Store, poisoned};
use crate::error::Result;
use crate::filter::Condition;

/// Filters remembered at once.
const ENTRIES: usize = 16;
/// Sets larger than this are not kept (memory: 100k ids are about 2 MB as a hash set).
const MAX_IDS: usize = 500_000;

struct Entry {
    epoch: u64,
    generation: String,
    key: String,
    ids: Arc<HashSet<i64>>,
}

#[derive(Default)]
pub(super) struct AllowedCache {
    entries: Mutex<VecDeque<Entry>>,
}

impl Store {
    /// The ids of the chunks passing `conds` (`None`: no conditions, every chunk), from the
    /// cache while the database is unchanged since it was built.
    pub fn allowed_chunks(&self, conds: &[Condition]) -> Result<Option<Arc<HashSet<i64>>>> {
        if conds.is_empty() {
            return Ok(None);
        }
        let key = serde_json::to_string(conds).unwrap_or_default();
        let epoch = self.readers.lock().map_err(|_| poisoned())?.epoch;
        self.read(|c| {
            // One snapshot: the generation read names exactly the state the set is built from.
            let tx = c.unchecked_transaction()?;
            let generation: String =
                tx.query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                    r.get(0)
                })?;
            {
                let mut entries = self.allowed.entries.lock().map_err(|_| poisoned())?;
                let pos = entries
                    .iter()
                    .position(|e| e.epoch == epoch && e.generation == generation && e.key == key);
                // Most recently used last, so the front is what goes first.
                if let Some(hit) = pos.and_then(|p| entries.remove(p)) {
                    let ids = hit.ids.clone();
                    entries.push_back(hit);
                    return Ok(Some(ids));
                }
            }
            let ids = Arc::new(crate::search::allowed_chunks(&tx, conds)?.unwrap_or_default());
            if ids.len() <= MAX_IDS {
                let mut entries = self.allowed.entries.lock().map_err(|_| poisoned())?;
                // Sets of an older state can never be asked for again.
                entries.retain(|e| e.epoch == epoch && e.generation == generation);
                if entries.len() >= ENTRIES {
                    entries.pop_front();
                }
                entries.push_back(Entry {
                    epoch,
                    generation,
                    key,
                    ids: ids.clone(),
                });
            }
            Ok(Some(ids))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::filter::parse_short;
    use crate::store::Store;
    use crate::store::tests::{chunk, doc};

    #[test]
    fn a_filter_set_is_reused_until_a_write_changes_what_it_would_be() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        store
            .put_document(&doc("d1", "/a.txt"), &[chunk("alpha"), chunk("beta")], "m")
            .unwrap();
        let conds = parse_short("team=core").unwrap();
        let first = store.allowed_chunks(&conds).unwrap().unwrap();
        assert_eq!(first.len(), 2);
        let again = store.allowed_chunks(&conds).unwrap().unwrap();
        assert!(
            std::sync::Arc::ptr_eq(&first, &again),
            "the set was built twice"
        );
        // Another filter is another entry; no conditions need no set.
        let other = store
            .allowed_chunks(&parse_short("team=ops").unwrap())
            .unwrap()
            .unwrap();
        assert!(other.is_empty());
        assert!(store.allowed_chunks(&[]).unwrap().is_none());
        // A write: the set is built again and holds the new chunk.
        store
            .put_document(&doc("d2", "/b.txt"), &[chunk("gamma")], "m")
            .unwrap();
        let after = store.allowed_chunks(&conds).unwrap().unwrap();
        assert!(!std::sync::Arc::ptr_eq(&first, &after));
        assert_eq!(after.len(), 3);
    }
}
