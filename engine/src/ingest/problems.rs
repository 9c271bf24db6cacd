//! Why a file was not ingested, as a small closed set (for the report, the metrics label and
//! the summary), and the summary an ingest that took nothing ends with.

use serde::{Deserialize, Serialize};

use super::{FileOutcome, FileReport, IngestReport};
use crate::parse::ParseError;

/// The reason class of a skipped or failed file (`instantdb_ingest_problems_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// No parser for the file's type.
    Unsupported,
    /// Password-protected or DRM-encrypted.
    Encrypted,
    /// A damaged container or structure.
    Corrupt,
    /// Readable, but its content is invalid for its format (a JSON syntax error...).
    Invalid,
    /// Over `ingest.max_file_bytes`.
    TooLarge,
    /// Resolves outside `ingest.allowed_roots`.
    OutsideRoots,
    /// A symbolic link loop.
    SymlinkLoop,
    /// The file (or a path) cannot be read.
    Unreadable,
    /// Parsed, but the database refused to store it.
    NotStored,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsupported => "unsupported",
            Self::Encrypted => "encrypted",
            Self::Corrupt => "corrupt",
            Self::Invalid => "invalid",
            Self::TooLarge => "too_large",
            Self::OutsideRoots => "outside_roots",
            Self::SymlinkLoop => "symlink_loop",
            Self::Unreadable => "unreadable",
            Self::NotStored => "not_stored",
        }
    }

    /// Skipped: the engine chose not to read it, or cannot by design. Failed: something is
    /// wrong with the file or the system that someone should look at.
    pub fn outcome(self) -> FileOutcome {
        match self {
            Self::Unsupported
            | Self::Encrypted
            | Self::TooLarge
            | Self::OutsideRoots
            | Self::SymlinkLoop => FileOutcome::Skipped,
            Self::Corrupt | Self::Invalid | Self::Unreadable | Self::NotStored => {
                FileOutcome::Failed
            }
        }
    }

    /// The class of a parse error.
    pub fn of_parse(e: &ParseError) -> Self {
        match e {
            ParseError::Unsupported(_) => Self::Unsupported,
            ParseError::Encrypted { .. } => Self::Encrypted,
            ParseError::Corrupt { .. } => Self::Corrupt,
            ParseError::Syntax { .. } | ParseError::Invalid { .. } => Self::Invalid,
        }
    }

    /// What to do about files of this kind, for the summary.
    fn advice(self) -> &'static str {
        match self {
            Self::Unsupported => {
                "convert them to a supported type (the README lists them under Supported formats) or leave them out with --exclude"
            }
            Self::Encrypted => "save copies without the password and ingest those",
            Self::Corrupt => "re-save or export them again from the application that made them",
            Self::Invalid => "fix the errors named above",
            Self::TooLarge => "raise ingest.max_file_bytes or split the files",
            Self::OutsideRoots => "add their directory to ingest.allowed_roots",
            Self::SymlinkLoop => "remove the looping link",
            Self::Unreadable => "check the paths and their permissions",
            Self::NotStored => "see the error above",
        }
    }
}

/// The message of a report in which nothing was ingested although files were found:
/// `0 files ingested, N skipped: 2 unsupported (.png, .exe), 1 encrypted; what to do`.
/// `None` when something was ingested (or unchanged) or nothing was found at all.
pub fn nothing_ingested(report: &IngestReport) -> Option<String> {
    if report.added + report.updated + report.unchanged > 0 || report.problems.is_empty() {
        return None;
    }
    let mut kinds: Vec<(ProblemKind, Vec<&FileReport>)> = Vec::new();
    for p in &report.problems {
        let k = p.kind.unwrap_or(ProblemKind::Unreadable);
        match kinds.iter_mut().find(|(x, _)| *x == k) {
            Some((_, v)) => v.push(p),
            None => kinds.push((k, vec![p])),
        }
    }
    let parts: Vec<String> = kinds
        .iter()
        .map(|(k, files)| {
            let mut s = format!("{} {}", files.len(), k.as_str().replace('_', " "));
            if *k == ProblemKind::Unsupported {
                let mut exts: Vec<String> = files
                    .iter()
                    .map(|f| {
                        std::path::Path::new(&f.source).extension().map_or_else(
                            || "(no extension)".to_string(),
                            |e| format!(".{}", e.to_string_lossy().to_lowercase()),
                        )
                    })
                    .collect();
                exts.sort();
                exts.dedup();
                s.push_str(&format!(" ({})", exts.join(", ")));
            }
            s
        })
        .collect();
    let advice: Vec<&str> = kinds.iter().map(|(k, _)| k.advice()).collect();
    Some(format!(
        "0 files ingested, {} skipped or failed: {}; {}",
        report.problems.len(),
        parts.join(", "),
        advice.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(source: &str, kind: ProblemKind) -> FileReport {
        FileReport {
            source: source.into(),
            outcome: kind.outcome(),
            document_id: None,
            chunks: 0,
            reason: Some("why".into()),
            kind: Some(kind),
        }
    }

    #[test]
    fn a_report_with_nothing_ingested_says_what_was_skipped_by_kind_and_what_to_do() {
        let mut r = IngestReport {
            skipped: 3,
            problems: vec![
                problem("/d/a.png", ProblemKind::Unsupported),
                problem("/d/b.PNG", ProblemKind::Unsupported),
                problem("/d/c.exe", ProblemKind::Unsupported),
                problem("/d/d.pdf", ProblemKind::Encrypted),
            ],
            ..Default::default()
        };
        let msg = nothing_ingested(&r).unwrap_or_default();
        assert!(
            msg.starts_with(
                "0 files ingested, 4 skipped or failed: 3 unsupported (.exe, .png), 1 encrypted;"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("convert them") && msg.contains("without the password"),
            "{msg}"
        );
        r.unchanged = 1;
        assert_eq!(nothing_ingested(&r), None);
        assert_eq!(nothing_ingested(&IngestReport::default()), None);
    }
}
