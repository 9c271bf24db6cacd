//! Restore, second half: swapping verified files into the data directory so that a crash at any
//! point leaves either the previous data or the restored data, never neither.
//!
//! The steps ([`SwapPlan`]), each durable (fsync) before the next:
//! 1. [`save_previous`](SwapPlan::save_previous): hard-link (or copy) every live file that will be
//!    replaced, with SQLite's `-wal`/`-shm`/`-journal`, into `<data>/previous-<time>/`. The live
//!    data is not touched.
//! 2. [`write_journal`](SwapPlan::write_journal): write `<data>/restore-in-progress.json`, naming
//!    that directory. From here on, [`recover_interrupted_restore`] (run when the engine opens the
//!    data directory) rolls an unfinished restore back.
//! 3. [`replace_next`](SwapPlan::replace_next), once per file: remove the live companions (kept
//!    in `previous-*`), then rename(2) the staged file over the live path. rename replaces
//!    atomically, so the database path always names a whole database, old or new. A directory
//!    (the vector index) is renamed aside into `previous-*`, then the staged one renamed in.
//! 4. [`SwapGuard::commit`] removes the journal (the commit point), then `previous-*`;
//!    [`SwapGuard::rollback`] puts the previous files back, then removes both.

use std::io;
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{BackupError, VerifiedBackup, archive, io_err};

/// File in the data directory that marks a restore in progress (the journal).
pub const RESTORE_JOURNAL: &str = "restore-in-progress.json";
/// Prefix of the directories holding the previous data during a restore.
pub const PREVIOUS_PREFIX: &str = "previous-";
/// Prefix of the staging directories of restores.
pub const STAGING_PREFIX: &str = ".restore-staging-";
/// File locked (flock) by the process running a restore, so that another process opening the
/// data directory meanwhile neither rolls that restore back nor deletes its staging directory.
/// The operating system releases the lock when the process dies, which is what marks a restore
/// as interrupted.
pub const RESTORE_LOCK: &str = "restore.lock";

/// Held for the whole of a restore (see [`RESTORE_LOCK`]); released on drop.
#[derive(Debug)]
pub struct RestoreLock {
    _file: std::fs::File,
}

impl RestoreLock {
    /// Take the lock, or fail with [`BackupError::RestoreInProgress`] when another restore holds it.
    pub fn acquire(data_dir: &Path) -> Result<RestoreLock, BackupError> {
        std::fs::create_dir_all(data_dir).map_err(|e| io_err(data_dir, e))?;
        let path = data_dir.join(RESTORE_LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(RestoreLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::RestoreInProgress),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err(&path, e)),
        }
    }
}

/// SQLite companion files kept together with a database file.
const SQLITE_COMPANIONS: &[&str] = &["-wal", "-shm", "-journal"];

fn companions(name: &str) -> Vec<String> {
    SQLITE_COMPANIONS
        .iter()
        .map(|s| format!("{name}{s}"))
        .collect()
}

/// Move a file or directory; falls back to copy + rename for files crossing file systems.
fn move_path(from: &Path, to: &Path) -> Result<(), BackupError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices && from.is_file() => {
            let tmp = to.with_file_name(format!(
                "{}.partial",
                to.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            std::fs::copy(from, &tmp).map_err(|e| io_err(from, e))?;
            fsync_file(&tmp)?;
            std::fs::rename(&tmp, to).map_err(|e| io_err(to, e))?;
            std::fs::remove_file(from).map_err(|e| io_err(from, e))
        }
        Err(e) => Err(io_err(from, e)),
    }
}

/// Keep a second name for a live file without touching it: a hard link (no copy, same inode),
/// or a copy where links are not supported.
fn preserve(from: &Path, to: &Path) -> Result<(), BackupError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| io_err(from, e))?;
    fsync_file(to)
}

fn fsync_file(p: &Path) -> Result<(), BackupError> {
    std::fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(p, e))
}

/// Makes renames and new names in `dir` durable.
fn fsync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(dir, e))
}

fn remove_file_if_exists(p: &Path) -> Result<(), BackupError> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(p, e)),
    }
}

fn remove_dir_if_exists(p: &Path) -> Result<(), BackupError> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(p, e)),
    }
}

/// One file or directory being replaced.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// Name relative to the data directory.
    name: String,
    /// A directory (moved aside whole) rather than a file (linked, then replaced).
    dir: bool,
    /// Whether the data directory had it before the restore.
    existed: bool,
}

/// What [`recover_interrupted_restore`] needs to roll back.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    /// Name of the `previous-*` directory inside the data directory.
    previous_dir: String,
    entries: Vec<Entry>,
    started_at: String,
}

/// A restore swap, one step at a time (see the module docs). [`swap_in`] runs every step; the
/// steps are public so tests can stop after any of them, as a crash would.
#[derive(Debug)]
pub struct SwapPlan {
    data_dir: PathBuf,
    staging_dir: PathBuf,
    previous_dir: PathBuf,
    entries: Vec<Entry>,
    replaced: usize,
    journaled: bool,
}

impl SwapPlan {
    /// Check that every name is in the verified backup and staged; nothing on disk changes.
    /// A name is a file of the manifest, or a directory holding files of the manifest.
    pub fn new(
        data_dir: &Path,
        verified: &VerifiedBackup,
        names: &[&str],
    ) -> Result<SwapPlan, BackupError> {
        let mut entries = Vec::new();
        for f in names {
            archive::validate_entry_name(f)?;
            let staged = verified.dir.join(f);
            let dir = staged.is_dir();
            let in_manifest = if dir {
                let prefix = format!("{f}/");
                verified
                    .manifest
                    .files
                    .iter()
                    .any(|e| e.name.starts_with(&prefix))
            } else {
                verified.manifest.file(f).is_some()
            };
            if !in_manifest {
                return Err(BackupError::InvalidRequest(format!(
                    "{f:?} is not in the backup manifest"
                )));
            }
            if !dir && !staged.is_file() {
                return Err(BackupError::InvalidRequest(format!(
                    "{} is missing from the staging directory",
                    staged.display()
                )));
            }
            let live = data_dir.join(f);
            entries.push(Entry {
                name: f.to_string(),
                dir,
                existed: if dir { live.is_dir() } else { live.is_file() },
            });
        }
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let mut previous_dir = data_dir.join(format!("{PREVIOUS_PREFIX}{stamp}"));
        let mut n = 1;
        while previous_dir.exists() {
            previous_dir = data_dir.join(format!("{PREVIOUS_PREFIX}{stamp}-{n}"));
            n += 1;
        }
        Ok(SwapPlan {
            data_dir: data_dir.to_path_buf(),
            staging_dir: verified.dir.clone(),
            previous_dir,
            entries,
            replaced: 0,
            journaled: false,
        })
    }

    /// Where the previous data is kept until commit.
    pub fn previous_dir(&self) -> &Path {
        &self.previous_dir
    }

    /// Step 1: give every live file to be replaced (and its SQLite companions) a second name in
    /// `previous-*`. Directories are moved there later, in [`replace_next`](Self::replace_next).
    pub fn save_previous(&mut self) -> Result<(), BackupError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| io_err(&self.data_dir, e))?;
        std::fs::create_dir_all(&self.previous_dir).map_err(|e| io_err(&self.previous_dir, e))?;
        for entry in self.entries.iter().filter(|e| !e.dir) {
            let mut all = vec![entry.name.clone()];
            all.extend(companions(&entry.name));
            for name in all {
                let live = self.data_dir.join(&name);
                if live.is_file() {
                    preserve(&live, &self.previous_dir.join(&name))?;
                }
            }
        }
        fsync_tree(&self.previous_dir)?;
        fsync_dir(&self.data_dir)
    }

    /// Step 2: the journal; from now on an interrupted restore is rolled back at the next start.
    pub fn write_journal(&mut self) -> Result<(), BackupError> {
        let journal = Journal {
            previous_dir: self
                .previous_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            entries: self.entries.clone(),
            started_at: Utc::now().to_rfc3339(),
        };
        let path = self.data_dir.join(RESTORE_JOURNAL);
        let partial = self.data_dir.join(format!("{RESTORE_JOURNAL}.partial"));
        std::fs::write(&partial, serde_json::to_vec_pretty(&journal)?)
            .map_err(|e| io_err(&partial, e))?;
        fsync_file(&partial)?;
        std::fs::rename(&partial, &path).map_err(|e| io_err(&path, e))?;
        self.journaled = true;
        fsync_dir(&self.data_dir)
    }

    /// Step 3, for the next name: swap the staged file or directory in. `Ok(false)` when every
    /// name has been swapped.
    pub fn replace_next(&mut self) -> Result<bool, BackupError> {
        let Some(entry) = self.entries.get(self.replaced).cloned() else {
            return Ok(false);
        };
        let live = self.data_dir.join(&entry.name);
        let staged = self.staging_dir.join(&entry.name);
        if entry.dir {
            if entry.existed {
                move_path(&live, &self.previous_dir.join(&entry.name))?;
            }
            move_path(&staged, &live)?;
        } else {
            // A -wal left next to the new file would be replayed into it: remove the old
            // companions first (step 1 kept them).
            for c in companions(&entry.name) {
                remove_file_if_exists(&self.data_dir.join(c))?;
            }
            move_path(&staged, &live)?;
        }
        if let Some(parent) = live.parent() {
            fsync_dir(parent)?;
        }
        self.replaced += 1;
        Ok(true)
    }

    /// After the last [`replace_next`](Self::replace_next): the guard that commits or rolls back.
    pub fn finish(self) -> SwapGuard {
        SwapGuard {
            restored: self.entries.iter().map(|e| e.name.clone()).collect(),
            data_dir: self.data_dir,
            previous_dir: self.previous_dir,
            entries: self.entries,
            done: false,
        }
    }

    /// Undo after a failed step. Before the journal the live data is untouched (and a copy in
    /// `previous-*` may be partial, so it must not come back); after it, rolling back every entry
    /// is safe because [`roll_back`] goes by what is on disk.
    fn abort(self) -> Result<(), BackupError> {
        if self.journaled {
            roll_back(&self.data_dir, &self.previous_dir, &self.entries)
        } else {
            remove_dir_if_exists(&self.previous_dir)
        }
    }
}

fn fsync_tree(dir: &Path) -> Result<(), BackupError> {
    for ent in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let ent = ent.map_err(|e| io_err(dir, e))?;
        if ent
            .file_type()
            .map_err(|e| io_err(&ent.path(), e))?
            .is_dir()
        {
            fsync_tree(&ent.path())?;
        }
    }
    fsync_dir(dir)
}

/// Put the previous data back for `entries`; idempotent, so a crash during a rollback is
/// finished by the next one. Removes `previous_dir`, then the journal.
fn roll_back(data_dir: &Path, previous_dir: &Path, entries: &[Entry]) -> Result<(), BackupError> {
    for entry in entries {
        let live = data_dir.join(&entry.name);
        let saved = previous_dir.join(&entry.name);
        if entry.dir {
            if entry.existed {
                if saved.is_dir() {
                    remove_dir_if_exists(&live)?;
                    move_path(&saved, &live)?;
                }
            } else {
                remove_dir_if_exists(&live)?;
            }
            continue;
        }
        if entry.existed {
            // While the saved file is still in previous-*, the live companions belong to the
            // restored file; once it is back, they are the previous ones moved back already.
            if saved.is_file() {
                for c in companions(&entry.name) {
                    remove_file_if_exists(&data_dir.join(c))?;
                }
                move_path(&saved, &live)?;
            }
            for c in companions(&entry.name) {
                let s = previous_dir.join(&c);
                if s.is_file() {
                    move_path(&s, &data_dir.join(&c))?;
                }
            }
        } else {
            remove_file_if_exists(&live)?;
            for c in companions(&entry.name) {
                remove_file_if_exists(&data_dir.join(c))?;
            }
        }
    }
    fsync_dir(data_dir)?;
    remove_dir_if_exists(previous_dir)?;
    remove_file_if_exists(&data_dir.join(RESTORE_JOURNAL))?;
    fsync_dir(data_dir)
}

/// A swapped-in restore; keeps the previous data until [`commit`](Self::commit) or brings it
/// back with [`rollback`](Self::rollback). Dropping it without either leaves the journal, so the
/// next start of the engine rolls the restore back.
#[derive(Debug)]
#[must_use = "call commit() after the restored data passed its integrity check, or rollback()"]
pub struct SwapGuard {
    data_dir: PathBuf,
    previous_dir: PathBuf,
    entries: Vec<Entry>,
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
        // removing the journal is the commit point: after it, nothing rolls back
        remove_file_if_exists(&self.data_dir.join(RESTORE_JOURNAL))?;
        fsync_dir(&self.data_dir)?;
        remove_dir_if_exists(&self.previous_dir)?;
        tracing::info!(data_dir = %self.data_dir.display(), "restore committed; previous data removed");
        Ok(())
    }

    /// Remove the restored files and put the previous ones back.
    pub fn rollback(mut self) -> Result<(), BackupError> {
        self.done = true;
        roll_back(&self.data_dir, &self.previous_dir, &self.entries)?;
        tracing::warn!(data_dir = %self.data_dir.display(), "restore rolled back; previous data is back");
        Ok(())
    }
}

impl Drop for SwapGuard {
    fn drop(&mut self) {
        if !self.done {
            tracing::warn!(
                previous = %self.previous_dir.display(),
                "restore neither committed nor rolled back; the next start rolls it back"
            );
        }
    }
}

/// Swap `names` (files of the manifest, or directories of them such as `index`) from the
/// verified staging dir into `data_dir`, crash-safely (see the module docs). Use the same file
/// system for staging and data (renames); otherwise files are copied. The database must be
/// closed by the caller. On error, everything done so far is undone.
pub fn swap_in(
    data_dir: &Path,
    verified: &VerifiedBackup,
    names: &[&str],
) -> Result<SwapGuard, BackupError> {
    let mut plan = SwapPlan::new(data_dir, verified, names)?;
    let res = (|| -> Result<(), BackupError> {
        plan.save_previous()?;
        plan.write_journal()?;
        while plan.replace_next()? {}
        Ok(())
    })();
    match res {
        Ok(()) => {
            let guard = plan.finish();
            tracing::info!(
                data_dir = %data_dir.display(),
                previous = %guard.previous_dir.display(),
                files = ?names,
                "restored files swapped in"
            );
            Ok(guard)
        }
        Err(e) => {
            if let Err(undo) = plan.abort() {
                tracing::error!(error = %undo, "undoing a failed swap failed");
            }
            Err(e)
        }
    }
}

/// What [`recover_interrupted_restore`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No restore was interrupted.
    Clean,
    /// A restore was interrupted after its journal was written; the previous data is back.
    RolledBack {
        /// The `previous-*` directory the data came back from.
        previous_dir: PathBuf,
    },
}

/// Run before opening the database: finishes what an interrupted restore left. Does nothing
/// while another process holds the [`RestoreLock`] (its restore is not interrupted).
///
/// - With a journal: rolls the restore back (the previous data comes back whole).
/// - With no database but a `previous-*/<db_name>`: refuses ([`BackupError::InterruptedRestore`])
///   rather than letting the engine create an empty database over lost data.
/// - Leftover `previous-*` directories next to a database (a restore committed but interrupted
///   before cleaning up) are reported in the log and left alone.
///
/// Staging directories of unfinished restores are removed (they can be downloaded again).
pub fn recover_interrupted_restore(
    data_dir: &Path,
    db_name: &str,
) -> Result<Recovery, BackupError> {
    if !data_dir.is_dir() {
        return Ok(Recovery::Clean);
    }
    let _lock = match RestoreLock::acquire(data_dir) {
        Ok(lock) => lock,
        Err(BackupError::RestoreInProgress) => {
            // a live restore in another process: its journal and staging are not leftovers
            tracing::info!(data_dir = %data_dir.display(), "a restore is running in another process; nothing to recover");
            return Ok(Recovery::Clean);
        }
        Err(e) => return Err(e),
    };
    let journal_path = data_dir.join(RESTORE_JOURNAL);
    let outcome = if journal_path.is_file() {
        let bytes = std::fs::read(&journal_path).map_err(|e| io_err(&journal_path, e))?;
        let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
            BackupError::InterruptedRestore(format!(
                "the restore journal {} is unreadable ({e}); the previous data, if any, is in the \
                 {PREVIOUS_PREFIX}* directory of {}: move its files back into the data directory, \
                 delete the journal, then start again",
                journal_path.display(),
                data_dir.display()
            ))
        })?;
        archive::validate_entry_name(&journal.previous_dir)?;
        for e in &journal.entries {
            archive::validate_entry_name(&e.name)?;
        }
        let previous_dir = data_dir.join(&journal.previous_dir);
        tracing::warn!(
            previous = %previous_dir.display(),
            started_at = %journal.started_at,
            "a restore was interrupted; rolling it back"
        );
        roll_back(data_dir, &previous_dir, &journal.entries)?;
        Recovery::RolledBack { previous_dir }
    } else {
        Recovery::Clean
    };
    let previous: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .map_err(|e| io_err(data_dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREVIOUS_PREFIX))
        .map(|e| e.path())
        .collect();
    if !data_dir.join(db_name).is_file()
        && let Some(p) = previous.iter().find(|p| p.join(db_name).is_file())
    {
        return Err(BackupError::InterruptedRestore(format!(
            "{} has no database but {} holds one: an earlier restore was interrupted. Nothing was \
             changed and no empty database was created. To get the previous data back, move the \
             files of {} (the database, its -wal and the index directory) into {}; or delete {} \
             to start empty; then start again and restore if needed",
            data_dir.display(),
            p.join(db_name).display(),
            p.display(),
            data_dir.display(),
            p.display()
        )));
    }
    for p in &previous {
        tracing::warn!(path = %p.display(), "leftover previous data of an earlier restore; delete it when it is no longer needed");
    }
    for ent in std::fs::read_dir(data_dir)
        .map_err(|e| io_err(data_dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(STAGING_PREFIX))
    {
        remove_dir_if_exists(&ent.path())?;
    }
    Ok(outcome)
}
