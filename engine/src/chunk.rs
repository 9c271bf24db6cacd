//! Structure-aware chunking of a [`ParsedDocument`].
//!
//! Rules:
//! - a section starts at every heading block and wherever the section path changes; chunks
//!   never span two sections and a heading always starts a new chunk;
//! - within a section, blocks are packed into a chunk up to `max_tokens`;
//! - a block longer than that is split at sentence boundaries (after `.`, `!`, `?` followed by
//!   whitespace, at a blank line, and at every line break in code, tables and records), and a
//!   sentence longer than that at word boundaries;
//! - each chunk after the first of a section starts with an overlap: the trailing whole
//!   sentences of the previous chunk totalling at most `overlap_tokens`, so the overlap starts on
//!   a sentence boundary; there is no overlap across sections.
//!
//! Invariant: the new content of the chunks (`&chunk.text[chunk.content_start..]`, which equals
//! `&full_text[doc_start..doc_end]`) covers `ParsedDocument::full_text()` in order, with only
//! whitespace (block separators, spaces between sentences) between consecutive chunks — nothing
//! is duplicated and nothing dropped. No chunk exceeds `max_tokens` unless one word alone does.
//!
//! Token counts are computed once per sentence (and per word only for over-long sentences) and
//! summed, so chunking is linear in the document size. A [`TokenCounter`] should count tokens
//! without special tokens (`[CLS]`, `[SEP]`) so that counts of whitespace-separated pieces add up.

use crate::parse::{BLOCK_SEPARATOR, BlockKind, ParsedDocument};

/// Counts tokens the way the embedding model's tokenizer does.
pub trait TokenCounter: Send + Sync {
    fn count_tokens(&self, text: &str) -> usize;
}

/// Counts whitespace-separated words (tests and fallback when no tokenizer is loaded).
#[derive(Debug, Default, Clone, Copy)]
pub struct WhitespaceTokenCounter;

impl TokenCounter for WhitespaceTokenCounter {
    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
}

/// Counts tokens with a Hugging Face tokenizer (truncation and padding disabled, no special
/// tokens). Falls back to a whitespace count if encoding fails.
#[derive(Debug, Clone)]
pub struct HfTokenCounter {
    tokenizer: tokenizers::Tokenizer,
}

impl HfTokenCounter {
    pub fn new(tokenizer: &tokenizers::Tokenizer) -> Self {
        let mut tokenizer = tokenizer.clone();
        tokenizer.with_padding(None);
        // Disabling truncation cannot fail (errors only come from invalid truncation params).
        let _ = tokenizer.with_truncation(None);
        Self { tokenizer }
    }
}

impl TokenCounter for HfTokenCounter {
    fn count_tokens(&self, text: &str) -> usize {
        match self.tokenizer.encode(text, false) {
            Ok(enc) => enc.len(),
            Err(_) => WhitespaceTokenCounter.count_tokens(text),
        }
    }
}

/// Invalid chunking configuration.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ChunkConfigError {
    #[error("chunk max_tokens must be at least {min}, got {got}")]
    MaxTooSmall { min: usize, got: usize },
    #[error("chunk overlap_tokens must be less than half of max_tokens ({max}), got {got}")]
    OverlapTooLarge { max: usize, got: usize },
}

/// Chunk size and overlap in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ChunkConfig {
    /// Default 256; at least 16.
    pub max_tokens: usize,
    /// Default 32; less than `max_tokens / 2`.
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            overlap_tokens: 32,
        }
    }
}

impl ChunkConfig {
    pub const MIN_MAX_TOKENS: usize = 16;

    /// A validated configuration.
    pub fn new(max_tokens: usize, overlap_tokens: usize) -> Result<Self, ChunkConfigError> {
        let c = Self {
            max_tokens,
            overlap_tokens,
        };
        c.validate()?;
        Ok(c)
    }

    /// Check `max_tokens >= 16` and `overlap_tokens < max_tokens / 2`.
    pub fn validate(&self) -> Result<(), ChunkConfigError> {
        if self.max_tokens < Self::MIN_MAX_TOKENS {
            return Err(ChunkConfigError::MaxTooSmall {
                min: Self::MIN_MAX_TOKENS,
                got: self.max_tokens,
            });
        }
        if self.overlap_tokens >= self.max_tokens / 2 {
            return Err(ChunkConfigError::OverlapTooLarge {
                max: self.max_tokens,
                got: self.overlap_tokens,
            });
        }
        Ok(())
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    /// Position of the chunk in the document, from 0.
    pub index: usize,
    pub section_path: Vec<String>,
    /// Overlap (if any) followed by the new content.
    pub text: String,
    /// Byte offset in `text` where the new (non-overlap) content begins.
    pub content_start: usize,
    /// Byte range of the new content in `ParsedDocument::full_text()`.
    pub doc_start: usize,
    pub doc_end: usize,
    /// Tokens of `text` (overlap included), as the sum of per-sentence counts.
    pub token_count: usize,
}

impl Chunk {
    /// The new (non-overlap) content of the chunk.
    pub fn content(&self) -> &str {
        self.text.get(self.content_start..).unwrap_or_default()
    }
}

/// A piece of text (a sentence, or a run of words of an over-long sentence) with its byte
/// range in the full text (trimmed: no leading/trailing whitespace).
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: usize,
    end: usize,
    tokens: usize,
    /// The piece begins a sentence (overlap may start here).
    sentence_start: bool,
}

/// Byte ranges of the sentences of `s` (trimmed, non-empty), relative to `s`. With
/// `lines_are_units` (code, tables, records) every line break is a boundary; otherwise (prose,
/// which is often hard-wrapped) only a blank line is.
fn sentence_ranges(s: &str, lines_are_units: bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut start = None::<usize>;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if start.is_none() {
            if !c.is_ascii_whitespace() {
                start = Some(i);
            }
            i += 1;
            continue;
        }
        let boundary_end = if c == b'\n'
            && (lines_are_units || s[i + 1..].trim_start_matches([' ', '\t']).starts_with('\n'))
        {
            Some(i)
        } else if matches!(c, b'.' | b'!' | b'?') {
            // Include closing quotes/brackets, then require whitespace.
            let mut j = i + 1;
            while j < bytes.len()
                && matches!(bytes[j], b'"' | b'\'' | b')' | b']' | b'.' | b'!' | b'?')
            {
                j += 1;
            }
            if j >= bytes.len() || bytes[j].is_ascii_whitespace() {
                Some(j)
            } else {
                None
            }
        } else {
            None
        };
        match (boundary_end, start) {
            (Some(end), Some(st)) => {
                let piece = s[st..end].trim_end();
                if !piece.is_empty() {
                    out.push((st, st + piece.len()));
                }
                start = None;
                i = end;
            }
            _ => i += 1,
        }
    }
    if let Some(st) = start {
        let piece = s[st..].trim_end();
        if !piece.is_empty() {
            out.push((st, st + piece.len()));
        }
    }
    out
}

/// Byte ranges of the words of `s` relative to `s`.
fn word_ranges(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            if let Some(st) = start.take() {
                out.push((st, i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        out.push((st, s.len()));
    }
    out
}

/// Append the pieces of one block (starting at `base` in the full text).
fn block_pieces(
    text: &str,
    lines_are_units: bool,
    base: usize,
    max: usize,
    counter: &dyn TokenCounter,
    out: &mut Vec<Piece>,
) {
    for (s, e) in sentence_ranges(text, lines_are_units) {
        let sentence = &text[s..e];
        let tokens = counter.count_tokens(sentence);
        if tokens <= max {
            out.push(Piece {
                start: base + s,
                end: base + e,
                tokens,
                sentence_start: true,
            });
            continue;
        }
        // Over-long sentence: group words up to `max` tokens.
        let mut first = true;
        let mut cur: Option<Piece> = None;
        for (ws, we) in word_ranges(sentence) {
            let t = counter.count_tokens(&sentence[ws..we]);
            match cur.as_mut() {
                Some(p) if p.tokens + t <= max => {
                    p.end = base + s + we;
                    p.tokens += t;
                }
                _ => {
                    if let Some(p) = cur.take() {
                        out.push(p);
                    }
                    cur = Some(Piece {
                        start: base + s + ws,
                        end: base + s + we,
                        tokens: t,
                        sentence_start: first,
                    });
                    first = false;
                }
            }
        }
        if let Some(p) = cur {
            out.push(p);
        }
    }
}

/// Split a document into chunks. See the module documentation for the rules. An invalid
/// configuration is clamped (max at least 1, overlap below max/2) rather than rejected; call
/// [`ChunkConfig::validate`] first to reject it.
pub fn chunk_document(
    doc: &ParsedDocument,
    cfg: &ChunkConfig,
    counter: &dyn TokenCounter,
) -> Vec<Chunk> {
    let max = cfg.max_tokens.max(1);
    let overlap_max = cfg.overlap_tokens.min(max.saturating_sub(1) / 2);
    let full = doc.full_text();
    let mut chunks = Vec::new();

    // Group blocks into sections, collecting each section's pieces.
    let mut offset = 0usize;
    let mut pieces: Vec<Piece> = Vec::new();
    let mut section: Option<&Vec<String>> = None;
    for (i, block) in doc.blocks.iter().enumerate() {
        if i > 0 {
            offset += BLOCK_SEPARATOR.len();
        }
        let new_section = block.kind == BlockKind::Heading || section != Some(&block.section_path);
        if new_section {
            if let Some(path) = section {
                pack_section(&full, path, &pieces, max, overlap_max, &mut chunks);
            }
            pieces.clear();
            section = Some(&block.section_path);
        }
        let lines_are_units = matches!(
            block.kind,
            BlockKind::Code | BlockKind::Table | BlockKind::Record
        );
        block_pieces(
            &block.text,
            lines_are_units,
            offset,
            max,
            counter,
            &mut pieces,
        );
        offset += block.text.len();
    }
    if let Some(path) = section {
        pack_section(&full, path, &pieces, max, overlap_max, &mut chunks);
    }
    chunks
}

fn pack_section(
    full: &str,
    path: &[String],
    pieces: &[Piece],
    max: usize,
    overlap_max: usize,
    chunks: &mut Vec<Chunk>,
) {
    let mut i = 0;
    let mut prev: Option<(usize, usize)> = None; // piece range of the previous chunk's content
    while i < pieces.len() {
        // Overlap: trailing whole sentences of the previous chunk, within the budget left by
        // the first new piece.
        let first_tokens = pieces[i].tokens;
        let budget = overlap_max.min(max.saturating_sub(first_tokens));
        let mut ov_start = i;
        let mut ov_tokens = 0;
        if let Some((ps, pe)) = prev {
            let mut acc = 0;
            let mut k = pe;
            while k > ps {
                k -= 1;
                acc += pieces[k].tokens;
                if acc > budget {
                    break;
                }
                if pieces[k].sentence_start {
                    ov_start = k;
                    ov_tokens = acc;
                }
            }
        }
        // New content: pack pieces up to max (always at least one).
        let mut tokens = ov_tokens + first_tokens;
        let mut j = i + 1;
        while j < pieces.len() && tokens + pieces[j].tokens <= max {
            tokens += pieces[j].tokens;
            j += 1;
        }
        let text_start = pieces[ov_start].start;
        let doc_start = pieces[i].start;
        let doc_end = pieces[j - 1].end;
        chunks.push(Chunk {
            index: chunks.len(),
            section_path: path.to_vec(),
            text: full[text_start..doc_end].to_string(),
            content_start: doc_start - text_start,
            doc_start,
            doc_end,
            token_count: tokens,
        });
        prev = Some((i, j));
        i = j;
    }
}

#[cfg(test)]
mod tests {
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
        }
    }

    fn is_sentence_start(full: &str, pos: usize) -> bool {
        let before = full[..pos].trim_end();
        before.is_empty()
            || full[before.len()..pos].contains('\n')
            || before.ends_with(['.', '!', '?', '"', '\'', ')', ']'])
    }

    /// Section byte ranges (start of first block .. end of last block) with their paths.
    fn sections(d: &ParsedDocument) -> Vec<(usize, usize, Vec<String>)> {
        let mut out: Vec<(usize, usize, Vec<String>)> = Vec::new();
        let mut off = 0;
        for (i, b) in d.blocks.iter().enumerate() {
            if i > 0 {
                off += BLOCK_SEPARATOR.len();
            }
            let new = b.kind == BlockKind::Heading
                || out.last().is_none_or(|(_, _, p)| *p != b.section_path);
            if new {
                out.push((off, off + b.text.len(), b.section_path.clone()));
            } else if let Some(last) = out.last_mut() {
                last.1 = off + b.text.len();
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
        assert_eq!(ChunkConfig::default().max_tokens, 256);
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
    fn long_block_splits_at_sentences_with_overlap() {
        let sentences: Vec<String> = (0..40)
            .map(|i| format!("Sentence number {i} has exactly seven words."))
            .collect();
        let d = doc(vec![block(
            &["S"],
            BlockKind::Paragraph,
            &sentences.join(" "),
        )]);
        let cfg = ChunkConfig::new(32, 10).unwrap_or_default();
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
        let cfg = ChunkConfig::new(20, 5).unwrap_or_default();
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
            ChunkConfig::new(16, 0).unwrap_or_default(),
            ChunkConfig::new(16, 7).unwrap_or_default(),
            ChunkConfig::new(40, 12).unwrap_or_default(),
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
            let bytes = std::fs::read(&path).unwrap_or_default();
            let d = parser
                .parse(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!d.blocks.is_empty(), "{}", path.display());
            for cfg in [
                ChunkConfig::default(),
                ChunkConfig::new(32, 8).unwrap_or_default(),
                ChunkConfig::new(16, 4).unwrap_or_default(),
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
        let cfg = ChunkConfig::new(64, 16).unwrap_or_default();
        for entry in std::fs::read_dir(corpus_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            let Some(parser) = reg.for_path(&path) else {
                continue;
            };
            let d = parser
                .parse(&std::fs::read(&path).unwrap_or_default())
                .unwrap_or_default();
            check(&d, &cfg, &counter);
        }
    }

    /// Debug helper: writes the demo corpus chunks as JSON lines to `INSTANT_DB_CHUNK_DUMP`.
    #[test]
    #[ignore = "debug helper"]
    fn dump_demo_corpus_chunks() {
        let Ok(out) = std::env::var("INSTANT_DB_CHUNK_DUMP") else {
            return;
        };
        let reg = ParserRegistry::default();
        let mut lines = String::new();
        let tok = dirs::home_dir()
            .map(|h| h.join(".cache/instant-db/models/all-MiniLM-L6-v2/tokenizer.json"))
            .and_then(|p| tokenizers::Tokenizer::from_file(p).ok());
        let hf = tok.as_ref().map(HfTokenCounter::new);
        let counter: &dyn TokenCounter = match &hf {
            Some(h) => h,
            None => &WhitespaceTokenCounter,
        };
        for entry in std::fs::read_dir(corpus_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            let Some(parser) = reg.for_path(&path) else {
                continue;
            };
            let d = parser
                .parse(&std::fs::read(&path).unwrap_or_default())
                .unwrap_or_default();
            for c in chunk_document(&d, &ChunkConfig::default(), counter) {
                let v = serde_json::json!({
                    "file": path.file_name().map(|f| f.to_string_lossy().into_owned()),
                    "title": d.title, "chunk": c,
                });
                lines.push_str(&v.to_string());
                lines.push('\n');
            }
        }
        std::fs::write(out, lines).unwrap_or_default();
    }

    #[test]
    fn large_document_is_fast() {
        // ~1 MB of text in one section: linear-time chunking.
        let para = "The quick brown fox jumps over the lazy dog. ".repeat(200);
        let blocks: Vec<Block> = (0..120)
            .map(|_| block(&[], BlockKind::Paragraph, &para))
            .collect();
        let d = doc(blocks);
        let t = std::time::Instant::now();
        let chunks = chunk_document(&d, &ChunkConfig::default(), &WhitespaceTokenCounter);
        assert!(chunks.len() > 400);
        assert!(t.elapsed().as_secs() < 5, "took {:?}", t.elapsed());
    }
}
