//! The models behind the pipeline traits.
//!
//! - [`spacy`]: the embedded default, the native spaCy runtime
//!   (`en_core_web_sm` 3.8.0) as an [`EntityRecognizer`](crate::pipeline::EntityRecognizer).
//! - Stance: the explainable lexicon engine of [`crate::stance`].
//! - [`rust_bert`] (cargo feature `rust-bert`): Hugging Face transformer
//!   models from local directories, a token classifier for entities and an
//!   NLI cross-encoder for zero-shot stance.

#[cfg(feature = "rust-bert")]
pub mod rust_bert;
pub mod spacy;

use std::sync::Arc;

use anyhow::Context;

use crate::config::{ModelConfig, TransformerConfig};
use crate::pipeline::Pipeline;

/// Loads the configured models into a ready [`Pipeline`]: the native spaCy
/// pipeline and the lexicon stance engine.
pub fn load_pipeline(config: &ModelConfig) -> anyhow::Result<Pipeline> {
    load_pipeline_with(config, &TransformerConfig::default())
}

/// [`load_pipeline`], with transformer models where `transformers` names
/// them: a token classifier replaces spaCy's entities, an NLI model replaces
/// the lexicon stance engine. spaCy still gives tokens and sentences.
pub fn load_pipeline_with(
    config: &ModelConfig,
    transformers: &TransformerConfig,
) -> anyhow::Result<Pipeline> {
    let dir = config.pipeline_dir();
    if !dir.join("config.cfg").is_file() {
        anyhow::bail!(
            "no spaCy pipeline at {} (no config.cfg); run scripts/fetch-models or pass --models DIR",
            dir.display()
        );
    }
    // Under a transformer NER, spaCy gives only tokens, sentences and the
    // parse; its own NER would be work thrown away.
    let load = if transformers.ner_model.is_some() {
        spacy::SpacyRecognizer::load_without_ner
    } else {
        spacy::SpacyRecognizer::load
    };
    let recognizer = load(&dir, config.components)
        .with_context(|| format!("loading the spaCy pipeline at {}", dir.display()))?;
    if transformers.any() {
        return transformer_pipeline(recognizer, transformers);
    }
    let stance =
        crate::stance::LexiconStance::embedded().context("loading the embedded stance lexicons")?;
    Ok(Pipeline::new(Arc::new(recognizer), Some(Arc::new(stance))))
}

#[cfg(feature = "rust-bert")]
fn transformer_pipeline(
    spacy: spacy::SpacyRecognizer,
    config: &TransformerConfig,
) -> anyhow::Result<Pipeline> {
    use crate::pipeline::{EntityRecognizer, StanceClassifier};

    rust_bert::set_threads(config.torch_threads);
    let recognizer: Arc<dyn EntityRecognizer> = match &config.ner_model {
        Some(dir) => Arc::new(
            rust_bert::TransformerRecognizer::load(dir, spacy, config)
                .with_context(|| format!("loading the NER model at {}", dir.display()))?,
        ),
        None => Arc::new(spacy),
    };
    let stance: Arc<dyn StanceClassifier> = match &config.nli_model {
        Some(dir) => Arc::new(
            rust_bert::NliStance::load(dir, config)
                .with_context(|| format!("loading the NLI model at {}", dir.display()))?,
        ),
        None => Arc::new(
            crate::stance::LexiconStance::embedded()
                .context("loading the embedded stance lexicons")?,
        ),
    };
    Ok(Pipeline::new(recognizer, Some(stance)))
}

#[cfg(not(feature = "rust-bert"))]
fn transformer_pipeline(
    _spacy: spacy::SpacyRecognizer,
    _config: &TransformerConfig,
) -> anyhow::Result<Pipeline> {
    anyhow::bail!(
        "--bert-ner / --bert-nli need a binary built with the `rust-bert` cargo feature \
         (scripts/fetch-libtorch, then cargo build --release --features rust-bert)"
    )
}
