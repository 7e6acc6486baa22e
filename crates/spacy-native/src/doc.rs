//! Tokens as the tokenizer produces them.

/// One token of a document, as spaCy's tokenizer makes it.
///
/// Offsets are UTF-8 byte offsets into the document text; the text of the
/// token is `&text[start..end]`. Whitespace tokens (runs of spaces, line
/// breaks) are tokens too, exactly as in spaCy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// Whether one space follows the token (spaCy's `whitespace_ == " "`).
    pub whitespace: bool,
    /// A token-level NORM set by a tokenizer special case (`n't` -> `not`);
    /// `None` means the lexeme's norm applies.
    pub norm: Option<Box<str>>,
}

impl Token {
    /// The token's text within `doc_text`.
    pub fn text<'t>(&self, doc_text: &'t str) -> &'t str {
        &doc_text[self.start..self.end]
    }
}
