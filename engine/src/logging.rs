//! Log set-up for the binary. Replaced by `telemetry` (file rotation, OTLP) when it lands.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LoggingConfig;
use crate::error::{Error, Result};

pub struct Guard;

pub fn init(cfg: &LoggingConfig, _otlp: Option<&str>) -> Result<Guard> {
    // Dependencies that narrate routine work at INFO are kept to warnings unless named.
    let mut directive = cfg.level.clone();
    for quiet in ["hnsw_rs", "ort", "object_store"] {
        if !directive.contains(quiet) {
            directive.push_str(&format!(",{quiet}=warn"));
        }
    }
    let filter = EnvFilter::try_new(&directive).map_err(|e| {
        Error::Config(format!(
            "key `logging.level`: invalid value `{}`: {e}",
            cfg.level
        ))
    })?;
    let json = match cfg.format.as_deref() {
        Some("json") => true,
        Some(_) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    Ok(Guard)
}
