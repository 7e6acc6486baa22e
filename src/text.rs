//! Text offsets: UTF-8 bytes and Unicode code points.
//!
//! The runtime works in byte offsets (Rust strings); callers in other
//! languages, and Python spaCy, count code points. Every span we hand out
//! carries both, computed here once so they always agree with the text.

use serde::Serialize;

/// A half-open range of a text, in code points and in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TextSpan {
    pub start_char: usize,
    pub end_char: usize,
    pub start_byte: usize,
    pub end_byte: usize,
}

impl TextSpan {
    /// The spanned text.
    pub fn slice<'t>(&self, text: &'t str) -> &'t str {
        &text[self.start_byte..self.end_byte]
    }
}

/// Converts byte offsets of one text to code-point offsets.
///
/// It stores only where multi-byte characters are, so a mostly ASCII article
/// costs almost nothing, and a lookup is a binary search.
#[derive(Debug, Clone)]
pub struct OffsetMap {
    len: usize,
    /// For every multi-byte character: (byte offset just after it, total extra
    /// bytes (UTF-8 length minus one) of all multi-byte characters up to and
    /// including it).
    extra: Vec<(usize, usize)>,
}

impl OffsetMap {
    pub fn new(text: &str) -> Self {
        let mut extra = Vec::new();
        let mut total = 0;
        for (i, c) in text.char_indices() {
            let n = c.len_utf8();
            if n > 1 {
                total += n - 1;
                extra.push((i + n, total));
            }
        }
        OffsetMap {
            len: text.len(),
            extra,
        }
    }

    /// The code-point offset of a byte offset that lies on a character
    /// boundary (offsets inside a character count the character as passed).
    pub fn char_offset(&self, byte: usize) -> usize {
        let byte = byte.min(self.len);
        let passed = self.extra.partition_point(|&(end, _)| end <= byte);
        let extra = if passed == 0 {
            0
        } else {
            self.extra[passed - 1].1
        };
        byte - extra
    }

    /// A span from byte offsets.
    pub fn span(&self, start_byte: usize, end_byte: usize) -> TextSpan {
        TextSpan {
            start_char: self.char_offset(start_byte),
            end_char: self.char_offset(end_byte),
            start_byte,
            end_byte,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn char_offsets_count_code_points() {
        let text = "“Zürich” 北京 🎉 ok";
        let map = OffsetMap::new(text);
        for (ci, (bi, _)) in text.char_indices().enumerate() {
            assert_eq!(map.char_offset(bi), ci);
        }
        assert_eq!(map.char_offset(text.len()), text.chars().count());
    }

    proptest! {
        #[test]
        fn every_boundary_maps_to_its_char_index(text in "\\PC{0,64}") {
            let map = OffsetMap::new(&text);
            let mut n = 0;
            for (bi, _) in text.char_indices() {
                prop_assert_eq!(map.char_offset(bi), n);
                n += 1;
            }
            prop_assert_eq!(map.char_offset(text.len()), n);
        }
    }
}
