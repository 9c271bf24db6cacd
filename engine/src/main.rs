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
    let _telemetry =
        match instant_db::logging::init(&config.logging, config.otel.endpoint.as_deref()) {
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
