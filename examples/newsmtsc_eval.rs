//! Sentence-level stance on NewsMTSC (Hamborg & Donnay, EACL 2021): the
//! learned sentence model at each labelled mention, and the lexicon engine
//! with the mention as an explicit target, on `devtest_rw` and `devtest_mt`.
//!
//! ```sh
//! cargo run --release --example newsmtsc_eval [-- FILE...]
//! ```
//!
//! Prints F1m (macro-F1 over negative, neutral, positive: the paper's
//! measure) and accuracy for both, beside the majority baseline.

use std::path::PathBuf;

use article_analyzer::backend::load_pipeline;
use article_analyzer::config::{ModelConfig, StanceEngine};
use article_analyzer::pipeline::{AnalyzeOptions, Pipeline, StanceLabel, StanceMode};
use article_analyzer::stance::eval::newsmtsc::{self, Sentence};
use article_analyzer::stance::eval::Scores;
use article_analyzer::stance::learned::{LearnedStance, Mode, ModelPaths};
use article_analyzer::stance::LexiconStance;

fn learned(model: &LearnedStance, sentences: &[Sentence]) -> anyhow::Result<Vec<StanceLabel>> {
    let logits = model
        .encoder()
        .classify(&newsmtsc::encoder_inputs(sentences))
        .map_err(anyhow::Error::msg)?;
    Ok(logits
        .into_iter()
        .flatten()
        .map(newsmtsc::label_of)
        .collect())
}

fn lexicon(pipeline: &Pipeline, sentences: &[Sentence]) -> anyhow::Result<Vec<StanceLabel>> {
    let mut out = Vec::new();
    for s in sentences {
        for m in &s.targets {
            let options = AnalyzeOptions {
                entity_labels: Vec::new(),
                stance: StanceMode::Explicit(vec![m.text.clone()]),
            };
            let a = pipeline.analyze_collect(&s.text, &options)?;
            out.push(a.stances.first().map_or(StanceLabel::Neutral, |s| s.label));
        }
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        files = ["devtest_rw.jsonl", "devtest_mt.jsonl"]
            .iter()
            .map(|f| root.join("data/newsmtsc").join(f))
            .collect();
    }
    let config = ModelConfig {
        models_dir: std::env::var_os("ARTICLE_ANALYZER_MODELS").map(PathBuf::from),
        stance: StanceEngine::Lexicon,
        ..ModelConfig::default()
    };
    let pipeline = load_pipeline(&config)?;
    let model = LearnedStance::load(
        &ModelPaths::under(&config.models_root()),
        LexiconStance::embedded()?,
        Mode::LearnedOnly,
    )?;
    println!("| set | targets | learned F1m | learned accuracy | lexicon F1m | lexicon accuracy | majority F1m / accuracy |");
    println!("|---|---|---|---|---|---|---|");
    for file in &files {
        let sentences = newsmtsc::load(file)?;
        let gold: Vec<StanceLabel> = sentences
            .iter()
            .flat_map(|s| s.targets.iter().map(|m| m.gold))
            .collect();
        let score = |pred: Vec<StanceLabel>| Scores::from_pairs(gold.iter().copied().zip(pred));
        let l = score(learned(&model, &sentences)?);
        let x = score(lexicon(&pipeline, &sentences)?);
        let base = l.majority_baseline();
        println!(
            "| `{}` | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} / {:.3} |",
            file.file_name().unwrap_or_default().to_string_lossy(),
            gold.len(),
            l.macro_f1(),
            l.accuracy(),
            x.macro_f1(),
            x.accuracy(),
            base.macro_f1(),
            base.accuracy()
        );
    }
    Ok(())
}
