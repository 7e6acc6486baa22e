//! The vocabulary side of spaCy that the NER features need: string ids and
//! the lexical attributes NORM, PREFIX, SUFFIX and SHAPE.
//!
//! spaCy computes these attributes in Python with `str` methods, so this
//! module reproduces Python's character predicates (`isalpha`, `isdigit`,
//! `isupper`, `lower`) from tables generated with the Python that runs spaCy
//! (`py_char_tables.rs`), not with Rust's `char` methods, which follow other
//! Unicode properties and a newer Unicode version.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use super::doc::Token;
use super::error::ModelError;
use super::hash::hash_string;
use super::symbols::symbol_id;

mod tables {
    include!("py_char_tables.rs");
}

/// The string id spaCy gives `s` (`strings.get_string_id`): 0 for `""`, the
/// symbol id for spaCy's built-in symbols, otherwise MurmurHash64A seed 1.
pub fn string_id(s: &str) -> u64 {
    if s.is_empty() {
        return 0;
    }
    match symbol_id(s) {
        Some(id) => id,
        None => hash_string(s),
    }
}

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Python `str.isalpha()` of one character (general categories L*).
pub fn py_isalpha(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    in_ranges(tables::PY_ALPHA, c)
}

/// Python `str.isdigit()` of one character (Numeric_Type Digit or Decimal).
pub fn py_isdigit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    in_ranges(tables::PY_DIGIT, c)
}

/// spaCy's `is_punct` test for one character: a Unicode punctuation
/// category (P*), as Python's `unicodedata` (the same Unicode version as
/// the other tables here).
pub fn py_ispunct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation()
            && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~');
    }
    in_ranges(tables::PY_PUNCT, c)
}

/// Python `str.isupper()` of one character.
pub fn py_isupper(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_uppercase();
    }
    in_ranges(tables::PY_UPPER, c)
}

/// Python `str.lower()`: full Unicode lowering (`İ` becomes two code points).
///
/// Capital sigma depends on its context (final sigma); Python and Rust both
/// follow the Unicode Final_Sigma rule there, so strings containing it are
/// lowered by Rust's `str::to_lowercase`.
pub fn py_lower(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| !b.is_ascii_uppercase() && b < 0x80) {
        return Cow::Borrowed(s);
    }
    if s.contains('\u{3a3}') {
        return Cow::Owned(s.to_lowercase());
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        match tables::PY_LOWER.binary_search_by_key(&(c as u32), |&(k, _)| k) {
            Ok(i) => out.push_str(tables::PY_LOWER[i].1),
            Err(_) => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// spaCy's PREFIX: the first code point (empty for an empty string).
pub fn prefix(s: &str) -> &str {
    match s.char_indices().nth(1) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// spaCy's SUFFIX: the last three code points (the whole string if shorter).
pub fn suffix(s: &str) -> &str {
    match s.char_indices().rev().nth(2) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

/// spaCy's `word_shape`: letters become `X`/`x`, digits `d`, other chars stay;
/// a run of the same shape char is cut after 4; 100+ code points give `LONG`.
pub fn word_shape(s: &str) -> Cow<'_, str> {
    if s.chars().nth(99).is_some() {
        return Cow::Borrowed("LONG");
    }
    let mut out = String::with_capacity(s.len());
    let mut last: Option<char> = None;
    let mut seq = 0usize;
    for c in s.chars() {
        let shape = if py_isalpha(c) {
            if py_isupper(c) {
                'X'
            } else {
                'x'
            }
        } else if py_isdigit(c) {
            'd'
        } else {
            c
        };
        if Some(shape) == last {
            seq += 1;
        } else {
            seq = 0;
            last = Some(shape);
        }
        if seq < 4 {
            out.push(shape);
        }
    }
    Cow::Owned(out)
}

/// spaCy's `BASE_NORMS` (`spacy.lang.norm_exceptions`), exported to JSON.
fn base_norms() -> &'static HashMap<String, String> {
    static TABLE: OnceLock<HashMap<String, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str(include_str!("base_norms.json"))
            .expect("base_norms.json is embedded at build time; a unit test checks it")
    })
}

/// The lexical attribute ids spaCy puts into the NER feature rows, in the
/// column order of `extract_features` (`[NORM, PREFIX, SUFFIX, SHAPE]`).
pub type FeatureRow = [u64; 4];

/// The part of spaCy's `Vocab` that inference needs: the `lexeme_norm`
/// lookup table of the pipeline (`vocab/lookups.bin`).
#[derive(Debug, Clone, Default)]
pub struct Vocab {
    lexeme_norm: HashMap<u64, Box<str>>,
}

impl Vocab {
    /// Reads `<vocab_dir>/lookups.bin` (msgpack `{"lexeme_norm": {id: norm}}`).
    /// A pipeline without the file or without the table gets an empty table,
    /// as in spaCy, where the lookup is optional.
    pub fn load(vocab_dir: &Path) -> Result<Vocab, ModelError> {
        let path = vocab_dir.join("lookups.bin");
        if !path.exists() {
            return Ok(Vocab::default());
        }
        let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
        Self::from_lookups_bytes(&bytes).map_err(|what| ModelError::format(&path, what))
    }

    fn from_lookups_bytes(bytes: &[u8]) -> Result<Vocab, String> {
        /// The one table of `lookups.bin` the tokenizer features need: orth
        /// string id to norm. Other tables are ignored.
        #[derive(serde::Deserialize)]
        struct Lookups {
            #[serde(default)]
            lexeme_norm: HashMap<u64, Box<str>>,
        }
        let lookups: Lookups = rmp_serde::from_slice(bytes)
            .map_err(|e| format!("not a lookups file (a map of tables): {e}"))?;
        Ok(Vocab {
            lexeme_norm: lookups.lexeme_norm,
        })
    }

    /// Number of entries of the `lexeme_norm` table.
    pub fn lexeme_norm_len(&self) -> usize {
        self.lexeme_norm.len()
    }

    /// The lexeme NORM of `orth`: the `lexeme_norm` table (keyed by the exact,
    /// case-sensitive orth id), else `BASE_NORMS`, else Python `lower()`.
    pub fn lex_norm<'a>(&'a self, orth: &'a str) -> Cow<'a, str> {
        if let Some(norm) = self.lexeme_norm.get(&string_id(orth)) {
            return Cow::Borrowed(norm);
        }
        if let Some(norm) = base_norms().get(orth) {
            return Cow::Borrowed(norm.as_str());
        }
        py_lower(orth)
    }

    /// The token's NORM: a special-case norm set by the tokenizer wins over
    /// the lexeme norm, as in spaCy's `Token.norm`.
    pub fn token_norm<'a>(&'a self, orth: &'a str, token: &'a Token) -> Cow<'a, str> {
        match &token.norm {
            Some(norm) => Cow::Borrowed(norm),
            None => self.lex_norm(orth),
        }
    }

    /// `doc.to_array([NORM, PREFIX, SUFFIX, SHAPE])` for one token of
    /// `doc_text`. Tokens whose offsets do not fit the text give the ids of
    /// the empty string (0) instead of panicking.
    pub fn feature_row(&self, doc_text: &str, token: &Token) -> FeatureRow {
        let orth = doc_text.get(token.start..token.end).unwrap_or("");
        [
            string_id(&self.token_norm(orth, token)),
            string_id(prefix(orth)),
            string_id(suffix(orth)),
            string_id(&word_shape(orth)),
        ]
    }

    /// `doc.to_array(ORTH)`: the string id of every token's text (the key of
    /// the static vectors).
    pub fn orth_ids(&self, doc_text: &str, tokens: &[Token]) -> Vec<u64> {
        tokens
            .iter()
            .map(|t| string_id(doc_text.get(t.start..t.end).unwrap_or("")))
            .collect()
    }

    /// Feature rows of all tokens of a document.
    pub fn feature_rows(&self, doc_text: &str, tokens: &[Token]) -> Vec<FeatureRow> {
        tokens
            .iter()
            .map(|t| self.feature_row(doc_text, t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_is_unicode_category_p() {
        for c in [
            '!', '"', '#', '%', '&', '-', '.', '_', '{', '¡', '«', '。', '‼', '⸮',
        ] {
            assert!(py_ispunct(c), "{c:?}");
        }
        for c in [
            '$', '+', '<', '=', '^', '`', '|', '~', 'a', '1', ' ', '€', '©',
        ] {
            assert!(!py_ispunct(c), "{c:?}");
        }
        // The ASCII shortcut agrees with the table.
        for b in 0u8..0x80 {
            let c = b as char;
            assert_eq!(py_ispunct(c), in_ranges(tables::PY_PUNCT, c), "{c:?}");
        }
    }

    #[test]
    fn the_embedded_base_norms_parse() {
        assert!(base_norms().len() > 20);
        assert_eq!(base_norms().get("’s").map(String::as_str), Some("'s"));
    }

    fn tok(text: &str) -> Token {
        Token {
            start: 0,
            end: text.len(),
            whitespace: false,
            norm: None,
        }
    }

    fn strings(v: &Vocab, s: &str) -> (String, String, String, String) {
        let t = tok(s);
        (
            v.token_norm(s, &t).into_owned(),
            prefix(s).to_owned(),
            suffix(s).to_owned(),
            word_shape(s).into_owned(),
        )
    }

    /// Notes §3 table (verified in Python).
    #[test]
    fn lexical_attributes_match_spacy() {
        let v = Vocab::default();
        let cases = [
            ("U.S.", "u.s.", "U", ".S.", "X.X."),
            ("Xi", "xi", "X", "Xi", "Xx"),
            ("Rosselkhozbank", "rosselkhozbank", "R", "ank", "Xxxxx"),
            ("26.4", "26.4", "2", "6.4", "dd.d"),
            ("2022", "2022", "2", "022", "dddd"),
            ("Zürich", "zürich", "Z", "ich", "Xxxxx"),
            ("ÉCOLE", "école", "É", "OLE", "XXXX"),
            ("١٢٣", "١٢٣", "١", "١٢٣", "ddd"),
            ("x²", "x²", "x", "x²", "xd"),
            ("Aaaaaah", "aaaaaah", "A", "aah", "Xxxxx"),
            ("COVID-19", "covid-19", "C", "-19", "XXXX-dd"),
            ("I", "i", "I", "I", "X"),
            ("नमस्ते", "नमस्ते", "न", "\u{94d}ते", "xxx्xे"),
            ("€", "$", "€", "€", "€"),
            ("", "", "", "", ""),
        ];
        for (s, n, p, su, sh) in cases {
            assert_eq!(
                strings(&v, s),
                (n.into(), p.into(), su.into(), sh.into()),
                "{s}"
            );
        }
        assert_eq!(word_shape(&"a".repeat(100)), "LONG");
        assert_eq!(word_shape(&"a".repeat(99)), "xxxx");
    }

    #[test]
    fn feature_ids_match_spacy() {
        let v = Vocab::default();
        assert_eq!(
            v.feature_row("U.S.", &tok("U.S.")),
            [
                7742618937320755052,
                8804677687338025421,
                13611846068488418672,
                9346084826459880894
            ]
        );
        assert_eq!(
            v.feature_row("2022", &tok("2022")),
            [
                13590857890977953713,
                15180167692696242062,
                14208661305871634583,
                16540303583526207617
            ]
        );
        let mut t = tok("’s");
        t.norm = Some("'s".into());
        assert_eq!(
            v.feature_row("’s", &t),
            [
                16428057658620181782,
                9283054155332335931,
                614914527630368944,
                12685219922295555250
            ]
        );
        assert_eq!(v.feature_row("_", &tok("_")), [456; 4]);
        assert_eq!(v.feature_row("Xi", &tok("Xi"))[1], 101);
        assert_eq!(v.feature_row("I", &tok("I"))[3], 101);
        assert_eq!(string_id("PERSON"), 380);
        assert_eq!(string_id(""), 0);
        // Offsets outside the text must not panic.
        let bad = Token {
            start: 3,
            end: 10,
            whitespace: false,
            norm: None,
        };
        assert_eq!(v.feature_row("ab", &bad), [0; 4]);
    }

    #[test]
    fn python_lower_edge_cases() {
        assert_eq!(py_lower("ÉCOLE"), "école");
        assert_eq!(py_lower("İ"), "i\u{307}");
        assert_eq!(py_lower("ΟΔΟΣ"), "οδος");
        assert_eq!(py_lower("abc"), "abc");
    }
}
