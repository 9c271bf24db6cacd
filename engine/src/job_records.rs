//! Job records on the data volume: one JSON file per job, `<data>/jobs/<kind>-<id>.json`
//! (`restore-…`, `backup-…`, `verification-…`), written atomically (temporary file, fsync,
//! rename, fsync of the directory) whenever a job passes a milestone, so `GET /admin/…/{id}`
//! answers after an engine restart. A job found unfinished when the records are opened was
//! cut by that restart: the caller decides how it ends (restores from the startup journal
//! recovery; backups and verifications end `failed`, saying so and what to do).
//!
//! Finished records are kept up to [`KEEP_FINISHED`] per kind; the oldest go first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Finished records kept per kind (a file of about 2 KiB each): enough for years of hourly
/// backups' follow-up, bounded so a volume never fills with them.
pub const KEEP_FINISHED: usize = 1000;

/// A job whose record lives in a file.
pub trait JobRecord: Clone + Serialize + DeserializeOwned {
    /// File name prefix: `restore`, `backup`, `verification`.
    const KIND: &'static str;
    fn id(&self) -> &str;
    /// Nothing will change it any more.
    fn is_final(&self) -> bool;
    /// When it started (RFC 3339, as `health::now` writes it): the oldest finished go first.
    fn started_at(&self) -> &str;
    /// The part of the record that must survive a restart, as a comparable value: the file is
    /// rewritten only when it changes (not for progress counters, which move many times a
    /// second).
    fn milestone(&self) -> String;
}

/// The records of one kind of job of one data directory: in memory, each also in its file.
pub struct JobRecords<T> {
    dir: PathBuf,
    jobs: Mutex<BTreeMap<String, T>>,
    /// Finished records kept ([`KEEP_FINISHED`]; smaller in tests).
    keep: usize,
}

impl<T: JobRecord> JobRecords<T> {
    /// Loads `<data>/jobs/<KIND>-*.json` (an unreadable file is logged and skipped: one bad
    /// record must not keep the engine from starting); each job found unfinished is passed to
    /// `interrupted`, which must make it final, and its file is rewritten.
    pub fn open(data_dir: &Path, mut interrupted: impl FnMut(&mut T)) -> Result<JobRecords<T>> {
        let dir = data_dir.join("jobs");
        let mut jobs = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => Some(e),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("read {}", dir.display()), e)),
        };
        let prefix = format!("{}-", T::KIND);
        for ent in entries.into_iter().flatten().filter_map(|e| e.ok()) {
            let name = ent.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(&prefix) && name.ends_with(".json")) {
                continue;
            }
            let job: T = match std::fs::read(ent.path())
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!(file = %ent.path().display(), error = %e, kind = T::KIND, "unreadable job record ignored");
                    continue;
                }
            };
            jobs.insert(job.id().to_string(), job);
        }
        let this = JobRecords {
            dir,
            jobs: Mutex::new(jobs),
            keep: KEEP_FINISHED,
        };
        let cut: Vec<String> = this
            .lock()?
            .values()
            .filter(|j| !j.is_final())
            .map(|j| j.id().to_string())
            .collect();
        for id in cut {
            this.update(&id, &mut interrupted)?;
        }
        Ok(this)
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<String, T>>> {
        self.jobs
            .lock()
            .map_err(|_| Error::Internal(format!("{} job table poisoned", T::KIND)))
    }

    pub fn get(&self, id: &str) -> Option<T> {
        self.lock().ok().and_then(|j| j.get(id).cloned())
    }

    /// Every record, by id.
    pub fn list(&self) -> Vec<T> {
        self.lock()
            .map(|j| j.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The first unfinished job, if any.
    pub fn running(&self) -> Option<T> {
        self.lock()
            .ok()
            .and_then(|j| j.values().find(|j| !j.is_final()).cloned())
    }

    /// Records a new job (file first, so an accepted job is never forgotten) unless a record
    /// with its id exists that `keep` says stays: then `Ok(Err(existing))`.
    pub fn insert_unless(
        &self,
        job: T,
        keep: impl FnOnce(&T) -> bool,
    ) -> Result<std::result::Result<(), T>> {
        let mut jobs = self.lock()?;
        if let Some(existing) = jobs.get(job.id())
            && keep(existing)
        {
            return Ok(Err(existing.clone()));
        }
        self.persist(&job)?;
        jobs.insert(job.id().to_string(), job);
        self.prune(&mut jobs);
        Ok(Ok(()))
    }

    /// Changes a job; its file is rewritten when its milestone changed.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut T)) -> Result<()> {
        let mut jobs = self.lock()?;
        let Some(job) = jobs.get_mut(id) else {
            return Ok(());
        };
        let before = job.milestone();
        f(job);
        if job.milestone() != before {
            self.persist(job)?;
        }
        Ok(())
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{}-{id}.json", T::KIND))
    }

    fn persist(&self, job: &T) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("create {}", self.dir.display()), e))?;
        let path = self.path(job.id());
        let tmp = self
            .dir
            .join(format!(".{}-{}.json.partial", T::KIND, job.id()));
        let bytes = serde_json::to_vec_pretty(job).map_err(|e| Error::Internal(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| Error::io(format!("write {}", path.display()), e))
    }

    /// Drops the oldest finished records past the limit ([`KEEP_FINISHED`]), files and all.
    fn prune(&self, jobs: &mut BTreeMap<String, T>) {
        let mut finished: Vec<(String, String)> = jobs
            .values()
            .filter(|j| j.is_final())
            .map(|j| (j.started_at().to_string(), j.id().to_string()))
            .collect();
        if finished.len() <= self.keep {
            return;
        }
        finished.sort();
        let excess = finished.len() - self.keep;
        for (_, id) in finished.into_iter().take(excess) {
            jobs.remove(&id);
            let path = self.path(&id);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %path.display(), error = %e, "old job record not removed");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Job {
        id: String,
        started_at: String,
        done: bool,
        note: String,
        #[serde(default)]
        progress: u64,
    }

    impl JobRecord for Job {
        const KIND: &'static str = "test";
        fn id(&self) -> &str {
            &self.id
        }
        fn is_final(&self) -> bool {
            self.done
        }
        fn started_at(&self) -> &str {
            &self.started_at
        }
        fn milestone(&self) -> String {
            format!("{} {}", self.done, self.note)
        }
    }

    fn job(id: &str, at: &str) -> Job {
        Job {
            id: id.into(),
            started_at: at.into(),
            done: false,
            note: String::new(),
            progress: 0,
        }
    }

    #[test]
    fn records_survive_a_reopen_and_unfinished_ones_are_ended_by_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = JobRecords::<Job>::open(dir.path(), |_| panic!("nothing to end")).unwrap();
        jobs.insert_unless(job("a", "1"), |_| true)
            .unwrap()
            .unwrap();
        jobs.insert_unless(job("b", "2"), |_| true)
            .unwrap()
            .unwrap();
        jobs.update("a", |j| j.done = true).unwrap();
        // progress alone is not a milestone: the file keeps the last milestone's record
        jobs.update("b", |j| j.progress = 7).unwrap();
        assert!(dir.path().join("jobs/test-a.json").is_file());
        drop(jobs);
        let mut ended = Vec::new();
        let jobs = JobRecords::<Job>::open(dir.path(), |j: &mut Job| {
            ended.push(j.id.clone());
            j.done = true;
            j.note = "interrupted".into();
        })
        .unwrap();
        assert_eq!(ended, ["b"]);
        assert_eq!(jobs.get("b").unwrap().note, "interrupted");
        assert_eq!(jobs.get("b").unwrap().progress, 0);
        assert!(jobs.get("a").unwrap().done);
        assert!(jobs.running().is_none());
        drop(jobs);
        // the ending was written: a second start has nothing to end
        JobRecords::<Job>::open(dir.path(), |_: &mut Job| panic!("ended twice")).unwrap();
    }

    #[test]
    fn an_id_is_refused_while_keep_says_its_record_stays_and_reused_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = JobRecords::<Job>::open(dir.path(), |_| {}).unwrap();
        jobs.insert_unless(job("a", "1"), |_| true)
            .unwrap()
            .unwrap();
        let mut again = job("a", "2");
        again.note = "second".into();
        let existing = jobs
            .insert_unless(again.clone(), |_| true)
            .unwrap()
            .unwrap_err();
        assert_eq!(existing.started_at, "1");
        jobs.insert_unless(again, |_| false).unwrap().unwrap();
        assert_eq!(jobs.get("a").unwrap().note, "second");
    }

    #[test]
    fn an_unreadable_record_is_skipped_and_other_kinds_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("jobs")).unwrap();
        std::fs::write(dir.path().join("jobs/test-bad.json"), b"{not json").unwrap();
        std::fs::write(dir.path().join("jobs/other-x.json"), b"{}").unwrap();
        let jobs = JobRecords::<Job>::open(dir.path(), |_| {}).unwrap();
        assert!(jobs.list().is_empty());
    }

    #[test]
    fn the_oldest_finished_records_go_past_the_limit_and_unfinished_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs = JobRecords::<Job>::open(dir.path(), |_| {}).unwrap();
        assert_eq!(jobs.keep, KEEP_FINISHED);
        jobs.keep = 10;
        jobs.insert_unless(job("running", "0000"), |_| true)
            .unwrap()
            .unwrap();
        for i in 0..=10 {
            let mut j = job(&format!("j{i:04}"), &format!("{:04}", i + 1));
            j.done = true;
            jobs.insert_unless(j, |_| true).unwrap().unwrap();
        }
        assert!(jobs.get("j0000").is_none(), "the oldest finished went");
        assert!(!dir.path().join("jobs/test-j0000.json").exists());
        assert!(jobs.get("j0001").is_some());
        assert!(
            jobs.get("running").is_some(),
            "an unfinished job is never pruned"
        );
        assert_eq!(jobs.list().len(), 10 + 1);
    }
}
