//! Printing results as text for people or JSON for scripts (`--format`).

use std::io::IsTerminal;

use clap::ValueEnum;

use crate::ingest::IngestReport;
use crate::search::SearchResponse;
use crate::store::IntegrityReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

pub fn json_or_text(fmt: Format, v: &serde_json::Value) {
    match fmt {
        Format::Json => print_json(v),
        Format::Text => match serde_norway::to_string(v) {
            Ok(s) => print!("{s}"),
            Err(_) => print_json(v),
        },
    }
}

/// `<mark>` tags become bold on a terminal and `**` elsewhere.
fn marks(s: &str) -> String {
    let (open, close) = if std::io::stdout().is_terminal() {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    s.replace("<mark>", open).replace("</mark>", close)
}

pub fn search_response(fmt: Format, r: &SearchResponse) {
    if fmt == Format::Json {
        return print_json(r);
    }
    if let Some(d) = &r.degraded {
        println!("note: {d}");
    }
    if r.hits.is_empty() {
        println!(
            "no results for {:?} ({} search, {:.1} ms)",
            r.query,
            r.mode.as_str(),
            r.took_ms
        );
        return;
    }
    println!(
        "{} results for {:?} ({} search, {:.1} ms)",
        r.hits.len(),
        r.query,
        r.mode.as_str(),
        r.took_ms
    );
    for h in &r.hits {
        let title = h.document.title.as_deref().unwrap_or("(untitled)");
        println!("\n{:>2}. {title}  [score {:.4}]", h.rank, h.score);
        println!("    {}", h.document.source);
        if !h.chunk.section_path.is_empty() {
            println!("    § {}", h.chunk.section_path.join(" › "));
        }
        if let Some(hl) = h.highlights.first() {
            println!("    {}", marks(hl));
        }
    }
}

pub fn ingest_report(fmt: Format, r: &IngestReport) {
    if fmt == Format::Json {
        let mut compact = r.clone();
        compact.files.clear();
        return print_json(&compact);
    }
    println!(
        "ingested {} files in {:.1}s: {} added, {} updated, {} unchanged, {} skipped, {} failed; {} chunks ({:.1} docs/s, {:.1} chunks/s)",
        r.files_seen,
        r.seconds,
        r.added,
        r.updated,
        r.unchanged,
        r.skipped,
        r.failed,
        r.chunks,
        r.documents_per_second,
        r.chunks_per_second
    );
    if let Some(d) = &r.degraded {
        println!("warning: {d}");
    }
    if let Some(s) = &r.stopped {
        println!("error: {s}");
    }
    if let Some(n) = &r.nothing_ingested {
        println!("{n}");
    }
    for p in &r.problems {
        println!(
            "  {:?}: {} — {}",
            p.outcome,
            p.source,
            p.reason.as_deref().unwrap_or("")
        );
    }
}

pub fn integrity(fmt: Format, r: &IntegrityReport) {
    if fmt == Format::Json {
        return print_json(r);
    }
    if r.ok {
        println!(
            "integrity ok: {} documents, {} chunks, {} embeddings",
            r.documents, r.chunks, r.embeddings
        );
    } else {
        println!("integrity FAILED:");
        for p in &r.problems {
            println!("  - {p}");
        }
        match &r.advice {
            // the advice is also the last problem when the source data is damaged
            Some(a) if !r.problems.contains(a) => println!("{a}"),
            Some(_) => {}
            None => println!(
                "run `instant-db repair` to rebuild derived data, or restore from a backup if the database itself is damaged"
            ),
        }
    }
}
