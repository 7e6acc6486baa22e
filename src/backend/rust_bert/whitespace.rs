//! Whitespace as SentencePiece models see it.
//!
//! The Hugging Face tokenizers of SentencePiece models (XLM-R, ALBERT,
//! DeBERTa v2) normalize text before splitting it: every whitespace
//! character becomes a space, a run of spaces becomes one `▁`, and trailing
//! whitespace is dropped, so "Paris\n\nis" gives the same pieces as
//! "Paris is". rust tokenizers splits the raw text and makes a `▁` of each
//! space instead. Folding the text first gives the pieces `transformers`
//! gives; each folded character remembers where it came from, so offsets
//! still point into the caller's text (a folded run counts as its last
//! character, as in `transformers`).

/// Text with its whitespace folded, and the original position of each of
/// its characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedText {
    pub text: String,
    /// `origin[i]`: code-point index in the original text of folded
    /// character `i`.
    origin: Vec<usize>,
    /// Code points in the original text.
    original_len: usize,
}

impl FoldedText {
    /// Folds every run of whitespace into one space standing at the run's
    /// last character, and drops trailing whitespace.
    pub fn new(text: &str) -> FoldedText {
        let chars: Vec<char> = text.chars().collect();
        let mut folded = String::with_capacity(text.len());
        let mut origin = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            if chars[i].is_whitespace() {
                let run_end = (i..chars.len())
                    .find(|&j| !chars[j].is_whitespace())
                    .unwrap_or(chars.len());
                if run_end < chars.len() {
                    folded.push(' ');
                    origin.push(run_end - 1);
                }
                i = run_end;
            } else {
                folded.push(chars[i]);
                origin.push(i);
                i += 1;
            }
        }
        FoldedText {
            text: folded,
            origin,
            original_len: chars.len(),
        }
    }

    /// The original code-point range of folded range `start..end`.
    pub fn original_range(&self, start: usize, end: usize) -> (usize, usize) {
        let at = |i: usize| self.origin.get(i).copied().unwrap_or(self.original_len);
        let start = at(start);
        let end = if end == 0 { 0 } else { at(end - 1) + 1 };
        (start, end.max(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_fold_to_their_last_character_and_trailing_space_goes() {
        let f = FoldedText::new("Paris  is\n\tbig. \n");
        assert_eq!(f.text, "Paris is big.");
        // "is" (folded 6..8) is at 7..9; the run before "big" counts as the
        // tab at 10.
        assert_eq!(f.original_range(6, 8), (7, 9));
        assert_eq!(f.original_range(5, 6), (6, 7));
        assert_eq!(f.original_range(8, 12), (10, 14));
        assert_eq!(f.original_range(13, 13), (17, 17));
    }

    #[test]
    fn text_without_runs_is_unchanged() {
        let text = " José Müller, in Zürich.";
        let f = FoldedText::new(text);
        assert_eq!(f.text, text);
        let n = text.chars().count();
        assert_eq!(f.original_range(0, n), (0, n));
        assert_eq!(f.original_range(1, 5), (1, 5));
    }
}
