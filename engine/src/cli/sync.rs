//! `instant-db sync`: the arguments, the run (local or `--server`) and the printed report.

use std::path::PathBuf;

use clap::Args;

use super::{Format, RemoteArgs, progress};
use crate::config::Config;
use crate::engine::{Engine, ModelLoading};
use crate::error::Result;
use crate::ingest::{IngestOptions, SyncOptions, SyncReport};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Directories (or files) to keep in sync.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// List what would be added, changed, unchanged and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove the documents under the given paths whose files no longer exist.
    #[arg(long)]
    pub delete_missing: bool,
    /// Only the top level of each directory.
    #[arg(long)]
    pub no_recursive: bool,
    /// Glob of paths to skip (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// JSON object of user metadata attached to every added or changed document.
    #[arg(long)]
    pub metadata: Option<String>,
    /// After the sync, follow changes to the files and apply them as they happen (debounced;
    /// deletions only with --delete-missing) until Ctrl-C or SIGTERM. Local only.
    #[arg(long, conflicts_with_all = ["dry_run", "server"])]
    pub watch: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: SyncArgs, config: Config, fmt: Format) -> Result<i32> {
    let opts = SyncOptions {
        dry_run: args.dry_run,
        delete_missing: args.delete_missing,
        ingest: IngestOptions {
            recursive: Some(!args.no_recursive),
            exclude: args.exclude,
            metadata: super::parse_metadata(args.metadata.as_deref())?,
        },
    };
    if args.watch {
        let engine = Engine::open(config, ModelLoading::BestEffort)?;
        return super::watch::run(&engine, &args.paths, &opts, fmt);
    }
    let report = match args.remote.server()? {
        Some(api) => api.sync(&args.paths, &opts)?,
        None => {
            // A dry run embeds nothing: the model is not loaded for it.
            let loading = if opts.dry_run {
                ModelLoading::Skip
            } else {
                ModelLoading::BestEffort
            };
            let engine = Engine::open(config, loading)?;
            let bar = progress::Bar::new(if opts.dry_run {
                "sync (dry run)"
            } else {
                "sync"
            });
            crate::ingest::sync_paths(&engine, &args.paths, &opts, None, &bar)?
        }
    };
    print(fmt, &report);
    Ok(if report.failed() > 0 || report.stopped.is_some() {
        1
    } else {
        0
    })
}

/// The report as JSON, or as a summary line and one line per file that was (or would be)
/// added, changed, deleted or not ingested.
pub fn print(fmt: Format, r: &SyncReport) {
    if fmt == Format::Json {
        match serde_json::to_string_pretty(r) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot encode output: {e}"),
        }
        return;
    }
    print!("{}", render(r));
}

fn render(r: &SyncReport) -> String {
    let mut out = String::new();
    let (lead, [add, change, delete]) = if r.dry_run {
        (
            "dry run (nothing changed):",
            ["to add", "to change", "to delete"],
        )
    } else {
        ("synced:", ["added", "changed", "deleted"])
    };
    out.push_str(&format!(
        "{lead} {} {add}, {} {change}, {} unchanged, {} {delete}, {} not ingested",
        r.added.len(),
        r.changed.len(),
        r.unchanged,
        r.deleted.len(),
        r.problems.len(),
    ));
    if !r.dry_run {
        out.push_str(&format!("; {} chunks in {:.1}s", r.chunks, r.seconds));
    }
    out.push('\n');
    for (mark, list) in [("+", &r.added), ("~", &r.changed), ("-", &r.deleted)] {
        for s in list {
            out.push_str(&format!("  {mark} {s}\n"));
        }
    }
    for p in &r.problems {
        out.push_str(&format!(
            "  ! {} — {}\n",
            p.source,
            p.reason.as_deref().unwrap_or("")
        ));
    }
    if !r.missing.is_empty() {
        out.push_str(&format!(
            "{} documents whose files are gone were kept (pass --delete-missing to remove them):\n",
            r.missing.len()
        ));
        for s in &r.missing {
            out.push_str(&format!("  ? {s}\n"));
        }
    }
    if let Some(d) = &r.degraded {
        out.push_str(&format!("warning: {d}\n"));
    }
    if let Some(s) = &r.stopped {
        out.push_str(&format!("error: {s}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_report_says_nothing_changed_and_lists_each_file_with_its_mark() {
        let r = SyncReport {
            dry_run: true,
            added: vec!["/d/new.md".into()],
            changed: vec!["/d/edited.md".into()],
            unchanged: 3,
            deleted: vec!["/d/gone.md".into()],
            ..Default::default()
        };
        let text = render(&r);
        assert!(
            text.starts_with("dry run (nothing changed): 1 to add, 1 to change, 3 unchanged, 1 to delete, 0 not ingested\n"),
            "{text}"
        );
        assert!(
            text.contains("  + /d/new.md\n  ~ /d/edited.md\n  - /d/gone.md\n"),
            "{text}"
        );
    }

    #[test]
    fn kept_missing_documents_are_listed_with_how_to_remove_them() {
        let r = SyncReport {
            missing: vec!["/d/gone.md".into()],
            ..Default::default()
        };
        let text = render(&r);
        assert!(text.starts_with("synced: 0 added"), "{text}");
        assert!(
            text.contains("pass --delete-missing") && text.contains("  ? /d/gone.md"),
            "{text}"
        );
    }
}
