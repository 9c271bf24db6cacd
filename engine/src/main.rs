//! `instant-db`: the engine's command line and server.

use std::process::ExitCode;

use clap::Parser;
use instant_db::cli::{self, Cli};

/// Returns the exit code instead of calling `std::process::exit`, which would skip the
/// telemetry guard's drop: the log file's buffered lines and the queued OTLP spans would be lost
/// on every exit, SIGTERM included.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code(e.exit_code());
        }
    };
    let telemetry = match instant_db::telemetry::init(&telemetry_config(&config)) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match cli::run(cli, config) {
        Ok(code) => code,
        Err(e) => {
            tracing::debug!(error = ?e, "command failed");
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    // Flush logs and traces before the process ends.
    drop(telemetry);
    exit_code(code)
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Logging settings from the engine configuration (the level from the level file when one is
/// configured and holds one).
fn telemetry_config(config: &instant_db::config::Config) -> instant_db::telemetry::TelemetryConfig {
    instant_db::telemetry::TelemetryConfig {
        level: instant_db::telemetry::with_quiet_dependencies(&config.logging.effective_level()),
        format: match config.logging.format.as_deref() {
            Some("json") => instant_db::telemetry::LogFormat::Json,
            Some("text") => instant_db::telemetry::LogFormat::Text,
            _ => instant_db::telemetry::LogFormat::auto(),
        },
        file: config.logging.file.clone(),
        rotation: match config.logging.max_file_bytes {
            0 => instant_db::telemetry::LogRotation::Daily,
            n => instant_db::telemetry::LogRotation::Size(n),
        },
        keep_files: config.logging.max_files,
        otlp_endpoint: config.otel.endpoint.clone(),
        service_name: config.otel.service_name.clone(),
    }
}
