//! Restore, second half: swapping verified files into the data directory.

use std::io;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{BackupError, VerifiedBackup, archive, io_err};

/// SQLite companion files moved together with a database file.
const SQLITE_COMPANIONS: &[&str] = &["-wal", "-shm", "-journal"];

fn companions(name: &str) -> Vec<String> {
    SQLITE_COMPANIONS
        .iter()
        .map(|s| format!("{name}{s}"))
        .collect()
}

/// Move a file; falls back to copy + rename when crossing file systems.
fn move_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let tmp = to.with_file_name(format!(
                "{}.partial",
                to.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            std::fs::copy(from, &tmp).map_err(|e| io_err(from, e))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err(&tmp, e))?;
            std::fs::rename(&tmp, to).map_err(|e| io_err(to, e))?;
            std::fs::remove_file(from).map_err(|e| io_err(from, e))
        }
        Err(e) => Err(io_err(from, e)),
    }
}

/// Swapped-in restore; keeps the previous data until [`commit`](Self::commit)
/// or brings it back with [`rollback`](Self::rollback). Dropping it without
/// either keeps both (the previous data stays in `previous_dir`).
#[derive(Debug)]
#[must_use = "call commit() after the restored data passed its integrity check, or rollback()"]
pub struct SwapGuard {
    data_dir: PathBuf,
    previous_dir: PathBuf,
    /// names moved from data_dir to previous_dir
    saved: Vec<String>,
    /// names moved from staging into data_dir
    restored: Vec<String>,
    done: bool,
}

impl SwapGuard {
    /// Where the previous data is kept until commit.
    pub fn previous_dir(&self) -> &Path {
        &self.previous_dir
    }

    /// Files that were restored.
    pub fn restored_files(&self) -> &[String] {
        &self.restored
    }

    /// Keep the restored data and delete the previous one.
    pub fn commit(mut self) -> Result<(), BackupError> {
        self.done = true;
        match std::fs::remove_dir_all(&self.previous_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&self.previous_dir, e)),
        }
        tracing::info!(data_dir = %self.data_dir.display(), "restore committed; previous data removed");
        Ok(())
    }

    /// Remove the restored files and put the previous ones back.
    pub fn rollback(mut self) -> Result<(), BackupError> {
        self.done = true;
        self.undo()
    }

    fn undo(&mut self) -> Result<(), BackupError> {
        for name in self.restored.drain(..) {
            let mut all = vec![name.clone()];
            all.extend(companions(&name));
            for n in all {
                let p = self.data_dir.join(&n);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&p, e)),
                }
            }
        }
        for name in self.saved.drain(..) {
            move_file(&self.previous_dir.join(&name), &self.data_dir.join(&name))?;
        }
        match std::fs::remove_dir_all(&self.previous_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&self.previous_dir, e)),
        }
        tracing::warn!(data_dir = %self.data_dir.display(), "restore rolled back; previous data is back");
        Ok(())
    }
}

impl Drop for SwapGuard {
    fn drop(&mut self) {
        if !self.done {
            tracing::warn!(
                previous = %self.previous_dir.display(),
                "restore neither committed nor rolled back; previous data kept"
            );
        }
    }
}

/// Move `files` (names from the manifest) from the verified staging dir into
/// `data_dir`. Existing files of those names, and their SQLite companions
/// (`-wal`, `-shm`, `-journal`), are first moved into
/// `<data_dir>/previous-<timestamp>/`. Use the same file system for staging
/// and data (renames); otherwise files are copied. The database must be
/// closed by the caller. On error, everything done so far is undone.
pub fn swap_in(
    data_dir: &Path,
    verified: &VerifiedBackup,
    files: &[&str],
) -> Result<SwapGuard, BackupError> {
    for f in files {
        archive::validate_entry_name(f)?;
        if verified.manifest.file(f).is_none() {
            return Err(BackupError::InvalidRequest(format!(
                "{f:?} is not in the backup manifest"
            )));
        }
        let staged = verified.dir.join(f);
        if !staged.is_file() {
            return Err(BackupError::InvalidRequest(format!(
                "{} is missing from the staging directory",
                staged.display()
            )));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|e| io_err(data_dir, e))?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let mut previous_dir = data_dir.join(format!("previous-{stamp}"));
    let mut n = 1;
    while previous_dir.exists() {
        previous_dir = data_dir.join(format!("previous-{stamp}-{n}"));
        n += 1;
    }
    std::fs::create_dir_all(&previous_dir).map_err(|e| io_err(&previous_dir, e))?;
    let mut guard = SwapGuard {
        data_dir: data_dir.to_path_buf(),
        previous_dir,
        saved: Vec::new(),
        restored: Vec::new(),
        done: false,
    };
    let res = (|| -> Result<(), BackupError> {
        for f in files {
            let mut all = vec![f.to_string()];
            all.extend(companions(f));
            for name in all {
                let cur = data_dir.join(&name);
                if cur.exists() {
                    move_file(&cur, &guard.previous_dir.join(&name))?;
                    guard.saved.push(name);
                }
            }
        }
        for f in files {
            move_file(&verified.dir.join(f), &data_dir.join(f))?;
            guard.restored.push(f.to_string());
        }
        Ok(())
    })();
    match res {
        Ok(()) => {
            tracing::info!(
                data_dir = %data_dir.display(),
                previous = %guard.previous_dir.display(),
                files = ?files,
                "restored files swapped in"
            );
            Ok(guard)
        }
        Err(e) => {
            guard.done = true;
            // put back what the staging dir gave us so a retry can work
            for f in guard.restored.clone() {
                let _ = move_file(&data_dir.join(&f), &verified.dir.join(&f));
            }
            guard.restored.clear();
            if let Err(undo) = guard.undo() {
                tracing::error!(error = %undo, "undoing a failed swap failed");
            }
            Err(e)
        }
    }
}
