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
