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

use crate::config::{ModelConfig, StanceEngine, TransformerConfig};
use crate::pipeline::{Pipeline, StanceClassifier};
use crate::relations::{RelationConfig, RelationExtractor};

/// Loads the configured models into a ready [`Pipeline`]: the native spaCy
/// pipeline and the stance engine `config.stance` chooses. Where
/// `config.transformers` names models, a token classifier replaces spaCy's
/// entities and an NLI model the stance engine; spaCy still gives tokens,
/// sentences and the parse.
pub fn load_pipeline(config: &ModelConfig) -> anyhow::Result<Pipeline> {
    let transformers = &config.transformers;
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
        return transformer_pipeline(recognizer, config, transformers);
    }
    Ok(
        Pipeline::new(Arc::new(recognizer), Some(native_stance(config)?))
            .with_relations(relation_extractor()?),
    )
}

/// The holder-to-target relation extractor with its embedded predicates.
fn relation_extractor() -> anyhow::Result<RelationExtractor> {
    RelationExtractor::embedded(RelationConfig::default())
        .context("loading the embedded relation predicates")
}

/// The stance engine that runs without libtorch: the learned model (with
/// or without the lexicon's cues) or the lexicon engine, as `--stance` says.
fn native_stance(config: &ModelConfig) -> anyhow::Result<Arc<dyn StanceClassifier>> {
    use crate::stance::learned::{LearnedStance, Mode, ModelPaths};

    let lexicon =
        crate::stance::LexiconStance::embedded().context("loading the embedded stance lexicons")?;
    let paths = ModelPaths::under(&config.models_root());
    let mode = match config.stance {
        StanceEngine::Lexicon => return Ok(Arc::new(lexicon)),
        StanceEngine::Nli => anyhow::bail!("--stance nli needs --bert-nli DIR"),
        StanceEngine::Auto if !paths.present() => {
            tracing::warn!(
                dir = %paths.adapter.display(),
                "no learned stance model; using the lexicon engine (scripts/fetch-models installs it)"
            );
            return Ok(Arc::new(lexicon));
        }
        StanceEngine::Auto | StanceEngine::Learned => Mode::Combined,
        StanceEngine::LearnedOnly => Mode::LearnedOnly,
    };
    let mut learned = LearnedStance::load(&paths, lexicon, mode).with_context(|| {
        format!(
            "loading the learned stance model at {} (base {})",
            paths.adapter.display(),
            paths.base.display()
        )
    })?;
    let mut settings = learned.config().clone();
    settings.max_sentences = config.stance_max_sentences.max(1);
    learned = learned.with_config(settings);
    Ok(Arc::new(learned))
}

#[cfg(feature = "rust-bert")]
fn transformer_pipeline(
    spacy: spacy::SpacyRecognizer,
    models: &ModelConfig,
    config: &TransformerConfig,
) -> anyhow::Result<Pipeline> {
    use crate::pipeline::EntityRecognizer;

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
        None => native_stance(models)?,
    };
    Ok(Pipeline::new(recognizer, Some(stance)).with_relations(relation_extractor()?))
}

#[cfg(not(feature = "rust-bert"))]
fn transformer_pipeline(
    _spacy: spacy::SpacyRecognizer,
    _models: &ModelConfig,
    _config: &TransformerConfig,
) -> anyhow::Result<Pipeline> {
    anyhow::bail!(
        "--bert-ner / --bert-nli need a binary built with the `rust-bert` cargo feature \
         (scripts/fetch-libtorch, then cargo build --release --features rust-bert)"
    )
}
