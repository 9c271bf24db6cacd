//! Heuristic document-type classification from the file name, the title and the content.

use std::fmt;
use std::path::Path;

/// The kind of document, stored per document and usable in metadata filters
/// (`document_type=meeting_notes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentType {
    Documentation,
    MeetingNotes,
    Report,
    Presentation,
    Email,
    Faq,
    HowTo,
    ProductNotes,
    Data,
    Code,
    Log,
    Other,
}

impl DocumentType {
    /// Every type, in declaration order.
    pub const ALL: [DocumentType; 12] = [
        Self::Documentation,
        Self::MeetingNotes,
        Self::Report,
        Self::Presentation,
        Self::Email,
        Self::Faq,
        Self::HowTo,
        Self::ProductNotes,
        Self::Data,
        Self::Code,
        Self::Log,
        Self::Other,
    ];

    /// The snake_case name (same as serde and `Display`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Documentation => "documentation",
            Self::MeetingNotes => "meeting_notes",
            Self::Report => "report",
            Self::Presentation => "presentation",
            Self::Email => "email",
            Self::Faq => "faq",
            Self::HowTo => "how_to",
            Self::ProductNotes => "product_notes",
            Self::Data => "data",
            Self::Code => "code",
            Self::Log => "log",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for DocumentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DocumentType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == norm || (norm == "howto" && *t == Self::HowTo))
            .ok_or_else(|| format!("unknown document type {s:?}"))
    }
}

const CODE_EXT: &[&str] = &[
    "rs", "py", "js", "ts", "go", "java", "c", "h", "cpp", "hpp", "cs", "rb", "php", "sh", "kt",
    "swift", "scala", "sql", "lua", "pl", "pm", "pyi", "mjs", "cjs", "jsx", "tsx", "mts", "cts",
    "kts", "cc", "cxx", "hh", "hxx", "bash", "zsh", "r", "ipynb",
];
const DATA_EXT: &[&str] = &[
    "csv", "tsv", "tab", "json", "jsonl", "ndjson", "yaml", "yml", "xml", "xlsx", "xlsm", "xlsb",
    "xls", "ods",
];
const SLIDE_EXT: &[&str] = &["ppt", "pptx", "key", "odp"];

static LOG_LINE: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"^\[?(?:\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\d{2}:\d{2}:\d{2}|[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}).*\b(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)\b",
    )
    .ok()
});

fn count(hay: &str, needles: &[&str]) -> usize {
    needles.iter().filter(|n| hay.contains(*n)).count()
}

fn line_starts(text: &str, prefixes: &[&str], max_lines: usize) -> usize {
    text.lines()
        .take(max_lines)
        .map(|l| l.trim_start().to_ascii_lowercase())
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .count()
}

/// Classify a document by heuristics over its path, title and text. Signals in the file name
/// and title weigh most; content signals (e.g. "attendees"/"action items" → meeting notes,
/// `From:`/`Subject:` headers → email, `Q:`/`A:` or "FAQ" → FAQ, "step 1"/"how to" → how-to)
/// decide otherwise; the extension decides for data, code and logs when nothing else does.
pub fn classify(path: &Path, title: Option<&str>, text: &str) -> DocumentType {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| s.to_ascii_lowercase().replace(['_', '-', '.'], " "))
        .unwrap_or_default();
    let name = format!(
        " {stem} {} ",
        title.unwrap_or_default().to_ascii_lowercase()
    );
    // Only look at the beginning of long documents: it is where the signals are, and it keeps
    // classification cheap.
    let head: String = text
        .chars()
        .take(20_000)
        .collect::<String>()
        .to_ascii_lowercase();

    use DocumentType as T;
    let mut scores: Vec<(T, i32)> = T::ALL.iter().map(|t| (*t, 0)).collect();
    let mut add = |t: T, s: i32| {
        if let Some(e) = scores.iter_mut().find(|(x, _)| *x == t) {
            e.1 += s;
        }
    };

    // Name and title.
    let name_signals: &[(T, &[&str])] = &[
        (
            T::MeetingNotes,
            &[
                "meeting",
                "minutes",
                "standup",
                "stand up",
                "retro",
                "sync notes",
                "1:1",
                "kickoff",
                "planning notes",
            ],
        ),
        (T::Faq, &[" faq", "frequently asked", "questions"]),
        (
            T::HowTo,
            &[
                "how to",
                "howto",
                "guide",
                "tutorial",
                "getting started",
                "onboarding",
                "walkthrough",
                "setup",
                "troubleshoot",
            ],
        ),
        (
            T::Report,
            &[
                "report",
                "release notes",
                "changelog",
                "quarterly",
                "summary",
                "analysis",
                "postmortem",
                "post mortem",
                "review",
            ],
        ),
        (
            T::Email,
            &["email", "e mail", "mail", "thread", "re:", "fwd:"],
        ),
        (
            T::Presentation,
            &["slides", "deck", "presentation", "keynote"],
        ),
        (
            T::ProductNotes,
            &[
                "product notes",
                "product note",
                "spec",
                "prd",
                "roadmap",
                "feature",
                "requirements",
                "vision",
            ],
        ),
        (
            T::Documentation,
            &[
                "readme",
                "docs",
                "documentation",
                "manual",
                "reference",
                "api",
            ],
        ),
        (T::Log, &[" log ", "logs"]),
    ];
    for (t, needles) in name_signals {
        let n = count(&name, needles);
        if n > 0 {
            add(*t, 4 + n as i32);
        }
    }

    // Content.
    let meeting = count(
        &head,
        &[
            "attendees",
            "action items",
            "agenda",
            "meeting minutes",
            "participants",
            "next meeting",
            "decisions",
            "absent:",
        ],
    );
    add(T::MeetingNotes, 3 * meeting as i32);
    if head.contains("attendees:") || head.contains("attendees**") || head.contains("present:") {
        add(T::MeetingNotes, 3);
    }
    add(
        T::Report,
        2 * count(
            &head,
            &[
                "root cause",
                "timeline",
                "impact",
                "what went well",
                "what went wrong",
                "incident",
            ],
        ) as i32,
    );
    let headers = line_starts(
        &head,
        &["from:", "to:", "subject:", "cc:", "date:", "sent:"],
        400,
    );
    if headers >= 2 {
        add(T::Email, 4 + 2 * headers.min(6) as i32);
    }
    add(
        T::Email,
        2 * count(
            &head,
            &[
                "best regards",
                "kind regards",
                "thanks,\n",
                "cheers,\n",
                "wrote:",
            ],
        ) as i32,
    );
    let qa = line_starts(&head, &["q:", "a:", "question:", "answer:"], 2000);
    let questions = head
        .lines()
        .filter(|l| {
            let l = l.trim().trim_start_matches('#').trim();
            l.ends_with('?') && l.len() < 160
        })
        .count();
    add(
        T::Faq,
        (qa.min(10) as i32)
            + if questions >= 3 {
                3 + questions.min(10) as i32
            } else {
                0
            },
    );
    if head.contains("frequently asked") || head.contains(" faq") || head.starts_with("faq") {
        add(T::Faq, 5);
    }
    let steps = count(
        &head,
        &[
            "step 1",
            "step 2",
            "step 3",
            "how to ",
            "first, ",
            "next, ",
            "finally, ",
            "prerequisites",
            "you will need",
            "follow these steps",
        ],
    );
    add(T::HowTo, 2 * steps as i32);
    add(
        T::Report,
        2 * count(
            &head,
            &[
                "executive summary",
                "release notes",
                "key findings",
                "results",
                "in this release",
                "highlights",
                "metrics",
                "conclusion",
                "bug fixes",
                "known issues",
            ],
        ) as i32,
    );
    add(
        T::Presentation,
        2 * count(&head, &["slide 1", "slide 2", "next slide", "--- slide"]) as i32,
    );
    add(
        T::ProductNotes,
        2 * count(
            &head,
            &[
                "user story",
                "user stories",
                "requirements",
                "problem statement",
                "goals",
                "non-goals",
                "success metrics",
                "target users",
                "proposal",
                "open questions",
            ],
        ) as i32,
    );
    add(
        T::Documentation,
        count(
            &head,
            &[
                "installation",
                "configuration",
                "usage",
                "overview",
                "parameters",
                "returns",
                "example",
            ],
        ) as i32,
    );
    let log_lines = text
        .lines()
        .take(200)
        .filter(|l| LOG_LINE.as_ref().is_some_and(|re| re.is_match(l)))
        .count();
    if log_lines >= 3 {
        add(T::Log, 5 + log_lines.min(20) as i32);
    }

    // Extension.
    if ext == "log" {
        add(T::Log, 8);
    } else if CODE_EXT.contains(&ext.as_str()) {
        add(T::Code, 10);
    } else if DATA_EXT.contains(&ext.as_str()) {
        add(T::Data, 7);
    } else if SLIDE_EXT.contains(&ext.as_str()) {
        add(T::Presentation, 8);
    } else if ext == "eml" || ext == "msg" {
        add(T::Email, 10);
    }

    let (best, score) =
        scores.iter().copied().fold(
            (T::Other, 0),
            |acc, (t, s)| if s > acc.1 { (t, s) } else { acc },
        );
    if score >= 3 {
        best
    } else if matches!(
        ext.as_str(),
        "md" | "markdown" | "rst" | "html" | "htm" | "txt" | "text"
    ) && text.len() > 200
    {
        T::Documentation
    } else {
        T::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(path: &str, title: Option<&str>, text: &str) -> DocumentType {
        classify(Path::new(path), title, text)
    }

    #[test]
    fn meeting_notes_from_content() {
        let t = "Weekly sync\n\nAttendees: Ana, Bo\n\nAgenda\n- roadmap\n\nAction items\n- Ana: ship it";
        assert_eq!(
            c("notes/2024-03-01.md", None, t),
            DocumentType::MeetingNotes
        );
    }

    #[test]
    fn email_from_headers() {
        let t = "From: ana@example.com\nTo: bo@example.com\nSubject: Launch\n\nHi Bo,\nsee below.\n\nBest regards,\nAna";
        assert_eq!(c("thread.txt", Some("Launch"), t), DocumentType::Email);
    }

    #[test]
    fn faq_from_questions() {
        let t = "Q: How do I log in?\nA: Use your email.\n\nQ: Can I export?\nA: Yes.";
        assert_eq!(c("help.txt", None, t), DocumentType::Faq);
        assert_eq!(
            c("faq.md", Some("FAQ"), "# FAQ\n\n## How?\n\nLike this."),
            DocumentType::Faq
        );
    }

    #[test]
    fn how_to_from_steps() {
        let t =
            "To export notes follow these steps.\n\nStep 1: open settings.\nStep 2: click export.";
        assert_eq!(c("export.md", None, t), DocumentType::HowTo);
        assert_eq!(
            c("how-to-sync.md", Some("How to sync"), "text"),
            DocumentType::HowTo
        );
    }

    #[test]
    fn report_product_notes_and_presentation() {
        assert_eq!(
            c(
                "release-notes-2.4.md",
                Some("Release notes 2.4"),
                "In this release: bug fixes."
            ),
            DocumentType::Report
        );
        assert_eq!(
            c(
                "search-spec.md",
                None,
                "Problem statement\n\nGoals\n\nNon-goals\n\nUser stories"
            ),
            DocumentType::ProductNotes
        );
        assert_eq!(c("q3.pptx", None, ""), DocumentType::Presentation);
    }

    #[test]
    fn data_code_log_by_extension() {
        assert_eq!(
            c("prices.csv", None, "plan,price\npro,8"),
            DocumentType::Data
        );
        assert_eq!(c("flags.json", None, "{\"a\":1}"), DocumentType::Data);
        assert_eq!(c("main.rs", None, "fn main() {}"), DocumentType::Code);
        let log = "2024-01-01 10:00:00 INFO start\n2024-01-01 10:00:01 ERROR boom\n2024-01-01 10:00:02 WARN slow\n";
        assert_eq!(c("app.log", None, log), DocumentType::Log);
    }

    #[test]
    fn documentation_and_other_fallbacks() {
        let long = "This module explains the configuration of the sync engine in depth. ".repeat(5);
        assert_eq!(c("sync.md", None, &long), DocumentType::Documentation);
        assert_eq!(c("x.bin", None, "zz"), DocumentType::Other);
        assert_eq!(c("", None, ""), DocumentType::Other);
    }

    #[test]
    fn serde_display_and_from_str_agree() {
        for t in DocumentType::ALL {
            let json = serde_json::to_string(&t).unwrap_or_default();
            assert_eq!(json, format!("\"{t}\""));
            assert_eq!(t.to_string().parse::<DocumentType>(), Ok(t));
        }
        assert_eq!("how-to".parse::<DocumentType>(), Ok(DocumentType::HowTo));
        assert!("nope".parse::<DocumentType>().is_err());
    }
}
