//! Reading the dependency parse of one recognized sentence: token heads as
//! sentence-local indices, the token range of a span, the head of a phrase.
//!
//! Salience (grammatical role) and the holder-to-target relations both ask
//! these questions of the recognizer's parse; without a parse there is no
//! [`SentenceParse`] and they fall back to what needs none.

use std::ops::Range;

use super::types::Sentence;
use crate::text::TextSpan;

/// A sentence whose tokens all carry a head and a dependency label.
#[derive(Debug, Clone, Copy)]
pub struct SentenceParse<'a> {
    sentence: &'a Sentence,
}

impl<'a> SentenceParse<'a> {
    /// `None` when the recognizer gave no parse for this sentence.
    pub fn new(sentence: &'a Sentence) -> Option<SentenceParse<'a>> {
        let n = sentence.tokens.len();
        let parsed = n > 0
            && sentence.tokens.iter().all(|t| {
                t.dep.is_some()
                    && t.head
                        .and_then(|h| h.checked_sub(sentence.first_token))
                        .is_some_and(|h| h < n)
            });
        parsed.then_some(SentenceParse { sentence })
    }

    pub fn sentence(&self) -> &'a Sentence {
        self.sentence
    }

    pub fn len(&self) -> usize {
        self.sentence.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sentence.tokens.is_empty()
    }

    /// The head of token `i` (a root is its own head).
    pub fn head(&self, i: usize) -> usize {
        self.sentence.tokens[i]
            .head
            .map_or(i, |h| h - self.sentence.first_token)
    }

    pub fn dep(&self, i: usize) -> &'a str {
        self.sentence.tokens[i].dep.as_deref().unwrap_or("")
    }

    /// The lemma in lower case, or the text when there is no lemma.
    pub fn lemma(&self, i: usize) -> String {
        let t = &self.sentence.tokens[i];
        t.lemma.as_deref().unwrap_or(&t.text).to_lowercase()
    }

    pub fn text(&self, i: usize) -> &'a str {
        &self.sentence.tokens[i].text
    }

    pub fn pos(&self, i: usize) -> &'a str {
        self.sentence.tokens[i].pos.as_deref().unwrap_or("")
    }

    /// The tokens that overlap `span` (document bytes).
    pub fn tokens_in(&self, span: &TextSpan) -> Range<usize> {
        let tokens = &self.sentence.tokens;
        let start = tokens.partition_point(|t| t.span.end_byte <= span.start_byte);
        let end = tokens.partition_point(|t| t.span.start_byte < span.end_byte);
        start..end.max(start)
    }

    /// The token of `range` whose head lies outside it (or a root): the
    /// syntactic head of a phrase such as "the United States".
    pub fn phrase_head(&self, range: Range<usize>) -> Option<usize> {
        range
            .clone()
            .find(|&i| {
                let h = self.head(i);
                h == i || !range.contains(&h)
            })
            .or(range.clone().next())
    }

    /// The direct dependents of `i`.
    pub fn children(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(move |&c| c != i && self.head(c) == i)
    }

    /// Whether `ancestor` is `i` or above it in the tree.
    pub fn dominates(&self, ancestor: usize, mut i: usize) -> bool {
        for _ in 0..=self.len() {
            if i == ancestor {
                return true;
            }
            let h = self.head(i);
            if h == i {
                return false;
            }
            i = h;
        }
        false
    }

    /// The heads from `i` up to the root, `i` excluded.
    pub fn ancestors(&self, mut i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for _ in 0..self.len() {
            let h = self.head(i);
            if h == i {
                break;
            }
            out.push(h);
            i = h;
        }
        out
    }
}
