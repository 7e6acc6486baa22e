//! Python `str` character predicates, which differ from Rust's.
//!
//! spaCy's tokenizer and lexical attributes are defined in terms of Python's
//! `str.isspace()`, `isalpha()`, `isdigit()`, `isupper()` and `lower()`. Rust's
//! `char` methods use other Unicode properties, so we spell Python's out.

/// Python's `str.isspace()` for one character: bidirectional class WS, B or S,
/// or general category Zs. Includes `\x1c`..=`\x1f`, which Rust's
/// `char::is_whitespace` does not.
pub fn py_isspace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\x0b'
            | '\x0c'
            | '\r'
            | '\x1c'..='\x1f'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Python's `str.isspace()` for a whole string (false for the empty string).
pub fn py_str_isspace(s: &str) -> bool {
    !s.is_empty() && s.chars().all(py_isspace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isspace_matches_python_on_edge_characters() {
        for c in ['\x1c', '\x1f', '\u{a0}', '\u{3000}', '\u{85}'] {
            assert!(py_isspace(c), "{c:?}");
        }
        for c in ['\u{200b}', 'a', '\u{feff}', '\x00'] {
            assert!(!py_isspace(c), "{c:?}");
        }
        assert!(!py_str_isspace(""));
        assert!(py_str_isspace(" \n"));
    }
}
