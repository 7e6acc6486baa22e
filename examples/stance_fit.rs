//! Chooses the learned stance engine's article-level decision settings on
//! the development sets (`eval/stance/real.jsonl` and `dev.jsonl`), never on
//! the held-out or opinion sets:
//!
//! ```sh
//! cargo run --release --example stance_fit
//! ```
//!
//! It reads every target once (the model's per-mention probabilities, the
//! lexicon's contributions, reported speech), then grid-searches
//! `learned_weight`, `lexicon_weight`, `neutral_margin`, `neutral_weight`
//! and `reported_weight` for macro-F1(FAVOR, AGAINST) (ties: accuracy, then the
//! smaller weights), for the combined engine and for the model alone; then
//! scales the chosen logits by the factor that minimises the negative log
//! likelihood (calibration: the argmax does not move). It prints the
//! settings, and last the manifest's `decision` block for them: the model's
//! `adapter.json` (`data/stance-minilm-newsmtsc/`) holds the chosen ones.

use std::path::PathBuf;

use anyhow::Context;
use article_analyzer::backend::spacy::SpacyRecognizer;
use article_analyzer::config::{ComponentSet, ModelConfig};
use article_analyzer::pipeline::{group_mentions, EntityRecognizer, StanceLabel, Target};
use article_analyzer::stance::eval::{load_set, Scores};
use article_analyzer::stance::learned::{
    Decision, DecisionSettings, LearnedConfig, LearnedStance, Mode, ModelPaths, SentenceReading,
};
use article_analyzer::stance::LexiconStance;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = ModelConfig {
        models_dir: std::env::var_os("ARTICLE_ANALYZER_MODELS").map(PathBuf::from),
        ..ModelConfig::default()
    };
    let recognizer = SpacyRecognizer::load(&config.pipeline_dir(), ComponentSet::Parser)
        .context("loading spaCy")?;
    let learned = LearnedStance::load(
        &ModelPaths::under(&config.models_root()),
        LexiconStance::embedded()?,
        Mode::Combined,
    )?;
    let mut readings: Vec<(Vec<SentenceReading>, StanceLabel)> = Vec::new();
    for set in ["real.jsonl", "dev.jsonl", "opinion_dev.jsonl"] {
        for item in load_set(&root.join("eval/stance").join(set))? {
            let doc = recognizer.recognize(&item.text)?;
            let entities = group_mentions(doc.sentences.iter().flat_map(|s| &s.mentions));
            let targets: Vec<Target> = item
                .targets
                .iter()
                .map(|(name, _)| Target::explicit(name, &entities, &item.text))
                .collect();
            let read = learned.readings(&doc, &item.text, &targets)?;
            for (r, (_, gold)) in read.into_iter().zip(&item.targets) {
                readings.push((r, *gold));
            }
        }
    }
    println!(
        "{} targets from real.jsonl, dev.jsonl and opinion_dev.jsonl",
        readings.len()
    );

    let mut block = Vec::new();
    for mode in [Mode::Combined, Mode::LearnedOnly] {
        let base = LearnedConfig::for_mode(mode, &Decision::default());
        let lexicon_weights: &[f32] = match mode {
            Mode::Combined => &[0.25, 0.5, 0.75, 1.0, 1.5, 2.0],
            Mode::LearnedOnly => &[0.0],
        };
        let mut best: Option<((f64, f64, f32), LearnedConfig)> = None;
        for &a in &[1.0f32, 2.0, 3.0, 4.0, 6.0, 8.0] {
            for &b in lexicon_weights {
                for m10 in -10..=20 {
                    for &n in &[0.0f32, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0] {
                        for &r in &[0.25f32, 0.5, 0.75, 1.0] {
                            let cfg = LearnedConfig {
                                decision: DecisionSettings {
                                    learned_weight: a,
                                    lexicon_weight: b,
                                    neutral_margin: m10 as f32 / 10.0,
                                    neutral_weight: n,
                                    reported_weight: r,
                                },
                                ..base.clone()
                            };
                            let scores = Scores::from_pairs(
                                readings.iter().map(|(rd, g)| (*g, cfg.decide(rd).best().0)),
                            );
                            let key = (
                                scores.macro_f1_favor_against(),
                                scores.accuracy(),
                                -(a + b + n),
                            );
                            if best.as_ref().map_or(true, |(k, _)| key > *k) {
                                best = Some((key, cfg));
                            }
                        }
                    }
                }
            }
        }
        let ((f1, acc, _), cfg) = best.expect("a grid");
        // Calibration: one factor on every logit, for the lowest NLL.
        let nll = |k: f32| -> f64 {
            let c = LearnedConfig {
                decision: scaled(&cfg.decision, k),
                ..cfg.clone()
            };
            readings
                .iter()
                .map(|(rd, g)| {
                    let p = c.decide(rd);
                    let q = match g {
                        StanceLabel::Favor => p.favor,
                        StanceLabel::Against => p.against,
                        StanceLabel::Neutral => p.neutral,
                    };
                    -(f64::from(q.max(1e-6))).ln()
                })
                .sum::<f64>()
                / readings.len() as f64
        };
        let k = (1..=40)
            .map(|i| i as f32 * 0.1)
            .min_by(|&x, &y| nll(x).total_cmp(&nll(y)))
            .unwrap();
        println!(
            "{mode:?}: macro-F1 {f1:.3}, accuracy {acc:.3}; learned_weight {:.2}, lexicon_weight {:.2}, \
             neutral_margin {:.2}, neutral_weight {:.2}, reported_weight {:.2}; calibration factor {k:.1} \
             (NLL {:.3} -> {:.3})",
            cfg.decision.learned_weight,
            cfg.decision.lexicon_weight,
            cfg.decision.neutral_margin,
            cfg.decision.neutral_weight,
            cfg.decision.reported_weight,
            nll(1.0),
            nll(k),
        );
        let key = match mode {
            Mode::Combined => "combined",
            Mode::LearnedOnly => "learned_only",
        };
        let fitted = scaled(&cfg.decision, k);
        block.push(format!(
            "    \"{key}\": {{\"learned_weight\": {:.2}, \"lexicon_weight\": {:.2}, \
             \"neutral_margin\": {:.2}, \"neutral_weight\": {:.2}, \"reported_weight\": {:.2}}}",
            fitted.learned_weight,
            fitted.lexicon_weight,
            fitted.neutral_margin,
            fitted.neutral_weight,
            fitted.reported_weight,
        ));
    }
    println!(
        "adapter.json:\n  \"decision\": {{\n{}\n  }}",
        block.join(",\n")
    );
    Ok(())
}

/// Every logit's weight and margin times `k` (a temperature); the
/// reported-speech weight is a weight inside the means and stays.
fn scaled(d: &DecisionSettings, k: f32) -> DecisionSettings {
    DecisionSettings {
        learned_weight: d.learned_weight * k,
        lexicon_weight: d.lexicon_weight * k,
        neutral_margin: d.neutral_margin * k,
        neutral_weight: d.neutral_weight * k,
        reported_weight: d.reported_weight,
    }
}
