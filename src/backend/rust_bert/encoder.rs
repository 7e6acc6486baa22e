//! A bare BERT encoder (no task head): its last hidden states.
//!
//! Not a pipeline stage: it loads a real pretrained checkpoint (for example
//! all-MiniLM-L6-v2) through the same [`ModelDir`] loader the task models
//! use, so the tests can check tokenizer, weight names and numerics against
//! the reference implementation on real weights.

use std::io::Read;
use std::path::Path;

use rust_bert::bert::{BertConfig, BertEmbeddings, BertModel};
use rust_bert::pipelines::common::{ModelType, TokenizerOption};
use rust_bert::Config;
use rust_tokenizers::tokenizer::TruncationStrategy;
use tch::nn::VarStore;
use tch::Device;

use super::model_dir::{ModelDir, TransformerError};
use super::ner::{flat_f32, pad_rows};
use crate::pipeline::AnalysisError;

pub struct BertEncoder {
    dir: ModelDir,
    tokenizer: TokenizerOption,
    model: BertModel<BertEmbeddings>,
    _weights: VarStore,
    pad_id: i64,
}

/// One text's encoding: ids (special tokens included) and the last hidden
/// state of each.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub ids: Vec<i64>,
    pub hidden: Vec<Vec<f32>>,
}

impl BertEncoder {
    pub fn load(dir: &Path) -> Result<BertEncoder, TransformerError> {
        let dir = ModelDir::open(dir)?;
        if dir.model_type != ModelType::Bert {
            return Err(TransformerError::Unsupported {
                dir: dir.path.clone(),
                model_type: dir.model_type_name.clone(),
                task: "the bare encoder",
                supported: "bert",
            });
        }
        let tokenizer = dir.tokenizer()?;
        // Checked first: rust-bert's `from_file` panics on what it cannot parse.
        let config = BertConfig::from_file(dir.rust_bert_config()?.path());
        // A checkpoint saved from a bare BertModel names its tensors
        // `embeddings...`; one saved from a task model, `bert.embeddings...`.
        let names = safetensors_names(&dir.weights).unwrap_or_default();
        let prefixed = names.iter().any(|n| n.starts_with("bert."));
        let pooler = names.iter().any(|n| n.contains("pooler."));
        let mut weights = VarStore::new(Device::Cpu);
        let root = weights.root();
        let path = if prefixed { root / "bert" } else { root };
        let model = BertModel::<BertEmbeddings>::new_with_optional_pooler(path, &config, pooler);
        weights
            .load(&dir.weights)
            .map_err(|source| TransformerError::Weights {
                path: dir.weights.clone(),
                source,
            })?;
        let pad_id = tokenizer.get_pad_id().unwrap_or(0);
        Ok(BertEncoder {
            dir,
            tokenizer,
            model,
            _weights: weights,
            pad_id,
        })
    }

    pub fn model_dir(&self) -> &ModelDir {
        &self.dir
    }

    /// Last hidden states of each text (one forward pass, padded).
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Encoded>, AnalysisError> {
        let max_len = self.dir.max_positions.min(512);
        let inputs =
            self.tokenizer
                .encode_list(texts, max_len, &TruncationStrategy::LongestFirst, 0);
        let rows: Vec<(Vec<i64>, Vec<i8>)> = inputs
            .iter()
            .map(|t| (t.token_ids.clone(), t.segment_ids.clone()))
            .collect();
        let (ids, mask, types) = pad_rows(&rows, self.pad_id);
        let output = tch::no_grad(|| {
            self.model.forward_t(
                Some(&ids),
                Some(&mask),
                Some(&types),
                None,
                None,
                None,
                None,
                false,
            )
        })
        .map_err(|e| AnalysisError::Model(e.to_string()))?;
        let size = output.hidden_state.size();
        let (width, hidden) = (size[1] as usize, size[2] as usize);
        let flat = flat_f32(&output.hidden_state)?;
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, (row_ids, _))| Encoded {
                hidden: (0..row_ids.len())
                    .map(|p| flat[(i * width + p) * hidden..(i * width + p + 1) * hidden].to_vec())
                    .collect(),
                ids: row_ids,
            })
            .collect())
    }
}

/// Tensor names in a `.safetensors` file's header (none for other formats).
fn safetensors_names(path: &Path) -> Option<Vec<String>> {
    if path.extension()? != "safetensors" {
        return None;
    }
    let mut file = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
    if len > 100 << 20 {
        return None;
    }
    let mut header = vec![0u8; len];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).ok()?;
    Some(
        header
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k != "__metadata__")
            .collect(),
    )
}
