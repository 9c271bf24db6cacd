//! The text the model embeds for a chunk. A chunk deep in a section ("Returns `None` if the
//! slice is empty") no longer says what it is about; prefixing the document's title and the
//! section path gives the vector that context. The stored chunk text (what search returns,
//! highlights and exports) stays as it is.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// How chunk texts become model input (`embedding.text`). Recorded in the database (meta
/// `embedding_text`) so that vectors made one way are not silently mixed with the other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingText {
    /// The chunk text alone (what databases made before this setting hold).
    Bare,
    /// Title and section path, then the chunk text.
    #[default]
    Contextual,
}

impl EmbeddingText {
    /// The name recorded in the database; a new recipe gets a new name.
    pub fn recorded_name(self) -> &'static str {
        match self {
            EmbeddingText::Bare => "bare",
            EmbeddingText::Contextual => "contextual-1",
        }
    }

    pub fn from_recorded(name: &str) -> Option<EmbeddingText> {
        [EmbeddingText::Bare, EmbeddingText::Contextual]
            .into_iter()
            .find(|t| t.recorded_name() == name)
    }

    /// The model's input for a chunk of the document titled `title` under `section_path`.
    pub fn input<'a>(
        self,
        title: Option<&str>,
        section_path: &[String],
        text: &'a str,
    ) -> Cow<'a, str> {
        if self == EmbeddingText::Bare {
            return Cow::Borrowed(text);
        }
        let title = title.map(str::trim).filter(|t| !t.is_empty());
        // The first heading is often the title again: say it once.
        let path: Vec<&str> = section_path
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .skip_while(|s| Some(*s) == title)
            .collect();
        let mut context = title.map(str::to_string).unwrap_or_default();
        if !path.is_empty() {
            if !context.is_empty() {
                context.push_str(" › ");
            }
            context.push_str(&path.join(" › "));
        }
        if context.is_empty() {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(format!("{context}\n{text}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn contextual_input_is_title_then_section_path_then_the_text() {
        let t = EmbeddingText::Contextual.input(
            Some("Vec"),
            &path(&["Vec", "Methods", "pop"]),
            "Removes the last element.",
        );
        assert_eq!(t, "Vec › Methods › pop\nRemoves the last element.");
    }

    #[test]
    fn without_title_or_sections_the_text_is_embedded_as_it_is() {
        let t = EmbeddingText::Contextual.input(None, &[], "plain");
        assert!(matches!(t, Cow::Borrowed("plain")));
        let t = EmbeddingText::Contextual.input(Some("  "), &path(&[""]), "plain");
        assert_eq!(t, "plain");
        let t = EmbeddingText::Contextual.input(None, &path(&["Setup"]), "x");
        assert_eq!(t, "Setup\nx");
    }

    #[test]
    fn bare_input_ignores_the_context() {
        let t = EmbeddingText::Bare.input(Some("T"), &path(&["S"]), "x");
        assert_eq!(t, "x");
    }

    #[test]
    fn recorded_names_round_trip() {
        for t in [EmbeddingText::Bare, EmbeddingText::Contextual] {
            assert_eq!(EmbeddingText::from_recorded(t.recorded_name()), Some(t));
        }
        assert_eq!(EmbeddingText::from_recorded("contextual-9"), None);
    }
}
