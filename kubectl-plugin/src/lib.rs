//! `kubectl instantdb`: day-two work on instant-db instances from the command line.
//!
//! Formatting is pure ([`format`]); the commands ([`commands`], [`operation`], [`engine`]) read
//! and write through a `kube::Client`, so tests run them against the operator's fake API server.

pub mod cli;
pub mod commands;
pub mod engine;
pub mod error;
pub mod format;
pub mod operation;

pub use error::{Error, Result};

use std::time::Duration;

/// How the commands talk to the cluster and the terminal.
pub struct Ctx<'a> {
    /// Kubernetes client.
    pub client: kube::Client,
    /// Namespace of the instance.
    pub namespace: String,
    /// Where output goes.
    pub out: &'a mut (dyn std::io::Write + Send),
    /// How often `--wait` reads the object again.
    pub poll: Duration,
}

fn follow(wait: bool, timeout_secs: u64) -> operation::Follow {
    operation::Follow {
        wait,
        timeout: Duration::from_secs(timeout_secs),
    }
}

/// Runs one command.
pub async fn run(command: cli::Command, ctx: &mut Ctx<'_>) -> Result<()> {
    use cli::Command;
    match command {
        Command::Status { name } => commands::status(ctx, &name).await,
        Command::Backup {
            name,
            backup_name,
            policy,
            wait,
            timeout,
        } => operation::backup(ctx, &name, backup_name, policy, follow(wait, timeout)).await,
        Command::Restore {
            name,
            backup,
            wait,
            timeout,
        } => operation::restore(ctx, &name, backup, follow(wait, timeout)).await,
        Command::Search {
            name,
            query,
            top_k,
            mode,
        } => engine::search(ctx, &name, &query, top_k, mode).await,
        Command::Logs {
            name,
            tail,
            previous,
            follow,
        } => commands::logs(ctx, &name, tail, previous, follow).await,
        Command::Check { name } => engine::check(ctx, &name).await,
    }
}
