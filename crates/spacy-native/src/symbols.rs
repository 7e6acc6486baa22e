//! spaCy's built-in symbol table (`spacy.symbols.IDS`).
//!
//! spaCy maps the 457 built-in symbol strings (`""`, `IS_ALPHA`, `X`, `PERSON`,
//! `_`, ...) to small integers instead of their hashes, and those integers end
//! up in the NER features (e.g. the shape `X` of `I` is 101, not a hash), so
//! the table must be exact. `symbols.json` was exported from spaCy 3.8 with
//! `python -c "import json,spacy.symbols as s;print(json.dumps(s.IDS))"`.

use std::collections::HashMap;
use std::sync::OnceLock;

const SYMBOLS_JSON: &str = include_str!("symbols.json");

fn table() -> &'static HashMap<String, u64> {
    static TABLE: OnceLock<HashMap<String, u64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // The file is compiled in and the test below checks it, so a parse
        // failure is a build defect: it stops with the reason instead of
        // leaving an empty table that would silently change every feature.
        serde_json::from_str(SYMBOLS_JSON)
            .expect("symbols.json is embedded at build time; the symbol table test checks it")
    })
}

/// The symbol id of `s` if it is one of spaCy's built-in symbols.
pub fn symbol_id(s: &str) -> Option<u64> {
    table().get(s).copied()
}

/// How many symbols the table holds (457 for spaCy 3.8).
pub fn symbol_count() -> usize {
    table().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_spacy_3_8() {
        assert_eq!(symbol_count(), 457);
        assert_eq!(symbol_id(""), Some(0));
        assert_eq!(symbol_id("PERSON"), Some(380));
        assert_eq!(symbol_id("X"), Some(101));
        assert_eq!(symbol_id("_"), Some(456));
        assert_eq!(symbol_id("det"), Some(415));
        assert_eq!(symbol_id("num"), Some(431));
        assert_eq!(symbol_id("LAW"), Some(390));
        assert_eq!(symbol_id("apple"), None);
    }
}
