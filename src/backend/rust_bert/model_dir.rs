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
    /// Longest input the position embeddings allow.
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

        let (vocab, merges) = vocabulary(dir, model_type)?;
        let labels = labels(&config_path, &config.id2label)?;
        // BERT-style tokenizers lower-case unless told otherwise (as the
        // Hugging Face BertTokenizer does); byte-level BPE ones never do.
        let default_lower = matches!(
            model_type,
            ModelType::Bert | ModelType::DistilBert | ModelType::Electra | ModelType::MobileBert
        );
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
            max_positions: config.max_position_embeddings.unwrap_or(512),
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

    /// Whether the model keeps the tokenizer's word-piece prefix (`##`), so
    /// a piece is a continuation exactly when its text is longer than the
    /// characters it covers.
    pub fn word_piece(&self) -> bool {
        matches!(
            self.model_type,
            ModelType::Bert | ModelType::DistilBert | ModelType::Electra | ModelType::MobileBert
        )
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

    /// Index of the label named `name` (case-insensitive).
    pub fn label_id(&self, name: &str) -> Option<usize> {
        self.labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(name))
    }
}

/// A rust-bert pipeline configuration (`TokenClassificationConfig`,
/// `SequenceClassificationConfig`: the same resource fields) for a
/// [`ModelDir`], on the CPU in full precision, plus the given extra fields.
macro_rules! pipeline_config {
    ($dir:expr, $config:ident { $($field:ident: $value:expr),* $(,)? }) => {{
        let dir: &$crate::backend::rust_bert::ModelDir = $dir;
        let local = |p: &std::path::Path| {
            Box::new(rust_bert::resources::LocalResource::from(p.to_path_buf()))
                as Box<dyn rust_bert::resources::ResourceProvider + Send>
        };
        $config {
            model_type: dir.model_type,
            model_resource: dir.model_resource(),
            config_resource: local(&dir.config),
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
    Ok(match model_type {
        ModelType::Roberta | ModelType::Bart | ModelType::Deberta => {
            (need("vocab.json")?, Some(need("merges.txt")?))
        }
        ModelType::XLMRoberta => (first(&["sentencepiece.bpe.model", "spm.model"])?, None),
        ModelType::DebertaV2 => (first(&["spm.model"])?, None),
        ModelType::Albert => (first(&["spiece.model", "spm.model"])?, None),
        _ => (need("vocab.txt")?, None),
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
