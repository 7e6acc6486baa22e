//! Rule-based sentence boundaries, following spaCy's `Sentencizer`.
//!
//! `en_core_web_sm` takes sentence boundaries from its dependency parser,
//! and so does the native runtime when the parser runs. When it does not
//! (`--components ner`), sentences come from spaCy's own rule-based
//! `Sentencizer` algorithm: after a token that is a sentence-final
//! punctuation mark, the first token that is not punctuation starts a new
//! sentence. We add one rule for news text: a whitespace token holding a
//! blank line (a paragraph break) also ends a sentence, so headlines and
//! bylines without a full stop are sentences of their own.

use super::vocab::py_ispunct;
use super::Token;

/// Sentence-final punctuation (the common subset of spaCy's default
/// `punct_chars`).
const PUNCT_CHARS: &[&str] = &[
    "!", ".", "?", "։", "؟", "۔", "܀", "܁", "܂", "߹", "।", "॥", "၊", "။", "።", "፧", "፨", "᙮", "᜵",
    "᜶", "᠃", "᠉", "‼", "‽", "⁇", "⁈", "⁉", "⸮", "⸼", "꓿", "꘎", "꘏", "꛳", "꛷", "﹒", "﹖", "﹗",
    "！", "．", "？", "。", "｡",
];

/// spaCy's `is_punct`: every character is in a Unicode punctuation
/// category (with the Unicode tables of the rest of the runtime).
fn is_punct(text: &str) -> bool {
    !text.is_empty() && text.chars().all(py_ispunct)
}

fn is_paragraph_break(text: &str) -> bool {
    text.chars().all(super::unicode::py_isspace) && text.matches('\n').count() >= 2
}

/// Splits `tokens` of `text` into sentences, as half-open token ranges that
/// cover every token in order. An empty document has no sentences.
pub fn sentences(text: &str, tokens: &[Token]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    if tokens.is_empty() {
        return out;
    }
    let mut start = 0;
    let mut seen_final = false;
    for (i, token) in tokens.iter().enumerate() {
        let t = token.text(text);
        let is_final = PUNCT_CHARS.contains(&t);
        if is_paragraph_break(t) && i > start {
            // The break belongs to the sentence it ends.
            out.push(start..i + 1);
            start = i + 1;
            seen_final = false;
            continue;
        }
        if seen_final && !is_punct(t) && !is_final && i > start {
            out.push(start..i);
            start = i;
            seen_final = false;
        } else if is_final {
            seen_final = true;
        }
    }
    if start < tokens.len() {
        out.push(start..tokens.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whitespace-split tokens, enough to test the rules.
    fn toks(text: &str) -> Vec<Token> {
        let mut out = Vec::new();
        let mut pos = 0;
        for part in text.split(' ') {
            if !part.is_empty() {
                out.push(Token {
                    start: pos,
                    end: pos + part.len(),
                    whitespace: true,
                    norm: None,
                });
            }
            pos += part.len() + 1;
        }
        out
    }

    fn split(text: &str) -> Vec<String> {
        let tokens = toks(text);
        sentences(text, &tokens)
            .into_iter()
            .map(|r| {
                tokens[r]
                    .iter()
                    .map(|t| t.text(text))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn closing_punctuation_stays_with_the_sentence_it_ends() {
        assert_eq!(
            split("He left . \" Why ? \" she asked ."),
            ["He left . \"", "Why ? \"", "she asked ."]
        );
    }

    #[test]
    fn a_blank_line_ends_a_sentence() {
        assert_eq!(
            split("Headline \n\n Body text ."),
            ["Headline \n\n", "Body text ."]
        );
    }

    #[test]
    fn every_token_lands_in_exactly_one_sentence() {
        let text = "a . b ! ! c ? d";
        let tokens = toks(text);
        let ranges = sentences(text, &tokens);
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(tokens.len()));
        for w in ranges.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
    }
}
