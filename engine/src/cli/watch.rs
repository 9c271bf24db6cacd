//! `instant-db sync --watch`: after the first sync, follow file-system events (the `notify`
//! crate, debounced) and apply each burst as it settles, until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use notify_debouncer_mini::new_debouncer;
use notify_debouncer_mini::notify::RecursiveMode;

use super::Format;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ingest::watch::{apply_changes, changes_of, watch_roots};
use crate::ingest::{Cancel, FileReport, Progress, SyncOptions};

/// Events of one path closer together than this are one change (an editor's save is often a
/// write, a rename and an attribute change).
const DEBOUNCE: Duration = Duration::from_millis(500);
/// How often the loop looks at the stop switch while no event comes.
const TICK: Duration = Duration::from_millis(200);

/// A progress that also stops the work when the stop switch is set (a signal came).
struct Stoppable<'a> {
    inner: &'a dyn Progress,
    stop: &'a Cancel,
}

impl Progress for Stoppable<'_> {
    fn start(&self, total: usize) {
        self.inner.start(total)
    }
    fn file_done(&self, report: &FileReport) {
        self.inner.file_done(report)
    }
    fn finish(&self) {
        self.inner.finish()
    }
    fn cancelled(&self) -> bool {
        self.stop.is_cancelled() || self.inner.cancelled()
    }
}

/// Sets `stop` at the first Ctrl-C or SIGTERM (from a thread of `rt`).
fn stop_on_signal(rt: &tokio::runtime::Runtime, stop: Cancel) -> Result<()> {
    let _guard = rt.enter();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("cannot listen for SIGTERM", e))?;
    rt.spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping the watch");
        stop.cancel();
    });
    Ok(())
}

/// Runs the first sync, then applies changes as they happen; returns the exit code.
pub fn run(engine: &Engine, paths: &[PathBuf], opts: &SyncOptions, fmt: Format) -> Result<i32> {
    let rt = super::runtime()?;
    let stop = Cancel::default();
    // Before the first sync, so that a signal during it also ends cleanly.
    stop_on_signal(&rt, stop.clone())?;
    let bar = super::progress::Bar::new("sync");
    let first = crate::ingest::sync_paths(
        engine,
        paths,
        opts,
        None,
        &Stoppable {
            inner: &bar,
            stop: &stop,
        },
    )?;
    super::sync::print(fmt, &first);
    let roots = watch_roots(paths);
    let mode = if opts.ingest.recursive.unwrap_or(true) {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut debouncer = new_debouncer(DEBOUNCE, tx)
        .map_err(|e| Error::Internal(format!("cannot watch the file system: {e}")))?;
    for root in &roots {
        debouncer
            .watcher()
            .watch(root, mode)
            .map_err(|e| Error::InvalidInput(format!("cannot watch {}: {e}", root.display())))?;
    }
    let names: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    tracing::info!(roots = ?names, "watching for changes (Ctrl-C to stop)");
    let quiet = crate::ingest::NoProgress;
    let progress = Stoppable {
        inner: &quiet,
        stop: &stop,
    };
    let mut code = 0;
    while !stop.is_cancelled() {
        let events = match rx.recv_timeout(TICK) {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                // e.g. the kernel's watch limit: said, and the watch goes on with what it has
                tracing::warn!(error = %e, "file-system watch error");
                continue;
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let changes = changes_of(engine, &roots, opts, events.into_iter().map(|e| e.path))?;
        if changes.is_empty() {
            continue;
        }
        let report = apply_changes(engine, &changes, opts, &progress)?;
        if report.failed() > 0 {
            code = 1;
        }
        // a file touched but not changed is not worth a line
        if !(report.added.is_empty()
            && report.changed.is_empty()
            && report.deleted.is_empty()
            && report.problems.is_empty())
        {
            super::sync::print(fmt, &report);
        }
    }
    drop(debouncer);
    // The graph is saved on the way out, so the next start does not replay the journal.
    engine.persist_index()?;
    Ok(code)
}
