//! Command line of `kubectl instantdb` (kubectl hands every argument to the plugin, so the
//! plugin reads `-n`, `--context` and `--kubeconfig` itself, as kubectl does).

use clap::{Parser, Subcommand, ValueEnum};

/// Day-two work on instant-db instances: kubectl instantdb COMMAND NAME.
#[derive(Debug, Parser)]
#[command(name = "kubectl-instantdb", bin_name = "kubectl instantdb", version)]
pub struct Cli {
    /// Namespace of the instance. Default: the context's namespace, else `default`.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Kubeconfig context. Default: the current context.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config.
    #[arg(long, global = true)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One screen on an instance: conditions, pod, volume, documents, backups, recovery, Events.
    Status {
        /// InstantDb name.
        name: String,
    },
    /// Create an InstantDbBackup of the instance (destination: its backup policy's).
    Backup {
        /// InstantDb name.
        name: String,
        /// Name of the backup. Default: `<name>-manual-<UTC time>`.
        #[arg(long = "backup-name")]
        backup_name: Option<String>,
        /// Policy whose destination to use, when more than one covers the instance.
        #[arg(long)]
        policy: Option<String>,
        /// Follow the backup until it completes or fails, printing each step.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this many seconds (the backup goes on).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Create an InstantDbRestore of the instance from a backup.
    Restore {
        /// InstantDb name.
        name: String,
        /// InstantDbBackup to restore. Without it: the instance's latest completed backup.
        #[arg(long)]
        backup: Option<String>,
        /// Follow the restore until it completes or fails, printing each step.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this many seconds (the restore goes on).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Search the instance with its read key (through a port-forward to the engine pod).
    Search {
        /// InstantDb name.
        name: String,
        /// The query.
        query: String,
        /// Hits to show.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// Search mode.
        #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
        mode: Mode,
    },
    /// Logs of the engine pod.
    Logs {
        /// InstantDb name.
        name: String,
        /// Lines from the end.
        #[arg(long)]
        tail: Option<i64>,
        /// Logs of the previous (crashed) container.
        #[arg(short = 'p', long)]
        previous: bool,
        /// Stream new lines.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Run the engine's integrity check now (admin token, through a port-forward).
    Check {
        /// InstantDb name.
        name: String,
    },
}

/// Search mode of `search`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Vector and keyword results fused.
    Hybrid,
    /// Keyword (BM25) only.
    Keyword,
    /// Vector similarity only.
    Vector,
}

impl Mode {
    /// The engine's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Keyword => "keyword",
            Mode::Vector => "vector",
        }
    }
}
