//! A store whose file is known to be damaged, and the write fence of restores: both refuse
//! requests with an answer that says what to do, rather than letting them touch the file.

use std::path::Path;

use super::{Store, poisoned};
use crate::error::{Error, Result};

impl Store {
    /// Why the database is unusable, when it is known to be damaged.
    pub fn damaged(&self) -> Option<crate::error::Damage> {
        match self.damaged.lock() {
            Ok(d) => d.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Closes the damaged file: from now on reads and writes answer
    /// [`Error::DatabaseDamaged`] with `detail` and what to do, until a restore.
    pub fn mark_damaged(&self, detail: &str) -> Result<()> {
        let why = damage_at(&self.path, detail);
        let mut writer = self.writer.lock().map_err(|_| poisoned())?;
        self.close_file(&mut writer)?;
        tracing::error!(error = %why, "database damaged: closed until a restore");
        *self.damaged.lock().map_err(|_| poisoned())? = Some(why);
        Ok(())
    }

    pub(super) fn usable(&self) -> Result<()> {
        match self.damaged() {
            Some(why) => Err(Error::DatabaseDamaged(why)),
            None => Ok(()),
        }
    }

    /// Refuses (or again allows) every write transaction; set while a restore runs.
    pub fn fence_writes(&self, fenced: bool) {
        self.writes_fenced
            .store(fenced, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The damage of the database at `path`, in SQLite's words.
pub(super) fn damage_at(path: &Path, detail: &str) -> crate::error::Damage {
    crate::error::Damage {
        detail: detail.to_string(),
        data_dir: path.parent().map(Path::to_path_buf),
    }
}
