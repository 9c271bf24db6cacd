//! `instant-db`: the engine's command line and server.

use clap::Parser;
use instant_db::cli::{self, Cli};

fn main() {
    let cli = Cli::parse();
    let config = match cli::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    };
    let _telemetry = match instant_db::telemetry::init(&telemetry_config(&config)) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    match cli::run(cli, config) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            tracing::debug!(error = ?e, "command failed");
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}

/// Logging settings from the engine configuration. Dependencies that narrate routine work at
/// INFO are held to warnings unless the level names them.
fn telemetry_config(config: &instant_db::config::Config) -> instant_db::telemetry::TelemetryConfig {
    let mut level = config.logging.level.clone();
    for quiet in ["hnsw_rs", "ort", "object_store"] {
        if !level.contains(quiet) {
            level.push_str(&format!(",{quiet}=warn"));
        }
    }
    instant_db::telemetry::TelemetryConfig {
        level,
        format: match config.logging.format.as_deref() {
            Some("json") => instant_db::telemetry::LogFormat::Json,
            Some("text") => instant_db::telemetry::LogFormat::Text,
            _ => instant_db::telemetry::LogFormat::auto(),
        },
        file: config.logging.file.clone(),
        otlp_endpoint: config.otel.endpoint.clone(),
    }
}
