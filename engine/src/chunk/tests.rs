//! Chunking invariants on hand-made, generated and demo-corpus documents.

use super::*;
use crate::parse::{Block, ParserRegistry};

/// Counts ceil(chars/4) per whitespace-separated word: additive like a subword tokenizer,
/// and a long word can exceed the maximum on its own.
struct CharCounter;
impl TokenCounter for CharCounter {
    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace()
            .map(|w| w.chars().count().div_ceil(4))
            .sum()
    }
}

fn block(path: &[&str], kind: BlockKind, text: &str) -> Block {
    Block {
        section_path: path.iter().map(|s| s.to_string()).collect(),
        kind,
        text: text.to_string(),
    }
}

fn doc(blocks: Vec<Block>) -> ParsedDocument {
    ParsedDocument {
        title: None,
        blocks,
        metadata: serde_json::Map::new(),
        attachments: Vec::new(),
    }
}

fn is_sentence_start(full: &str, pos: usize) -> bool {
    let before = full[..pos].trim_end();
    before.is_empty()
        || full[before.len()..pos].contains('\n')
        || before.ends_with(['.', '!', '?', '"', '\'', ')', ']'])
}

/// Section byte ranges (start of first block .. end of last block) with their paths; a
/// section of only its heading joins the subsection right after it (the module's rule).
fn sections(d: &ParsedDocument) -> Vec<(usize, usize, Vec<String>)> {
    let mut out: Vec<(usize, usize, Vec<String>)> = Vec::new();
    let mut heading_only = false;
    let mut off = 0;
    for (i, b) in d.blocks.iter().enumerate() {
        if i > 0 {
            off += BLOCK_SEPARATOR.len();
        }
        let new =
            b.kind == BlockKind::Heading || out.last().is_none_or(|(_, _, p)| *p != b.section_path);
        if new {
            match out.last_mut() {
                Some(last)
                    if heading_only
                        && b.section_path.len() > last.2.len()
                        && b.section_path.starts_with(&last.2) =>
                {
                    last.1 = off + b.text.len();
                    last.2 = b.section_path.clone();
                }
                _ => out.push((off, off + b.text.len(), b.section_path.clone())),
            }
            heading_only = b.kind == BlockKind::Heading;
        } else if let Some(last) = out.last_mut() {
            last.1 = off + b.text.len();
            heading_only = false;
        }
        off += b.text.len();
    }
    out
}

/// Check every chunking invariant; returns the chunks.
fn check(d: &ParsedDocument, cfg: &ChunkConfig, counter: &dyn TokenCounter) -> Vec<Chunk> {
    let full = d.full_text();
    let chunks = chunk_document(d, cfg, counter);
    let secs = sections(d);
    let mut rebuilt = String::new();
    let mut pos = 0;
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.index, i);
        assert!(
            c.doc_start >= pos && c.doc_start < c.doc_end,
            "chunk {i} range"
        );
        let gap = &full[pos..c.doc_start];
        assert!(
            gap.trim().is_empty(),
            "dropped text before chunk {i}: {gap:?}"
        );
        rebuilt.push_str(gap);
        rebuilt.push_str(&c.text[c.content_start..]);
        assert_eq!(&full[c.doc_start..c.doc_end], c.content());
        let text_start = c.doc_start - c.content_start;
        assert_eq!(&full[text_start..c.doc_end], c.text, "chunk {i} text");
        // Within one section, with that section's path.
        let sec = secs
            .iter()
            .find(|(s, e, _)| *s <= text_start && c.doc_end <= *e)
            .unwrap_or_else(|| panic!("chunk {i} spans sections"));
        assert_eq!(sec.2, c.section_path);
        // Token limits.
        let tokens = counter.count_tokens(&c.text);
        assert_eq!(tokens, c.token_count, "chunk {i} token count");
        let one_word = c.content().split_whitespace().count() == 1;
        assert!(
            tokens <= cfg.max_tokens || one_word,
            "chunk {i}: {tokens} tokens"
        );
        // Overlap: whole sentences of the same section, within budget.
        if c.content_start > 0 {
            assert!(counter.count_tokens(&c.text[..c.content_start]) <= cfg.overlap_tokens);
            assert!(
                is_sentence_start(&full, text_start),
                "overlap of chunk {i} mid-sentence"
            );
            assert!(i > 0 && chunks[i - 1].doc_end > text_start);
            assert!(text_start >= chunks[i - 1].doc_start);
        }
        pos = c.doc_end;
    }
    assert!(full[pos..].trim().is_empty(), "dropped trailing text");
    rebuilt.push_str(&full[pos..]);
    assert_eq!(rebuilt, full);
    chunks
}

#[test]
fn sentence_boundaries() {
    let s = "One two.  Three (four.) Five?\nwrapped line\n\nNew para! e.g.x end";
    let got: Vec<&str> = sentence_ranges(s, false)
        .into_iter()
        .map(|(a, b)| &s[a..b])
        .collect();
    assert_eq!(
        got,
        [
            "One two.",
            "Three (four.)",
            "Five?",
            "wrapped line",
            "New para!",
            "e.g.x end"
        ]
    );
    let code = "let a = 1;\nlet b = 2;\n\n  let c = 3;";
    let got: Vec<&str> = sentence_ranges(code, true)
        .into_iter()
        .map(|(a, b)| &code[a..b])
        .collect();
    assert_eq!(got, ["let a = 1;", "let b = 2;", "let c = 3;"]);
    let prose = "a hard-wrapped\nsentence goes on";
    assert_eq!(sentence_ranges(prose, false), [(0, prose.len())]);
}

#[test]
fn config_validation() {
    assert!(ChunkConfig::default().validate().is_ok());
    let configured = crate::config::ChunkingConfig::default();
    assert_eq!(ChunkConfig::default().max_tokens, configured.max_tokens);
    assert_eq!(ChunkConfig::default().max_tokens, 200);
    assert_eq!(ChunkConfig::default().overlap_tokens, 32);
    assert!(matches!(
        ChunkConfig::new(15, 0),
        Err(ChunkConfigError::MaxTooSmall { .. })
    ));
    assert!(ChunkConfig::new(16, 7).is_ok());
    assert!(matches!(
        ChunkConfig::new(16, 8),
        Err(ChunkConfigError::OverlapTooLarge { .. })
    ));
    assert!(ChunkConfig::new(256, 128).is_err());
}

#[test]
fn headings_start_chunks_and_sections_do_not_mix() {
    let d = doc(vec![
        block(&[], BlockKind::Paragraph, "Intro text here."),
        block(&["A"], BlockKind::Heading, "A"),
        block(&["A"], BlockKind::Paragraph, "Alpha one. Alpha two."),
        block(&["A", "B"], BlockKind::Heading, "B"),
        block(&["A", "B"], BlockKind::Paragraph, "Beta."),
        block(&["C"], BlockKind::Record, "k: v"),
    ]);
    let chunks = check(&d, &ChunkConfig::default(), &WhitespaceTokenCounter);
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Intro text here.",
            "A\n\nAlpha one. Alpha two.",
            "B\n\nBeta.",
            "k: v"
        ]
    );
    assert_eq!(chunks[2].section_path, ["A", "B"]);
    assert!(chunks.iter().all(|c| c.content_start == 0));
}

#[test]
fn a_heading_alone_joins_its_first_subsection_but_not_a_sibling() {
    let d = doc(vec![
        block(&["Guide"], BlockKind::Heading, "Guide"),
        block(&["Guide", "Install"], BlockKind::Heading, "Install"),
        block(
            &["Guide", "Install"],
            BlockKind::Paragraph,
            "Run the installer.",
        ),
        block(&["Guide", "Empty"], BlockKind::Heading, "Empty"),
        block(&["Other"], BlockKind::Heading, "Other"),
        block(&["Other"], BlockKind::Paragraph, "More text."),
    ]);
    let chunks = check(&d, &ChunkConfig::default(), &WhitespaceTokenCounter);
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    // "Guide" and "Install" say nothing alone: one chunk with the subsection's path. "Empty"
    // has no subsection after it (a sibling chapter follows), so it stays a chunk of its own.
    assert_eq!(
        texts,
        [
            "Guide\n\nInstall\n\nRun the installer.",
            "Empty",
            "Other\n\nMore text."
        ]
    );
    assert_eq!(chunks[0].section_path, ["Guide", "Install"]);
}

#[test]
fn long_block_splits_at_sentences_with_overlap() {
    let sentences: Vec<String> = (0..40)
        .map(|i| format!("Sentence number {i} has exactly seven words."))
        .collect();
    let d = doc(vec![block(
        &["S"],
        BlockKind::Paragraph,
        &sentences.join(" "),
    )]);
    let cfg = ChunkConfig::new(32, 10).unwrap();
    let chunks = check(&d, &cfg, &WhitespaceTokenCounter);
    assert!(chunks.len() > 5);
    for c in &chunks[1..] {
        // One whole 7-word sentence of overlap (two would be 14 > 10).
        assert!(c.text.starts_with("Sentence number"));
        assert_eq!(
            WhitespaceTokenCounter.count_tokens(&c.text[..c.content_start]),
            7
        );
        assert!(c.content().starts_with("Sentence number"));
        assert!(c.content().ends_with('.'));
    }
    assert_eq!(chunks[0].content_start, 0);
}

#[test]
fn overlong_sentence_splits_at_words_and_giant_word_stands_alone() {
    let long: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
    let giant = "x".repeat(200);
    let text = format!("Short one. {} end. {giant} Tail sentence.", long.join(" "));
    let d = doc(vec![block(&[], BlockKind::Paragraph, &text)]);
    let cfg = ChunkConfig::new(20, 5).unwrap();
    let chunks = check(&d, &cfg, &CharCounter);
    assert!(chunks.iter().any(|c| c.content() == giant));
    let chunks = check(&d, &cfg, &WhitespaceTokenCounter);
    assert!(chunks.len() >= 5);
}

#[test]
fn empty_and_blank_documents() {
    assert!(
        chunk_document(
            &doc(vec![]),
            &ChunkConfig::default(),
            &WhitespaceTokenCounter
        )
        .is_empty()
    );
    let d = doc(vec![
        block(&[], BlockKind::Paragraph, "  "),
        block(&[], BlockKind::Paragraph, ""),
    ]);
    assert!(check(&d, &ChunkConfig::default(), &WhitespaceTokenCounter).is_empty());
}

/// Deterministic xorshift PRNG.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "lumen",
    "note",
    "sync",
    "é",
    "日本語",
    "e.g.",
    "v1.2",
    "(see",
    "this)",
    "quote\"",
    "a",
    "reallyreallyreallylongwordthatexceedsthings",
    "data,",
    "x",
    "Ünïcödé",
    "--",
    "3.14",
];

fn gen_doc(rng: &mut Rng) -> ParsedDocument {
    let mut blocks = Vec::new();
    let mut path: Vec<String> = Vec::new();
    for _ in 0..rng.below(30) {
        let kind = match rng.below(10) {
            0 | 1 => BlockKind::Heading,
            2 => BlockKind::ListItem,
            3 => BlockKind::Code,
            4 => BlockKind::Record,
            5 => BlockKind::Table,
            6 => BlockKind::Quote,
            _ => BlockKind::Paragraph,
        };
        if kind == BlockKind::Heading {
            let depth = rng.below(3);
            path.truncate(depth);
            path.push(format!("H{}", rng.below(100)));
        }
        let mut text = String::new();
        let sentences = if kind == BlockKind::Heading {
            1
        } else {
            rng.below(12)
        };
        for _ in 0..sentences {
            let words = if rng.below(8) == 0 {
                20 + rng.below(120)
            } else {
                1 + rng.below(15)
            };
            for w in 0..words {
                if w > 0 {
                    text.push_str([" ", " ", " ", "  ", "\t", " \u{a0}"][rng.below(6)]);
                }
                text.push_str(WORDS[rng.below(WORDS.len())]);
            }
            text.push_str([". ", "! ", "? ", "\n", ".\n\n", "", ".) ", "...  "][rng.below(8)]);
        }
        if rng.below(5) == 0 {
            text = format!("  {text}  ");
        }
        blocks.push(Block {
            section_path: path.clone(),
            kind,
            text,
        });
    }
    doc(blocks)
}

#[test]
fn property_invariants_over_generated_documents() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let configs = [
        ChunkConfig::new(16, 0).unwrap(),
        ChunkConfig::new(16, 7).unwrap(),
        ChunkConfig::new(40, 12).unwrap(),
        ChunkConfig::default(),
    ];
    let (mut total, mut with_overlap, mut split_words) = (0, 0, 0);
    for _ in 0..400 {
        let d = gen_doc(&mut rng);
        for cfg in &configs {
            let chunks = check(&d, cfg, &WhitespaceTokenCounter);
            total += chunks.len();
            with_overlap += chunks.iter().filter(|c| c.content_start > 0).count();
            let chunks = check(&d, cfg, &CharCounter);
            split_words += chunks
                .iter()
                .filter(|c| !c.content().ends_with(['.', '!', '?', ')']))
                .count();
        }
    }
    // The generator exercises every path.
    assert!(total > 5_000, "{total}");
    assert!(with_overlap > 1_000, "{with_overlap}");
    assert!(split_words > 100, "{split_words}");
}

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo-corpus")
}

#[test]
fn invariants_hold_on_every_demo_corpus_file() {
    let reg = ParserRegistry::default();
    let mut n = 0;
    let entries = std::fs::read_dir(corpus_dir()).unwrap_or_else(|e| panic!("{e}"));
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(parser) = reg.for_path(&path) else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let d = parser
            .parse(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!d.blocks.is_empty(), "{}", path.display());
        for cfg in [
            ChunkConfig::default(),
            ChunkConfig::new(32, 8).unwrap(),
            ChunkConfig::new(16, 4).unwrap(),
        ] {
            let chunks = check(&d, &cfg, &WhitespaceTokenCounter);
            assert!(!chunks.is_empty());
            check(&d, &cfg, &CharCounter);
        }
        n += 1;
    }
    assert!(n >= 12, "only {n} corpus files");
}

/// With the real model tokenizer (when present): counts add up and chunks fit.
#[test]
fn hf_tokenizer_counts_are_additive_on_the_demo_corpus() {
    // The model's tokenizer is installed by `instant-db setup`, which CI runs first.
    let paths = crate::assets::AssetPaths::resolve(&crate::config::EmbeddingConfig::default());
    let path = paths.tokenizer_file();
    let tok = tokenizers::Tokenizer::from_file(&path).unwrap_or_else(|e| {
        panic!(
            "no tokenizer at {} ({e}); run `instant-db setup`",
            path.display()
        )
    });
    let counter = HfTokenCounter::new(&tok);
    assert!(
        counter.count_tokens(&"word ".repeat(1000)) >= 1000,
        "truncation not disabled"
    );
    let reg = ParserRegistry::default();
    let cfg = ChunkConfig::new(64, 16).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let Some(parser) = reg.for_path(&path) else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let d = parser
            .parse(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!check(&d, &cfg, &counter).is_empty(), "{}", path.display());
        n += 1;
    }
    assert!(n >= 13, "only {n} corpus files");
}

#[test]
fn a_large_single_section_document_is_split_whole_into_fitting_chunks() {
    // ~1 MB of text in one section, so the sentence packing runs over many chunks.
    let para = "The quick brown fox jumps over the lazy dog. ".repeat(200);
    let blocks: Vec<Block> = (0..120)
        .map(|_| block(&[], BlockKind::Paragraph, &para))
        .collect();
    let d = doc(blocks);
    let chunks = check(&d, &ChunkConfig::default(), &WhitespaceTokenCounter);
    assert!(chunks.len() > 400, "{}", chunks.len());
}
