//! The log level, changed while the engine runs: `logging.level_file` names a file the engine
//! follows (in Kubernetes, the ConfigMap key `log-level`, which the kubelet updates inside the
//! running pod), so a new level needs no restart.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::telemetry::{LevelHandle, TelemetryError, parse_filter, with_quiet_dependencies};

/// How often the level file is read. A ConfigMap change reaches the pod within about a minute
/// (the kubelet's sync period), so a few seconds more do not matter.
pub const LEVEL_FILE_POLL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<LevelHandle> = OnceLock::new();

/// Remembers the global logger's level handle ([`crate::telemetry::init`]).
pub(crate) fn install(handle: LevelHandle) {
    let _ = HANDLE.set(handle);
}

/// Makes `level` (a level or filter directives, as `logging.level`) the running logger's level.
pub fn set(level: &str) -> Result<(), TelemetryError> {
    let filter = parse_filter(&with_quiet_dependencies(level))?;
    HANDLE
        .get()
        .ok_or(TelemetryError::NotReloadable)?
        .reload(filter)
        .map_err(|e| TelemetryError::InvalidLevel {
            value: level.to_string(),
            reason: e.to_string(),
        })
}

/// The level `path` holds (trimmed); `Ok(None)` when the file is absent or empty.
pub fn read_level_file(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|l| !l.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Follows `path` for the life of the process: each new level it holds becomes the log level.
/// A level that does not parse, or a file that cannot be read, is reported once (per content)
/// and the current level kept: a typo must not silence the logs or stop the engine.
pub async fn follow_level_file(path: PathBuf, mut current: String) {
    let mut refused: Option<String> = None;
    let mut tick = tokio::time::interval(LEVEL_FILE_POLL);
    loop {
        tick.tick().await;
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || read_level_file(&path)).await
        };
        let level = match read {
            Ok(Ok(Some(level))) => level,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                let why = e.to_string();
                if refused.as_deref() != Some(why.as_str()) {
                    tracing::warn!(file = %path.display(), error = %why, "cannot read the log level file; keeping the current level");
                    refused = Some(why);
                }
                continue;
            }
            Err(_) => continue,
        };
        if level == current || refused.as_deref() == Some(level.as_str()) {
            continue;
        }
        match set(&level) {
            Ok(()) => {
                tracing::info!(from = %current, to = %level, file = %path.display(), "log level changed");
                current = level;
                refused = None;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "the log level file holds a level that does not parse; keeping the current level");
                refused = Some(level);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_level_file_is_read_trimmed_and_an_absent_or_empty_file_is_no_level() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("log-level");
        assert_eq!(read_level_file(&f).unwrap(), None);
        std::fs::write(&f, " \n").unwrap();
        assert_eq!(read_level_file(&f).unwrap(), None);
        std::fs::write(&f, "debug\n").unwrap();
        assert_eq!(read_level_file(&f).unwrap().as_deref(), Some("debug"));
        let cfg = crate::config::LoggingConfig {
            level_file: Some(f),
            ..Default::default()
        };
        assert_eq!(cfg.effective_level(), "debug");
        let cfg = crate::config::LoggingConfig {
            level_file: Some(dir.path().join("absent")),
            ..Default::default()
        };
        assert_eq!(cfg.effective_level(), "info");
    }
}
