//! Quotation tracking: which tokens of a sentence stand inside quotation
//! marks.
//!
//! Words inside a quotation are someone else's, so the scorer in
//! [`super::scoring`] weighs them as reported speech and a mention inside
//! one makes the sentence reported. Curly and guillemet marks say which way
//! they go; straight marks toggle. Short quotes are scare quotes or names
//! and do not count. This is kept apart from the scoring because it only
//! reads the tokens' marks.

use super::config::StanceConfig;
use super::tokens::{Token, TokenKind};

/// The fewest words a quotation needs to count as reported speech.
pub(super) fn cfg_min_quote(cfg: &StanceConfig) -> usize {
    cfg.min_quote_words
}

/// Which tokens are inside quotation marks of at least `min_words` words
/// (shorter quotes are scare quotes or names, not reported speech). A
/// sentence that continues a quotation from the one before (its first mark
/// closes) starts inside.
pub(super) fn quote_mask(tokens: &[Token], min_words: usize) -> Vec<bool> {
    let mask = raw_quote_mask(tokens);
    let mut out = mask.clone();
    let mut i = 0;
    while i < mask.len() {
        if !mask[i] {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < mask.len() && mask[j] {
            j += 1;
        }
        let words = tokens[i..j].iter().filter(|t| t.is_word()).count();
        if words < min_words {
            out[i..j].iter_mut().for_each(|m| *m = false);
        }
        i = j;
    }
    out
}

/// Which tokens are inside quotation marks, however short the quote (the
/// marks themselves are not).
fn raw_quote_mask(tokens: &[Token]) -> Vec<bool> {
    let marks: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| t.kind == TokenKind::Quote)
        .map(|(i, _)| i)
        .collect();
    let mut inside = marks.len() % 2 == 1
        && marks
            .first()
            .and_then(|&i| tokens.get(i))
            .is_some_and(|t| matches!(t.norm.as_str(), "\u{201d}" | "\u{00bb}"));
    let mut mask = Vec::with_capacity(tokens.len());
    for t in tokens {
        if t.kind == TokenKind::Quote {
            let opening = matches!(t.norm.as_str(), "\u{201c}" | "\u{201e}" | "\u{00ab}");
            let closing = matches!(t.norm.as_str(), "\u{201d}" | "\u{00bb}");
            inside = if opening {
                true
            } else if closing {
                false
            } else {
                !inside
            };
            mask.push(false);
        } else {
            mask.push(inside);
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stance::tokens::tokenize;

    #[test]
    fn quotes_are_tracked() {
        let toks = tokenize("He said “we oppose it” today");
        let mask = quote_mask(&toks, 1);
        let inside: Vec<&str> = toks
            .iter()
            .zip(mask)
            .filter(|(_, m)| *m)
            .map(|(t, _)| t.norm.as_str())
            .collect();
        assert_eq!(inside, ["we", "oppose", "it"]);
    }
}
