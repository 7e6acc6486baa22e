//! Transformer models from local Hugging Face directories, run by rust-bert
//! on libtorch (cargo feature `rust-bert`; `scripts/fetch-libtorch`).
//!
//! - [`TransformerRecognizer`]: a token-classification model (BERT, RoBERTa,
//!   DistilBERT, DeBERTa...) as an
//!   [`EntityRecognizer`](crate::pipeline::EntityRecognizer), with the word
//!   aggregation strategies of the Hugging Face pipeline and long articles
//!   cut into overlapping windows.
//! - [`NliStance`]: an NLI cross-encoder as a zero-shot
//!   [`StanceClassifier`](crate::pipeline::StanceClassifier): every evidence
//!   sentence is a premise, the configured templates are the hypotheses.
//! - [`BertEncoder`]: a bare BERT encoder's hidden states, which checks the
//!   loader against a real checkpoint.
//!
//! A model directory holds what `save_pretrained` writes: `config.json`, the
//! weights as `model.safetensors` (Hugging Face tensor names, loaded as they
//! are) or `rust_model.ot` (rust-bert's converted form), and the tokenizer's
//! vocabulary (`vocab.txt`; `vocab.json` + `merges.txt`; `spm.model`).
//! Nothing is ever downloaded: a missing file is a load error naming it.

mod aggregation;
mod encoder;
mod model_dir;
mod ner;
mod nli;
mod whitespace;
mod windows;

pub use aggregation::{aggregate_words, group_entities, EntityGroup, PieceScores, Word};
pub use encoder::{BertEncoder, Encoded};
pub use model_dir::{ModelDir, Pieces, TransformerError};
pub use ner::{PieceLogits, TokenClassifier, TransformerRecognizer};
pub use nli::{NliModel, NliStance};
pub use windows::{plan_windows, Window};

/// Sets how many threads libtorch uses inside one operation (0 leaves its
/// default, one per core). Process-wide.
pub fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
}

/// Softmax of one row of logits, computed in f64 for stable sums.
pub(crate) fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}
