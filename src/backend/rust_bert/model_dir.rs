//! One local Hugging Face model directory: what architecture it is, where its
//! weights and vocabulary are, and what its labels mean.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rust_bert::pipelines::common::{ModelResource, ModelType, TokenizerOption};
use rust_bert::resources::LocalResource;
use rust_bert::RustBertError;
use serde::Deserialize;

/// Why a transformer model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TransformerError {
    #[error("{dir}: no {what}")]
    Missing { dir: PathBuf, what: String },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error(
        "{dir}: model_type {model_type:?} is not supported for {task} (supported: {supported})"
    )]
    Unsupported {
        dir: PathBuf,
        model_type: String,
        task: &'static str,
        supported: &'static str,
    },
    #[error("{dir}: {source}")]
    RustBert {
        dir: PathBuf,
        #[source]
        source: RustBertError,
    },
    #[error("{path}: {source}")]
    Weights {
        path: PathBuf,
        #[source]
        source: tch::TchError,
    },
}

/// The parts of `config.json` we read ourselves (rust-bert reads the rest).
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: String,
    #[serde(default)]
    id2label: BTreeMap<String, String>,
    max_position_embeddings: Option<usize>,
    pad_token_id: Option<usize>,
    #[serde(default, rename = "_name_or_path")]
    name_or_path: String,
}

/// The parts of `tokenizer_config.json` that change tokenization.
#[derive(Debug, Default, Deserialize)]
struct HfTokenizerConfig {
    do_lower_case: Option<bool>,
    strip_accents: Option<bool>,
    add_prefix_space: Option<bool>,
}

/// The kind of pieces a model's tokenizer makes, which decides how a
/// piece's offsets and word boundaries are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pieces {
    /// WordPiece (BERT, DistilBERT, ELECTRA, MobileBERT): a continuation
    /// keeps the `##` prefix, so a piece continues a word exactly when its
    /// text is longer than the characters it covers.
    WordPiece,
    /// GPT-2's byte-level BPE (RoBERTa, BART, DeBERTa v1): a piece's leading
    /// `Ġ` is the space before it.
    ByteLevelBpe,
    /// SentencePiece (XLM-R, DeBERTa v2, ALBERT), whose normalizer folds
    /// runs of whitespace (see [`super::whitespace`]).
    SentencePiece,
}

impl Pieces {
    fn of(model_type: ModelType) -> Pieces {
        match model_type {
            ModelType::Roberta | ModelType::Bart | ModelType::Deberta => Pieces::ByteLevelBpe,
            ModelType::XLMRoberta | ModelType::DebertaV2 | ModelType::Albert => {
                Pieces::SentencePiece
            }
            _ => Pieces::WordPiece,
        }
    }
}

/// A model directory, checked: every file the architecture needs is there.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub path: PathBuf,
    pub model_type: ModelType,
    /// `model_type` as `config.json` spells it.
    pub model_type_name: String,
    /// A name for `GetModels`: `_name_or_path`, else the directory's name.
    pub name: String,
    pub config: PathBuf,
    pub weights: PathBuf,
    /// Class labels by id, from `id2label` (empty for a bare encoder).
    pub labels: Vec<String>,
    /// Longest input (special tokens included) the position embeddings
    /// allow.
    pub max_positions: usize,
    pub(crate) vocab: PathBuf,
    pub(crate) merges: Option<PathBuf>,
    pub(crate) lower_case: bool,
    pub(crate) strip_accents: Option<bool>,
    pub(crate) add_prefix_space: Option<bool>,
}

impl ModelDir {
    /// Reads `config.json` and `tokenizer_config.json` and finds the weights
    /// and vocabulary.
    pub fn open(dir: &Path) -> Result<ModelDir, TransformerError> {
        let config_path = dir.join("config.json");
        let config: HfConfig =
            read_json(&config_path)?.ok_or_else(|| missing(dir, "config.json"))?;
        let tokenizer: HfTokenizerConfig =
            read_json(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
        let model_type = model_type(&config.model_type).ok_or_else(|| {
            TransformerError::Unsupported {
                dir: dir.to_path_buf(),
                model_type: config.model_type.clone(),
                task: "loading",
                supported: "bert, distilbert, roberta, xlm-roberta, deberta, deberta-v2, electra, mobilebert, albert, bart",
            }
        })?;

        let weights = ["model.safetensors", "rust_model.ot"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                missing(
                    dir,
                    "model.safetensors or rust_model.ot (convert a pytorch_model.bin with \
                     save_pretrained(..., safe_serialization=True); see docs/rust-bert.md)",
                )
            })?;

        if model_type == ModelType::DebertaV2 {
            tracing::warn!(
                dir = %dir.display(),
                "DeBERTa v2/v3 runs through rust-bert 0.23, whose disentangled attention does \
                 not match transformers' (a tiny test model's logits differed by up to 3.4); \
                 scores will differ from the same model in Python (docs/rust-bert.md)"
            );
        }
        let (vocab, merges) = vocabulary(dir, model_type)?;
        let labels = labels(&config_path, &config.id2label)?;
        // BERT-style tokenizers lower-case unless told otherwise (as the
        // Hugging Face BertTokenizer does); byte-level BPE ones never do.
        let default_lower = Pieces::of(model_type) == Pieces::WordPiece;
        let name = if config.name_or_path.is_empty() {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string())
        } else {
            config.name_or_path.clone()
        };
        Ok(ModelDir {
            path: dir.to_path_buf(),
            model_type,
            model_type_name: config.model_type,
            name,
            config: config_path,
            weights,
            labels,
            max_positions: usable_positions(
                model_type,
                config.max_position_embeddings.unwrap_or(512),
                config.pad_token_id,
            ),
            vocab,
            merges,
            lower_case: tokenizer.do_lower_case.unwrap_or(default_lower),
            strip_accents: tokenizer.strip_accents,
            add_prefix_space: tokenizer.add_prefix_space,
        })
    }

    /// The tokenizer the model was trained with.
    pub fn tokenizer(&self) -> Result<TokenizerOption, TransformerError> {
        TokenizerOption::from_file(
            self.model_type,
            &self.vocab.to_string_lossy(),
            self.merges
                .as_ref()
                .map(|m| m.to_string_lossy().into_owned())
                .as_deref(),
            self.lower_case,
            self.strip_accents,
            self.add_prefix_space,
        )
        .map_err(|source| self.rust_bert_error(source))
    }

    /// The kind of pieces the model's tokenizer makes.
    pub fn pieces(&self) -> Pieces {
        Pieces::of(self.model_type)
    }

    /// Whether the architecture takes segment (token type) ids.
    pub fn uses_token_types(&self) -> bool {
        !matches!(
            self.model_type,
            ModelType::Roberta
                | ModelType::XLMRoberta
                | ModelType::Bart
                | ModelType::DistilBert
                | ModelType::Longformer
        )
    }

    pub(crate) fn model_resource(&self) -> ModelResource {
        ModelResource::Torch(Box::new(LocalResource::from(self.weights.clone())))
    }

    pub(crate) fn rust_bert_error(&self, source: RustBertError) -> TransformerError {
        TransformerError::RustBert {
            dir: self.path.clone(),
            source,
        }
    }

    /// `config.json` checked against rust-bert's reading of it, completed
    /// where needed. rust-bert's config types require a few fields that
    /// `transformers` no longer writes (DistilBERT's `tie_weights_`), and its
    /// loader panics on a config it cannot parse; here a field with a known
    /// default is filled in (in a temporary copy that lives as long as the
    /// returned value: rust-bert reads the config once, while building the
    /// model) and anything else is a start-up error that says what is wrong.
    pub(crate) fn rust_bert_config(&self) -> Result<ConfigFile, TransformerError> {
        let bad = |message: String| TransformerError::Config {
            path: self.config.clone(),
            message,
        };
        let mut value: serde_json::Value =
            read_json(&self.config)?.ok_or_else(|| missing(&self.path, "config.json"))?;
        let added = complete_config(self.model_type, &mut value);
        check_config(self.model_type, &value).map_err(|e| {
            bad(format!(
                "rust-bert cannot read it as {:?}: {e}",
                self.model_type
            ))
        })?;
        if added.is_empty() {
            return Ok(ConfigFile {
                path: self.config.clone(),
                temporary: false,
            });
        }
        tracing::debug!(config = %self.config.display(), ?added, "completing config.json for rust-bert");
        static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "article-analyzer-{}-{n}-config.json",
            std::process::id()
        ));
        std::fs::write(&path, value.to_string()).map_err(|e| {
            bad(format!(
                "writing a completed copy to {}: {e}",
                path.display()
            ))
        })?;
        Ok(ConfigFile {
            path,
            temporary: true,
        })
    }

    /// Index of the label named `name` (case-insensitive).
    pub fn label_id(&self, name: &str) -> Option<usize> {
        self.labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(name))
    }
}

/// The `config.json` rust-bert reads: the directory's own, or a completed
/// temporary copy that is removed when this is dropped.
pub(crate) struct ConfigFile {
    path: PathBuf,
    temporary: bool,
}

impl ConfigFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Fills in the fields rust-bert requires but `transformers` may omit, with
/// the value `transformers` assumes; returns the names filled in.
fn complete_config(model_type: ModelType, config: &mut serde_json::Value) -> Vec<&'static str> {
    let defaults: &[(&'static str, serde_json::Value)] = match model_type {
        // Only the masked-LM head ties weights; classification ignores it.
        ModelType::DistilBert => &[("tie_weights_", serde_json::Value::Bool(true))],
        _ => &[],
    };
    let Some(object) = config.as_object_mut() else {
        return Vec::new();
    };
    let mut added = Vec::new();
    for (key, value) in defaults {
        if !object.contains_key(*key) {
            object.insert((*key).to_string(), value.clone());
            added.push(*key);
        }
    }
    added
}

/// Parses `config` as rust-bert's config type for `model_type` would.
fn check_config(
    model_type: ModelType,
    config: &serde_json::Value,
) -> Result<(), serde_json::Error> {
    use serde::de::{DeserializeOwned, IntoDeserializer};
    fn parse<T: DeserializeOwned>(config: &serde_json::Value) -> Result<(), serde_json::Error> {
        T::deserialize(config.clone().into_deserializer()).map(drop)
    }
    match model_type {
        ModelType::Bert | ModelType::Roberta | ModelType::XLMRoberta => {
            parse::<rust_bert::bert::BertConfig>(config)
        }
        ModelType::DistilBert => parse::<rust_bert::distilbert::DistilBertConfig>(config),
        ModelType::Deberta => parse::<rust_bert::deberta::DebertaConfig>(config),
        ModelType::DebertaV2 => parse::<rust_bert::deberta_v2::DebertaV2Config>(config),
        ModelType::Electra => parse::<rust_bert::electra::ElectraConfig>(config),
        ModelType::MobileBert => parse::<rust_bert::mobilebert::MobileBertConfig>(config),
        ModelType::Albert => parse::<rust_bert::albert::AlbertConfig>(config),
        ModelType::Bart => parse::<rust_bert::bart::BartConfig>(config),
        _ => Ok(()),
    }
}

/// A rust-bert pipeline configuration (`TokenClassificationConfig`,
/// `SequenceClassificationConfig`: the same resource fields) for a
/// [`ModelDir`], on the CPU in full precision, plus the given extra fields.
macro_rules! pipeline_config {
    ($dir:expr, $config_file:expr, $config:ident { $($field:ident: $value:expr),* $(,)? }) => {{
        let dir: &$crate::backend::rust_bert::ModelDir = $dir;
        let config_file: &$crate::backend::rust_bert::model_dir::ConfigFile = $config_file;
        let local = |p: &std::path::Path| {
            Box::new(rust_bert::resources::LocalResource::from(p.to_path_buf()))
                as Box<dyn rust_bert::resources::ResourceProvider + Send>
        };
        $config {
            model_type: dir.model_type,
            model_resource: dir.model_resource(),
            config_resource: local(config_file.path()),
            vocab_resource: local(&dir.vocab),
            merges_resource: dir.merges.as_deref().map(local),
            lower_case: dir.lower_case,
            strip_accents: dir.strip_accents,
            add_prefix_space: dir.add_prefix_space,
            device: tch::Device::Cpu,
            kind: None,
            $($field: $value),*
        }
    }};
}
pub(crate) use pipeline_config;

fn missing(dir: &Path, what: &str) -> TransformerError {
    TransformerError::Missing {
        dir: dir.to_path_buf(),
        what: what.to_string(),
    }
}

/// Parses a JSON file; `None` when it does not exist.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, TransformerError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(TransformerError::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| TransformerError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// How many positions an input may fill. RoBERTa-style models number
/// positions from `pad_token_id + 1` (a roberta-base has 514 embeddings for
/// 512 tokens); the others from 0.
fn usable_positions(model_type: ModelType, embeddings: usize, pad_id: Option<usize>) -> usize {
    match model_type {
        ModelType::Roberta | ModelType::XLMRoberta => {
            embeddings.saturating_sub(pad_id.unwrap_or(1) + 1)
        }
        _ => embeddings,
    }
}

fn model_type(name: &str) -> Option<ModelType> {
    Some(match name {
        "bert" => ModelType::Bert,
        "distilbert" => ModelType::DistilBert,
        "roberta" => ModelType::Roberta,
        "xlm-roberta" => ModelType::XLMRoberta,
        "deberta" => ModelType::Deberta,
        "deberta-v2" => ModelType::DebertaV2,
        "electra" => ModelType::Electra,
        "mobilebert" => ModelType::MobileBert,
        "albert" => ModelType::Albert,
        "bart" => ModelType::Bart,
        _ => return None,
    })
}

/// The vocabulary files the architecture's tokenizer reads.
fn vocabulary(
    dir: &Path,
    model_type: ModelType,
) -> Result<(PathBuf, Option<PathBuf>), TransformerError> {
    let need = |name: &str| {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(missing(dir, name))
        }
    };
    let first = |names: &[&str]| {
        names
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| missing(dir, &names.join(" or ")))
    };
    Ok(match Pieces::of(model_type) {
        Pieces::WordPiece => (need("vocab.txt")?, None),
        Pieces::ByteLevelBpe => (need("vocab.json")?, Some(need("merges.txt")?)),
        Pieces::SentencePiece => {
            let names: &[&str] = match model_type {
                ModelType::XLMRoberta => &["sentencepiece.bpe.model", "spm.model"],
                ModelType::Albert => &["spiece.model", "spm.model"],
                _ => &["spm.model"],
            };
            (first(names)?, None)
        }
    })
}

/// `id2label` as a dense list; ids must be 0..n.
fn labels(
    path: &Path,
    id2label: &BTreeMap<String, String>,
) -> Result<Vec<String>, TransformerError> {
    let mut labels = vec![None; id2label.len()];
    for (id, label) in id2label {
        let slot = id
            .parse::<usize>()
            .ok()
            .and_then(|i| labels.get_mut(i))
            .ok_or_else(|| TransformerError::Config {
                path: path.to_path_buf(),
                message: format!("id2label has id {id:?}; ids must be 0..{}", id2label.len()),
            })?;
        *slot = Some(label.clone());
    }
    Ok(labels.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DistilBERT directory whose config holds `fields` (weights and vocab
    /// are empty files: only their presence is checked on opening), in a
    /// temporary directory removed when the value is dropped.
    fn distilbert_dir(name: &str, fields: serde_json::Value) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("aa-model-dir-{name}-"))
            .tempdir()
            .unwrap();
        let mut config = serde_json::json!({
            "model_type": "distilbert", "activation": "gelu", "attention_dropout": 0.1,
            "dim": 32, "dropout": 0.1, "hidden_dim": 64, "initializer_range": 0.02,
            "max_position_embeddings": 128, "n_heads": 2, "n_layers": 2, "qa_dropout": 0.1,
            "seq_classif_dropout": 0.2, "sinusoidal_pos_embds": false, "vocab_size": 10,
            "id2label": {"0": "O", "1": "B-PER"}
        });
        for (k, v) in fields.as_object().unwrap() {
            if v.is_null() {
                config.as_object_mut().unwrap().remove(k);
            } else {
                config[k] = v.clone();
            }
        }
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        std::fs::write(dir.path().join("vocab.txt"), "[PAD]\n").unwrap();
        std::fs::write(dir.path().join("model.safetensors"), "").unwrap();
        dir
    }

    #[test]
    fn a_field_transformers_no_longer_writes_is_filled_in_a_temporary_copy() {
        let dir = distilbert_dir("complete", serde_json::json!({}));
        let model = ModelDir::open(dir.path()).unwrap();
        let config = model.rust_bert_config().unwrap();
        assert_ne!(config.path(), model.config, "a completed copy");
        let copy: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(config.path()).unwrap()).unwrap();
        assert_eq!(copy["tie_weights_"], true);
        assert_eq!(copy["dim"], 32);
        let path = config.path().to_path_buf();
        drop(config);
        assert!(
            !path.exists(),
            "the copy is removed once the model is built"
        );

        dir.close().unwrap();

        let dir = distilbert_dir("given", serde_json::json!({"tie_weights_": false}));
        let model = ModelDir::open(dir.path()).unwrap();
        assert_eq!(model.rust_bert_config().unwrap().path(), model.config);
        dir.close().unwrap();
    }

    #[test]
    fn a_config_rust_bert_cannot_read_is_an_error_not_a_panic() {
        let dir = distilbert_dir(
            "broken",
            serde_json::json!({"dim": null, "n_layers": "two"}),
        );
        let model = ModelDir::open(dir.path()).unwrap();
        let err = model.rust_bert_config().err().expect("an error");
        let message = err.to_string();
        assert!(matches!(err, TransformerError::Config { .. }), "{message}");
        assert!(message.contains("config.json"), "{message}");
        dir.close().unwrap();
    }

    #[test]
    fn roberta_positions_start_after_the_padding_id() {
        assert_eq!(usable_positions(ModelType::Roberta, 514, Some(1)), 512);
        assert_eq!(usable_positions(ModelType::XLMRoberta, 514, None), 512);
        assert_eq!(usable_positions(ModelType::Bert, 512, Some(0)), 512);
    }
}
