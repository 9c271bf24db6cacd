//! The change journal beside the saved graph: the ids of chunks whose vectors may have changed
//! since the dump was written, one decimal id per line.
//!
//! - An entry is appended (and synced) *before* the database commits the change, from inside its
//!   transaction: every committed change is in the journal, whatever moment a crash picks.
//! - An entry whose transaction then rolled back is harmless: replay does not trust the journal
//!   for vectors, it resyncs each listed id with the database (removed from the graph, added
//!   back with the stored vector if there is one).
//! - A write therefore costs a line per changed chunk instead of a rewrite of the whole graph;
//!   the graph is saved in full when the journal grows past a threshold, at shutdown and before
//!   a backup, and the journal starts empty beside each new dump.
//! - Without a saved graph there is nothing to replay against, so nothing is journaled.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

pub(crate) const JOURNAL_FILE: &str = "journal";

/// The journal of one index directory, and how many entries it holds.
pub struct IndexJournal {
    dir: PathBuf,
    entries: AtomicUsize,
}

impl IndexJournal {
    pub fn new(dir: &Path) -> IndexJournal {
        IndexJournal {
            dir: dir.to_path_buf(),
            entries: AtomicUsize::new(read(dir).len()),
        }
    }

    /// Entries written since the last full save.
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `ids` as possibly changed. Synced before it returns: the caller commits the
    /// change right after.
    pub fn append(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() || !self.dir.join(super::saved::DUMP_FILE).exists() {
            return Ok(());
        }
        let mut text = String::with_capacity(ids.len() * 8);
        for id in ids {
            text.push_str(&id.to_string());
            text.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(JOURNAL_FILE))
            .map_err(|e| Error::io("open the vector index journal", e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io("append to the vector index journal", e))?;
        self.entries.fetch_add(ids.len(), Ordering::SeqCst);
        Ok(())
    }

    /// After a full save (the new directory holds an empty journal) or a reload.
    pub fn reset_count(&self) {
        self.entries.store(read(&self.dir).len(), Ordering::SeqCst);
    }
}

/// The ids in the journal of `dir`, in order. A line cut short by a crash (the last one) belongs
/// to a transaction that had not committed (the append is synced first): skipped when it does not
/// parse, and a harmless extra resync when it does.
pub(crate) fn read(dir: &Path) -> Vec<i64> {
    let Ok(text) = std::fs::read_to_string(dir.join(JOURNAL_FILE)) else {
        return Vec::new();
    };
    text.split_terminator('\n')
        .filter_map(|l| l.trim().parse::<i64>().ok())
        .collect()
}
