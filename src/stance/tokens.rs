//! The engine's tokens: offsets, a normal form and word positions.
//!
//! When the recognizer tokenized the sentence (it always does in the
//! service), [`from_sentence`] reads its tokens, so cues, names and the parse
//! speak of the same words. Only a sentence that carries no tokens (a
//! caller-built [`Recognized`](crate::pipeline::Recognized), or offsets that
//! do not slice the text) falls back to [`tokenize`], a small word tokenizer:
//! words are runs of letters and digits; "U.S."-style acronyms keep their
//! dots, "n't" and "'s"-style clitics are split off, hyphens and other
//! punctuation are tokens of their own. The lexicons' phrases are always
//! split by [`tokenize`]; on the words they hold the two agree.
//! Offsets are bytes of the sentence's text.

use crate::pipeline::Sentence;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A word (or a clitic such as "n't").
    Word,
    /// The possessive "'s"; not counted as a word for distances.
    Possessive,
    /// A quotation mark.
    Quote,
    /// Any other punctuation or symbol.
    Punct,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub start: usize,
    pub end: usize,
    /// Lowercased, with typographic apostrophes made plain.
    pub norm: String,
    pub kind: TokenKind,
    /// Position among the words of the text (for distances); tokens that
    /// are not words carry the position of the next word.
    pub word: usize,
}

impl Token {
    pub fn is_word(&self) -> bool {
        self.kind == TokenKind::Word
    }
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}')
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{00AB}' | '\u{00BB}' | '\u{2018}'
    )
}

/// Normal form of a piece of text: lowercase, plain apostrophes.
pub(crate) fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| if is_apostrophe(c) { '\'' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The kind of a token of one character that is not a letter or digit: a
/// quotation mark (a lone apostrophe is a single one) or punctuation.
fn mark_kind(c: char) -> TokenKind {
    if is_quote(c) || is_apostrophe(c) {
        TokenKind::Quote
    } else {
        TokenKind::Punct
    }
}

/// Tokens in text order, numbering the words as they come: a token that is
/// not a word carries the position of the next word.
#[derive(Default)]
struct Numbered {
    tokens: Vec<Token>,
    word: usize,
}

impl Numbered {
    fn push(&mut self, start: usize, end: usize, norm: String, kind: TokenKind) {
        self.tokens.push(Token {
            start,
            end,
            norm,
            kind,
            word: self.word,
        });
        if kind == TokenKind::Word {
            self.word += 1;
        }
    }
}

/// The recognizer's tokens of `sentence`, which starts at byte `offset` of
/// the document, as engine tokens; `None` when it carries none or they do
/// not lie inside it. Whitespace tokens are left out.
pub(crate) fn from_sentence(sentence: &Sentence, offset: usize) -> Option<Vec<Token>> {
    let len = sentence.text.len();
    let mut out = Numbered::default();
    for t in &sentence.tokens {
        let start = t.span.start_byte.checked_sub(offset)?;
        let end = t.span.end_byte.checked_sub(offset)?;
        if end > len || start >= end {
            return None;
        }
        if t.text.chars().all(char::is_whitespace) {
            continue;
        }
        let norm = normalize(&t.text);
        let mut chars = t.text.chars();
        let kind = match (chars.next(), chars.next()) {
            _ if norm == "'s" => TokenKind::Possessive,
            _ if t.text.chars().any(char::is_alphanumeric) => TokenKind::Word,
            (Some(c), None) => mark_kind(c),
            _ => TokenKind::Punct,
        };
        out.push(start, end, norm, kind);
    }
    (!out.tokens.is_empty()).then_some(out.tokens)
}

const CLITICS: &[&str] = &["'s", "'re", "'ve", "'ll", "'d", "'m"];

/// Splits `text` into tokens.
pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |c| c.0);
    let mut raw: Vec<(usize, usize, TokenKind)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_alphanumeric() {
            // Acronym with dots: U.S., U.K., E.U., U.S.A.
            let mut j = i;
            let mut letters = 0;
            while j + 1 < chars.len() && chars[j].1.is_uppercase() && chars[j + 1].1 == '.' {
                j += 2;
                letters += 1;
            }
            let acronym_end = j;
            if letters >= 2 && !chars.get(j).is_some_and(|c| c.1.is_alphanumeric()) {
                raw.push((byte_at(i), byte_at(acronym_end), TokenKind::Word));
                i = acronym_end;
                continue;
            }
            let mut j = i + 1;
            while j < chars.len() {
                let c = chars[j].1;
                let inner_apostrophe =
                    is_apostrophe(c) && chars.get(j + 1).is_some_and(|n| n.1.is_alphabetic());
                if !(c.is_alphanumeric() || inner_apostrophe) {
                    break;
                }
                j += 1;
            }
            raw.push((byte_at(i), byte_at(j), TokenKind::Word));
            i = j;
            continue;
        }
        raw.push((byte_at(i), byte_at(i + 1), mark_kind(c)));
        i += 1;
    }

    let mut out = Numbered {
        tokens: Vec::with_capacity(raw.len() + 4),
        word: 0,
    };
    let mut push = |start: usize, end: usize, kind: TokenKind| {
        out.push(
            start,
            end,
            normalize(text.get(start..end).unwrap_or("")),
            kind,
        );
    };
    for (start, end, kind) in raw {
        if kind != TokenKind::Word {
            push(start, end, kind);
            continue;
        }
        let norm = normalize(text.get(start..end).unwrap_or(""));
        // Split "n't" and clitics off words ("don't", "Russia's").
        let mut split = None;
        if norm.len() > 3 && norm.ends_with("n't") {
            split = Some((norm.len() - 3, TokenKind::Word));
        } else {
            for cl in CLITICS {
                if norm.len() > cl.len() && norm.ends_with(cl) {
                    let kind = if *cl == "'s" {
                        TokenKind::Possessive
                    } else {
                        TokenKind::Word
                    };
                    split = Some((norm.len() - cl.len(), kind));
                    break;
                }
            }
        }
        match split {
            Some((keep, clitic_kind)) => {
                // `norm` may differ in byte length from the original (the
                // typographic apostrophe is 3 bytes); count from the end in
                // characters instead.
                let clitic_chars = norm[keep..].chars().count();
                let original = text.get(start..end).unwrap_or("");
                let cut = original
                    .char_indices()
                    .rev()
                    .nth(clitic_chars - 1)
                    .map_or(end, |(b, _)| start + b);
                push(start, cut, TokenKind::Word);
                push(cut, end, clitic_kind);
            }
            None => push(start, end, TokenKind::Word),
        }
    }
    out.tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norms(text: &str) -> Vec<String> {
        tokenize(text).into_iter().map(|t| t.norm).collect()
    }

    #[test]
    fn splits_clitics_acronyms_and_hyphens() {
        assert_eq!(
            norms("Russia’s U.S. allies don't rock-solid US$26.4"),
            [
                "russia", "'s", "u.s.", "allies", "do", "n't", "rock", "-", "solid", "us", "$",
                "26", ".", "4"
            ]
        );
    }

    /// A sentence at byte `offset` of a document, tokenized as `pieces`
    /// (each with the whitespace after it).
    fn sentence(offset: usize, pieces: &[(&str, bool)]) -> Sentence {
        use crate::pipeline::TokenInfo;
        use crate::text::TextSpan;
        let mut text = String::new();
        let mut tokens = Vec::new();
        for (piece, space) in pieces {
            let start = offset + text.len();
            text.push_str(piece);
            let span = TextSpan {
                start_byte: start,
                end_byte: offset + text.len(),
                ..TextSpan::default()
            };
            if *space {
                text.push(' ');
            }
            tokens.push(TokenInfo {
                text: piece.to_string(),
                span,
                whitespace: *space,
                tag: None,
                pos: None,
                dep: None,
                head: None,
                lemma: None,
            });
        }
        Sentence {
            index: 0,
            span: TextSpan {
                start_byte: offset,
                end_byte: offset + text.len(),
                ..TextSpan::default()
            },
            text,
            mentions: Vec::new(),
            first_token: 0,
            tokens,
        }
    }

    #[test]
    fn the_recognizers_tokens_are_read_with_their_kinds_and_word_positions() {
        let s = sentence(
            10,
            &[
                ("“", false),
                ("Russia", false),
                ("’s", true),
                ("allies", false),
                ("”", true),
                ("\n\n", false),
                ("do", false),
                ("n't", true),
                ("Russia-1", false),
                (".", false),
            ],
        );
        let toks = from_sentence(&s, 10).expect("tokens inside the sentence");
        let got: Vec<(&str, TokenKind, usize)> = toks
            .iter()
            .map(|t| (t.norm.as_str(), t.kind, t.word))
            .collect();
        use TokenKind::*;
        assert_eq!(
            got,
            [
                ("“", Quote, 0),
                ("russia", Word, 0),
                ("'s", Possessive, 1),
                ("allies", Word, 1),
                ("”", Quote, 2),
                ("do", Word, 2),
                ("n't", Word, 3),
                ("russia-1", Word, 4),
                (".", Punct, 5),
            ]
        );
        for t in &toks {
            assert_eq!(
                s.text.get(t.start..t.end).map(normalize).as_deref(),
                Some(t.norm.as_str())
            );
        }
        // Offsets that do not lie inside the sentence are not trusted.
        assert!(from_sentence(&s, 11).is_none());
    }

    #[test]
    fn offsets_slice_the_text() {
        let text = "“Zürich’s” 北京 can't, U.K.";
        for t in tokenize(text) {
            assert!(text.get(t.start..t.end).is_some(), "{t:?}");
        }
        let words: Vec<usize> = tokenize("a , b's c").iter().map(|t| t.word).collect();
        assert_eq!(words, [0, 1, 1, 2, 2]);
    }
}
