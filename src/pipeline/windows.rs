//! Splitting a long article into windows, and joining what was found in them.
//!
//! One huge article must not hold a worker for seconds while short ones
//! wait. The server cuts such an article at paragraph or sentence ends into
//! windows of at most a configured size, recognizes each window in its own
//! turn on a worker (queued work gets turns in between), and joins the
//! results here. Articles shorter than a window are not touched, so their
//! results are exactly the model's.

use std::ops::Range;

use super::types::{Recognized, TokenInfo};
use crate::text::TextSpan;

/// Byte ranges that cover `text` in order, each at most `max_chars` code
/// points long. A cut goes, by preference, after a blank line, after a line
/// break, after sentence-final punctuation followed by a space, after any
/// whitespace, and only as a last resort inside a word. A window never starts
/// with whitespace unless the text does, so whitespace stays with the text it
/// follows. `max_chars == 0` means no windows: one range over the whole text.
pub fn split(text: &str, max_chars: usize) -> Vec<Range<usize>> {
    if max_chars == 0 || text.chars().count() <= max_chars {
        return std::iter::once(0..text.len()).collect();
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let rest = &text[start..];
        // Byte length of the next `max_chars` code points.
        let limit = rest
            .char_indices()
            .nth(max_chars)
            .map_or(rest.len(), |(b, _)| b);
        if limit == rest.len() {
            out.push(start..text.len());
            break;
        }
        let cut = best_cut(&rest[..limit]).unwrap_or(limit);
        out.push(start..start + cut);
        start += cut;
    }
    out
}

/// Where to end a window inside `chunk` (a byte offset after the cut), or
/// `None` when there is no whitespace to cut at.
fn best_cut(chunk: &str) -> Option<usize> {
    // Only cut in the second half, so windows do not get tiny.
    let floor = chunk.len() / 2;
    let after_ws = |i: usize| {
        // Extend over the whole whitespace run so the next window starts on
        // a non-space character.
        let tail = &chunk[i..];
        i + tail.len() - tail.trim_start().len()
    };
    let candidates = [
        chunk.rfind("\n\n").map(after_ws),
        chunk.rfind('\n').map(after_ws),
        [". ", "? ", "! ", ".\u{201d} ", ".\" "]
            .iter()
            .filter_map(|p| chunk.rfind(p).map(|i| after_ws(i + p.len() - 1)))
            .max(),
        chunk
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, _)| after_ws(i)),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|&cut| cut > floor && cut < chunk.len())
}

/// Joins the recognition of consecutive windows of `text` (given with their
/// byte ranges, in order) into the recognition of the whole text: offsets,
/// token indices and heads shift to the whole text, sentences are numbered
/// on.
pub fn join(text: &str, parts: Vec<(Range<usize>, Recognized)>) -> Recognized {
    let mut whole = Recognized::default();
    let mut chars_before = 0;
    let mut last_end = 0;
    for (range, part) in parts {
        chars_before += text[last_end..range.start].chars().count();
        last_end = range.start;
        let shift = |s: TextSpan| TextSpan {
            start_char: s.start_char + chars_before,
            end_char: s.end_char + chars_before,
            start_byte: s.start_byte + range.start,
            end_byte: s.end_byte + range.start,
        };
        let tokens_before = whole.token_count;
        for mut sentence in part.sentences {
            sentence.index = whole.sentences.len();
            sentence.span = shift(sentence.span);
            sentence.first_token += tokens_before;
            for m in &mut sentence.mentions {
                m.span = shift(m.span);
            }
            sentence.tokens = sentence
                .tokens
                .into_iter()
                .map(|t| TokenInfo {
                    span: shift(t.span),
                    head: t.head.map(|h| h + tokens_before),
                    ..t
                })
                .collect();
            whole.sentences.push(sentence);
        }
        whole.token_count += part.token_count;
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_texts_are_one_window() {
        assert_eq!(split("Hello world.", 100), vec![0..12]);
        assert_eq!(split("Hello world.", 0), vec![0..12]);
    }

    #[test]
    fn cuts_prefer_blank_lines_then_sentence_ends() {
        let text = "First paragraph here.\n\nSecond one. It goes on and on.";
        let w = split(text, 30);
        assert_eq!(&text[w[0].clone()], "First paragraph here.\n\n");
        let text = "One sentence here. Another sentence that is long.";
        let w = split(text, 30);
        assert_eq!(&text[w[0].clone()], "One sentence here. ");
    }

    proptest! {
        #[test]
        fn windows_tile_the_text_and_respect_the_size(
            text in "[a-zé. \n]{0,300}",
            max in 1usize..60,
        ) {
            let w = split(&text, max);
            let mut at = 0;
            for r in &w {
                prop_assert_eq!(r.start, at);
                prop_assert!(r.end > r.start || text.is_empty());
                prop_assert!(text[r.clone()].chars().count() <= max.max(1));
                at = r.end;
            }
            prop_assert_eq!(at, text.len());
        }
    }
}
