//! spaCy's English rule lemmatizer (`EnglishLemmatizer`, mode `rule`,
//! `overwrite = false`): tables `lemma_rules`, `lemma_exc`, `lemma_index` of
//! `lemmatizer/lookups/lookups.bin`, keyed by the string id of the lowercase
//! universal POS (`noun`, `verb`, `adj`, `adv`). Tokens whose lemma the
//! attribute ruler already set are left alone.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::error::ModelError;
use super::vocab::{py_isalpha, py_lower, string_id};

#[derive(Debug, Clone, Default)]
struct PosTables {
    index: HashSet<String>,
    exc: HashMap<String, Vec<String>>,
    rules: Vec<(String, String)>,
}

/// The rule lemmatizer of a pipeline.
#[derive(Debug, Clone, Default)]
pub struct Lemmatizer {
    /// Per POS string id; a POS is present when any of its tables is.
    tables: HashMap<u64, PosTables>,
}

/// The lemmatizer's lookups file: the three tables the rule lemmatizer
/// reads, each keyed by the string id of a coarse POS. Other tables are
/// ignored.
#[derive(serde::Deserialize)]
struct Lookups {
    #[serde(default)]
    lemma_rules: HashMap<u64, Vec<(String, String)>>,
    #[serde(default)]
    lemma_exc: HashMap<u64, HashMap<String, Vec<String>>>,
    #[serde(default)]
    lemma_index: HashMap<u64, HashSet<String>>,
}

fn parse(bytes: &[u8]) -> Result<Lemmatizer, String> {
    let lookups: Lookups =
        rmp_serde::from_slice(bytes).map_err(|e| format!("not a lemmatizer lookups file: {e}"))?;
    let mut out = Lemmatizer::default();
    for (pos, index) in lookups.lemma_index {
        out.tables.entry(pos).or_default().index = index;
    }
    for (pos, exc) in lookups.lemma_exc {
        out.tables.entry(pos).or_default().exc.extend(exc);
    }
    for (pos, rules) in lookups.lemma_rules {
        out.tables.entry(pos).or_default().rules = rules;
    }
    Ok(out)
}

/// Value of feature `name` in a morph string `A=x|B=y`.
fn feat<'a>(morph: &'a str, name: &str) -> Option<&'a str> {
    morph
        .split('|')
        .filter_map(|f| f.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `EnglishLemmatizer.is_base_form`.
fn is_base_form(pos: &str, morph: &str) -> bool {
    let f = |n| feat(morph, n);
    (pos == "noun" && f("Number") == Some("Sing"))
        || (pos == "verb" && f("VerbForm") == Some("Inf"))
        || (pos == "verb"
            && f("VerbForm") == Some("Fin")
            && f("Tense") == Some("Pres")
            && f("Number").is_none())
        || (pos == "adj" && f("Degree") == Some("Pos"))
        || f("VerbForm") == Some("Inf")
        || f("VerbForm") == Some("None")
        || f("Degree") == Some("Pos")
}

impl Lemmatizer {
    /// Loads `<dir>/lookups/lookups.bin`.
    pub fn load(dir: &Path) -> Result<Lemmatizer, ModelError> {
        let path = dir.join("lookups").join("lookups.bin");
        let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
        parse(&bytes).map_err(|what| ModelError::format(&path, what))
    }

    /// The lemma of a token (`rule_lemmatize(token)[0]`) from its text,
    /// universal POS (`token.pos_`) and morph string.
    pub fn lemmatize(&self, text: &str, pos: &str, morph: &str) -> String {
        let univ_pos = py_lower(pos);
        let univ_pos: &str = &univ_pos;
        if matches!(univ_pos, "" | "eol" | "space") {
            return py_lower(text).into_owned();
        }
        if is_base_form(univ_pos, morph) {
            return py_lower(text).into_owned();
        }
        let Some(t) = self.tables.get(&string_id(univ_pos)) else {
            return if univ_pos == "propn" {
                text.to_owned()
            } else {
                py_lower(text).into_owned()
            };
        };
        if t.index.is_empty() && t.exc.is_empty() && t.rules.is_empty() {
            return if univ_pos == "propn" {
                text.to_owned()
            } else {
                py_lower(text).into_owned()
            };
        }
        let string = py_lower(text);
        let string: &str = &string;
        let mut forms: Vec<String> = Vec::new();
        let mut oov: Vec<String> = Vec::new();
        for (old, new) in &t.rules {
            if let Some(stem) = string.strip_suffix(old.as_str()) {
                let form = format!("{stem}{new}");
                if form.is_empty() {
                    continue;
                }
                if t.index.contains(&form) {
                    forms.insert(0, form);
                } else if !form.chars().all(py_isalpha) {
                    forms.push(form);
                } else {
                    oov.push(form);
                }
            }
        }
        // Remove duplicates, keeping the first occurrence.
        let mut seen = HashSet::new();
        forms.retain(|f| seen.insert(f.clone()));
        if let Some(exc) = t.exc.get(string) {
            for form in exc {
                if !forms.contains(form) {
                    forms.insert(0, form.clone());
                }
            }
        }
        if forms.is_empty() {
            forms = oov;
        }
        forms.into_iter().next().unwrap_or_else(|| text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_forms() {
        assert!(is_base_form("noun", "Number=Sing"));
        assert!(is_base_form("verb", "Tense=Pres|VerbForm=Fin"));
        assert!(!is_base_form(
            "verb",
            "Number=Sing|Person=3|Tense=Pres|VerbForm=Fin"
        ));
        assert!(!is_base_form("noun", "Number=Plur"));
    }
}
