//! Progress for long commands: a bar on a terminal, periodic log lines otherwise.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::ingest::{FileReport, Progress};

pub struct Bar {
    what: &'static str,
    bar: Option<ProgressBar>,
    log_state: Mutex<(usize, usize, Instant)>,
}

impl Bar {
    pub fn new(what: &'static str) -> Bar {
        let bar = super::stderr_is_terminal().then(|| {
            let b = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} files {per_sec} eta {eta} {wide_msg}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_prefix(what);
            b
        });
        Bar {
            what,
            bar,
            log_state: Mutex::new((0, 0, Instant::now())),
        }
    }
}

impl Progress for Bar {
    fn start(&self, total: usize) {
        match &self.bar {
            Some(b) => b.set_length(total as u64),
            None => tracing::info!(total, "{} started", self.what),
        }
        if let Ok(mut s) = self.log_state.lock() {
            *s = (0, total, Instant::now());
        }
    }

    fn file_done(&self, report: &FileReport) {
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(report.source.rsplit('/').next().unwrap_or("").to_string());
            return;
        }
        if let Ok(mut s) = self.log_state.lock() {
            s.0 += 1;
            if s.2.elapsed() >= Duration::from_secs(5) || s.0 == s.1 {
                tracing::info!(done = s.0, total = s.1, "{} progress", self.what);
                s.2 = Instant::now();
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Byte progress of backups and restores, per phase.
pub struct ByteBar {
    bar: Option<ProgressBar>,
    what: &'static str,
}

impl ByteBar {
    pub fn new(what: &'static str) -> ByteBar {
        let bar = super::stderr_is_terminal().then(|| {
            let b = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} {msg:10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_prefix(what);
            b
        });
        ByteBar { bar, what }
    }

    pub fn sink(&self) -> crate::backup::ProgressSink {
        let bar = self.bar.clone();
        let what = self.what;
        let last = std::sync::Arc::new(Mutex::new((String::new(), Instant::now())));
        std::sync::Arc::new(move |p: crate::backup::BackupProgress| {
            let phase = format!("{:?}", p.phase).to_lowercase();
            match &bar {
                Some(b) => {
                    b.set_message(phase);
                    b.set_length(p.bytes_total);
                    b.set_position(p.bytes_done);
                }
                None => {
                    if let Ok(mut l) = last.lock()
                        && (l.0 != phase || l.1.elapsed() >= Duration::from_secs(5))
                    {
                        tracing::info!(phase = %phase, bytes_done = p.bytes_done, bytes_total = p.bytes_total, "{what} progress");
                        *l = (phase, Instant::now());
                    }
                }
            }
        })
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
