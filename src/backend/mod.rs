//! The models behind the pipeline traits.
//!
//! - [`spacy`]: the embedded default, the native spaCy runtime
//!   (`en_core_web_sm` 3.8.0) as an [`EntityRecognizer`](crate::pipeline::EntityRecognizer).
//! - Stance: the explainable lexicon engine of [`crate::stance`].

pub mod spacy;

use std::sync::Arc;

use anyhow::Context;

use crate::config::ModelConfig;
use crate::pipeline::Pipeline;

/// Loads the configured models into a ready [`Pipeline`].
pub fn load_pipeline(config: &ModelConfig) -> anyhow::Result<Pipeline> {
    let dir = config.pipeline_dir();
    if !dir.join("config.cfg").is_file() {
        anyhow::bail!(
            "no spaCy pipeline at {} (no config.cfg); run scripts/fetch-models or pass --models DIR",
            dir.display()
        );
    }
    let recognizer = spacy::SpacyRecognizer::load(&dir, config.components)
        .with_context(|| format!("loading the spaCy pipeline at {}", dir.display()))?;
    let stance =
        crate::stance::LexiconStance::embedded().context("loading the embedded stance lexicons")?;
    Ok(Pipeline::new(Arc::new(recognizer), Some(Arc::new(stance))))
}
