//! Structure-aware chunking of a [`ParsedDocument`].
//!
//! Rules:
//! - a section starts at every heading block and wherever the section path changes; chunks
//!   never span two sections and a heading always starts a new chunk, except that a section
//!   holding nothing but its heading (a chapter heading right before its first subsection) is
//!   merged into that first subsection's first chunk: alone it would be a chunk that says
//!   nothing but a title;
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
    /// Default: `chunking.max_tokens` (200); at least 16.
    pub max_tokens: usize,
    /// Default: `chunking.overlap_tokens` (32); less than `max_tokens / 2`.
    pub overlap_tokens: usize,
}

/// The same defaults as the `chunking` configuration section, so there is one value to document.
impl Default for ChunkConfig {
    fn default() -> Self {
        let c = crate::config::ChunkingConfig::default();
        Self {
            max_tokens: c.max_tokens,
            overlap_tokens: c.overlap_tokens,
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
    // Whether the current section has more than its heading.
    let mut has_body = false;
    for (i, block) in doc.blocks.iter().enumerate() {
        if i > 0 {
            offset += BLOCK_SEPARATOR.len();
        }
        let new_section = block.kind == BlockKind::Heading || section != Some(&block.section_path);
        if new_section {
            if let Some(path) = section {
                let into_child = !has_body
                    && block.section_path.len() > path.len()
                    && block.section_path.starts_with(path);
                if !into_child {
                    pack_section(&full, path, &pieces, max, overlap_max, &mut chunks);
                    pieces.clear();
                }
            }
            section = Some(&block.section_path);
            has_body = false;
        }
        has_body |= block.kind != BlockKind::Heading;
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
mod tests;

pub mod context;
