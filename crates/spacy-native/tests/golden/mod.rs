//! Shared helpers of the spaCy parity tests (`tests/parity_*.rs`): where the
//! models and the golden files are, and how golden records become our types.
//!
//! The golden files are written from Python spaCy by
//! `tests/parity/make_golden.py` (`tests/parity/golden`) and
//! `tests/parity/make_golden_md.py` (`tests/parity/golden_md`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use spacy_native::language::{Doc, Language};
use spacy_native::Token;

/// A spaCy package under the models directory, and how to fetch it.
pub struct Model {
    /// Directory name of the package, e.g. `en_core_web_sm-3.8.0`.
    pub name: &'static str,
    /// The command that downloads it.
    pub fetch: &'static str,
}

/// `en_core_web_sm` 3.8.0.
/// Every component of an `en_core_web_*` pipeline (besides the tokenizer),
/// in pipeline order, as the native runtime loads them with
/// `Components::FULL` (spaCy's `senter` is disabled in those packages).
pub const FULL_COMPONENTS: [&str; 6] = [
    "tok2vec",
    "tagger",
    "parser",
    "attribute_ruler",
    "lemmatizer",
    "ner",
];

pub const SM: Model = Model {
    name: "en_core_web_sm-3.8.0",
    fetch: "scripts/fetch-models",
};

/// `en_core_web_md` 3.8.0.
pub const MD: Model = Model {
    name: "en_core_web_md-3.8.0",
    fetch: "scripts/fetch-models md",
};

impl Model {
    /// The package directory under `ARTICLE_ANALYZER_MODELS` (default
    /// `<crate>/models`). A missing model is a failure, not a skip, so that
    /// CI cannot pass vacuously.
    pub fn dir(&self) -> PathBuf {
        let name = self.name;
        let dir = std::env::var_os("ARTICLE_ANALYZER_MODELS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("models")
            })
            .join(name);
        assert!(
            dir.join("config.cfg").is_file() && dir.join("tokenizer").is_file(),
            "the spaCy model {name} is missing at {}; run `{}` first \
             (or point ARTICLE_ANALYZER_MODELS at a directory containing {name})",
            dir.display(),
            self.fetch
        );
        dir
    }
}

/// A directory of golden files written from Python spaCy.
pub struct Corpus {
    /// The environment variable that overrides the directory.
    pub env: &'static str,
    /// The default directory, relative to the crate root.
    pub subdir: &'static str,
    /// The script that writes the files.
    pub script: &'static str,
}

/// `tests/parity/golden` (`en_core_web_sm`), also holding the
/// `ner_scores-*` step dumps of `tests/parity/ner_scores.py`.
pub const GOLDEN: Corpus = Corpus {
    env: "ARTICLE_ANALYZER_GOLDEN",
    subdir: "tests/parity/golden",
    script: "tests/parity/make_golden.py",
};

/// `tests/parity/golden_md` (`en_core_web_md`, a subset of the corpus).
pub const GOLDEN_MD: Corpus = Corpus {
    env: "ARTICLE_ANALYZER_GOLDEN_MD",
    subdir: "tests/parity/golden_md",
    script: "tests/parity/make_golden_md.py",
};

impl Corpus {
    /// The directory: `$env`, else `<crate>/subdir`.
    pub fn dir(&self) -> PathBuf {
        std::env::var_os(self.env)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(self.subdir)
            })
    }

    /// The golden files (`*.json`, not the `ner_scores-*` step dumps),
    /// sorted; at least one.
    pub fn files(&self) -> Vec<PathBuf> {
        let dir = self.dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("ner_scores-"))
            })
            .collect();
        files.sort();
        assert!(
            !files.is_empty(),
            "no golden files in {}; run {} first",
            dir.display(),
            self.script
        );
        files
    }

    /// (file stem, golden record) of every golden file, sorted.
    pub fn goldens(&self) -> Vec<(String, Value)> {
        self.files()
            .iter()
            .map(|p| {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                (name, read_json(p))
            })
            .collect()
    }
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The texts of golden records and spaCy's tokens for each, ready for
/// `Language::process_tokens_batch` (all texts as one batch, as `nlp.pipe`).
pub fn golden_batch<'g>(
    lang: &Language,
    goldens: &'g [(String, Value)],
) -> (Vec<&'g str>, Vec<Vec<Token>>) {
    let texts: Vec<&str> = goldens
        .iter()
        .map(|(_, g)| g["text"].as_str().expect("text"))
        .collect();
    let tokens = goldens
        .iter()
        .zip(&texts)
        .map(|((_, g), text)| golden_tokens(lang, text, g["tokens"].as_array().expect("tokens")))
        .collect();
    (texts, tokens)
}

/// spaCy's tokens of a golden file as our `Token`s. A token-level norm is
/// set where spaCy's norm differs from the lexeme norm (tokenizer special
/// cases such as `n't` -> `not`), which is exactly when spaCy sets one.
pub fn golden_tokens(lang: &Language, text: &str, tokens: &[Value]) -> Vec<Token> {
    // Byte offset of every char index of `text` (plus the end).
    let mut c2b: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    c2b.push(text.len());
    tokens
        .iter()
        .map(|t| {
            let start = c2b[t["idx"].as_u64().expect("idx") as usize];
            let tok_text = t["text"].as_str().expect("text");
            let end = start + tok_text.len();
            assert_eq!(&text[start..end], tok_text, "golden token offsets");
            let norm = t["norm"].as_str().expect("norm");
            let lex = lang.vocab().lex_norm(tok_text);
            Token {
                start,
                end,
                whitespace: t["whitespace"].as_bool().expect("whitespace"),
                norm: (norm != lex).then(|| norm.into()),
            }
        })
        .collect()
}

/// A JSON array of strings.
pub fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_owned())
        .collect()
}

/// A JSON array of non-negative integers.
pub fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

/// Sentences as `[[start, end], ...]` token spans.
pub fn golden_sents(v: &Value) -> Vec<(usize, usize)> {
    v.as_array()
        .expect("sents")
        .iter()
        .map(|s| {
            (
                s[0].as_u64().expect("sentence start") as usize,
                s[1].as_u64().expect("sentence end") as usize,
            )
        })
        .collect()
}

/// Entities as (token start, token end, label).
pub fn golden_ents(v: &Value) -> Vec<(usize, usize, String)> {
    v.as_array()
        .expect("ents")
        .iter()
        .map(|e| {
            (
                e["start"].as_u64().expect("start") as usize,
                e["end"].as_u64().expect("end") as usize,
                e["label"].as_str().expect("label").to_owned(),
            )
        })
        .collect()
}

/// An entity with its char offsets: (token start, token end, start char,
/// end char, label).
pub type Span = (usize, usize, usize, usize, String);

/// Entities with their char offsets (`ents_ner_only`).
pub fn golden_spans(v: &Value) -> Vec<Span> {
    v.as_array()
        .expect("ents")
        .iter()
        .map(|e| {
            let n = |k: &str| e[k].as_u64().expect(k) as usize;
            (
                n("start"),
                n("end"),
                n("start_char"),
                n("end_char"),
                e["label"].as_str().expect("label").to_owned(),
            )
        })
        .collect()
}

/// The entities of a doc as (token start, token end, label).
pub fn doc_ents(doc: &Doc) -> Vec<(usize, usize, String)> {
    doc.ents
        .iter()
        .map(|e| (e.start, e.end, e.label.to_string()))
        .collect()
}

/// Matches per field: (equal, total), and the first mismatches. Lists
/// (entities included) are compared position by position.
#[derive(Default)]
pub struct Tally {
    fields: Vec<(&'static str, usize, usize)>,
    mismatches: Vec<String>,
}

impl Tally {
    pub fn add<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &'static str,
        name: &str,
        got: &[T],
        want: &[T],
    ) {
        let idx = match self.fields.iter().position(|f| f.0 == what) {
            Some(i) => i,
            None => {
                self.fields.push((what, 0, 0));
                self.fields.len() - 1
            }
        };
        let total = want.len().max(got.len());
        let equal = want.iter().zip(got).filter(|(w, g)| w == g).count();
        self.fields[idx].1 += equal;
        self.fields[idx].2 += total;
        if equal != total && self.mismatches.len() < 30 {
            let i = want.iter().zip(got).position(|(w, g)| w != g);
            let i = i.unwrap_or(want.len().min(got.len()));
            self.mismatches.push(format!(
                "{name}: {what}[{i}] got {:?} want {:?} (lengths {} / {})",
                got.get(i),
                want.get(i),
                got.len(),
                want.len()
            ));
        }
    }

    pub fn assert_all(&self, what: &str) {
        let figures: Vec<String> = self
            .fields
            .iter()
            .map(|(f, e, t)| format!("{f}: {e}/{t}"))
            .collect();
        println!("{what}: {}", figures.join(", "));
        for m in &self.mismatches {
            println!("  {m}");
        }
        assert!(!self.fields.is_empty());
        for (f, e, t) in &self.fields {
            assert_eq!(e, t, "{what}: {f} parity");
        }
    }
}

/// Adds the full pipeline's sentences, tags, heads, deps, POS, lemmas and
/// entities of `doc` against the golden record `g` to `t`.
pub fn check_full(t: &mut Tally, name: &str, g: &Value, doc: &Doc) {
    let full = &g["full"];
    let want_sents = golden_sents(&full["sents"]);
    let own = |v: &Option<Vec<std::sync::Arc<str>>>| -> Vec<String> {
        v.iter().flatten().map(|s| s.to_string()).collect()
    };
    t.add("sents", name, &doc.sents().unwrap_or_default(), &want_sents);
    t.add("tags", name, &own(&doc.tags), &strs(&full["tag"]));
    t.add(
        "heads",
        name,
        &doc.heads.clone().unwrap_or_default(),
        &usizes(&full["head"]),
    );
    t.add("deps", name, &own(&doc.deps), &strs(&full["dep"]));
    t.add("pos", name, &own(&doc.pos), &strs(&full["pos"]));
    t.add("lemmas", name, &own(&doc.lemmas), &strs(&full["lemma"]));
    t.add(
        "ents(full)",
        name,
        &doc_ents(doc),
        &golden_ents(&full["ents"]),
    );
}
