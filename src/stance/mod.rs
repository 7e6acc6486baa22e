//! An explainable, data-driven stance engine: lexicons, a gazetteer and
//! token-distance scoping within sentences.
//!
//! For every sentence that mentions the target (by name, alias, gazetteer
//! form, surname, or one of the target's spans) the engine collects:
//!
//! - **stance cues** from `data/stance/cues.tsv`, each with the side the
//!   target must stand on ("condemn X": object; "X's invasion": subject), a
//!   signed weight and a reason. An attitude cue whose object is another cue
//!   composes with it ("condemned sanctions on X" is FAVOR X);
//! - **general sentiment** from VADER's lexicon, weighted by distance to the
//!   target and shared with closer entities;
//! - **modifiers**: negators flip what follows within a few words, contrast
//!   words weigh the clause after them more, and reported speech (quotes,
//!   "said", "according to") weighs less than the article's own voice.
//!
//! Contributions are summed per sentence (each sentence is an evidence item
//! with a readable reason), then over the document, and turned into
//! probabilities with a softmax that gives NEUTRAL a fixed margin.
//!
//! Scoping uses the dependency parse when the recognizer ran the parser
//! ([`syntax`]: a cue counts for the target only as its object or its doer,
//! and distances are tree edges); without a parse it falls back to sentence
//! and token distance, the rules of v0. [`eval`] scores the engine on the
//! annotated sets in `eval/stance/`.
//!
//! This file holds the engine itself ([`LexiconStance`]: the document score,
//! the decision and its evidence, the softmax); the steps live beside it:
//!
//! - `scoring`: one sentence's reading toward the target (mentions,
//!   modifiers, reported speech, sentiment) and the scoping rules;
//! - `cues`: matching the stance cues and composing attitude cues;
//! - `quotes`: which tokens stand inside quotation marks;
//! - `syntax`: dependency-parse scoping;
//! - `targets`: finding the target's mentions (names, aliases, gazetteer
//!   forms, surnames);
//! - `lexicon` and `tokens`: the data files and the engine's tokenizer;
//! - `config` and `error`: [`StanceConfig`] and [`StanceError`];
//! - [`learned`]: the MiniLM sentence model that reads the same sentences.

mod config;
mod cues;
mod error;
pub mod eval;
pub mod learned;
mod lexicon;
mod quotes;
mod scoring;
mod syntax;
mod targets;
mod tokens;

use std::ops::ControlFlow;
use std::path::Path;

use crate::pipeline::{
    AnalysisError, CanonicalName, DocumentMemo, Evidence, ModelInfo, Probabilities, Recognized,
    Stance, StanceClassifier, Target,
};

pub use config::StanceConfig;
pub use error::StanceError;
pub(crate) use scoring::SentenceScore;

use lexicon::Lexicon;
use scoring::SentenceScorer;
use targets::TargetMatcher;

/// The lexicon stance engine.
#[derive(Debug, Clone)]
pub struct LexiconStance {
    lexicon: Lexicon,
    config: StanceConfig,
}

impl LexiconStance {
    /// The lexicons and gazetteer shipped in `data/stance/`, embedded at
    /// compile time.
    pub fn embedded() -> Result<Self, StanceError> {
        Ok(LexiconStance {
            lexicon: Lexicon::embedded()?,
            config: StanceConfig::default(),
        })
    }

    /// The same files (`gazetteer.tsv`, `cues.tsv`, `modifiers.tsv`,
    /// `vader_lexicon.txt`) from a directory.
    pub fn from_dir(dir: &Path) -> Result<Self, StanceError> {
        Ok(LexiconStance {
            lexicon: Lexicon::from_dir(dir)?,
            config: StanceConfig::default(),
        })
    }

    /// Replaces the thresholds and weights; an invalid config (see
    /// [`StanceConfig::validate`]) is refused with the reason.
    pub fn with_config(mut self, config: StanceConfig) -> Result<Self, StanceError> {
        config.validate()?;
        self.config = config;
        Ok(self)
    }

    pub fn config(&self) -> &StanceConfig {
        &self.config
    }

    /// The stance toward `target`; never fails.
    pub fn stance(&self, doc: &Recognized, text: &str, target: &Target) -> Stance {
        self.decide(target, &self.score_sentences(doc, text, target))
    }

    /// Every sentence that mentions `target`, in text order, with the
    /// engine's reading of it (cues, sentiment, reported speech, where the
    /// mentions are). The learned model reads the same sentences.
    pub(crate) fn score_sentences(
        &self,
        doc: &Recognized,
        text: &str,
        target: &Target,
    ) -> Vec<SentenceScore> {
        let matcher = TargetMatcher::new(&self.lexicon, target, doc);
        let scorer = SentenceScorer {
            lex: &self.lexicon,
            cfg: &self.config,
            matcher: &matcher,
            target,
        };
        doc.sentences
            .iter()
            .enumerate()
            .filter_map(|(order, sentence)| {
                let mut s = scorer.score(sentence, text)?;
                s.order = order;
                Some(s)
            })
            .collect()
    }

    /// The document score of scored sentences: their summed contributions,
    /// length-normalised as configured.
    fn document_score(&self, scored: &[SentenceScore]) -> f32 {
        let n = scored.len().max(1) as f32;
        let sum: f32 = scored.iter().map(|s| s.total).sum();
        sum / n.powf(self.config.length_normalization)
    }

    fn decide(&self, target: &Target, scored: &[SentenceScore]) -> Stance {
        let cfg = &self.config;
        let score = self.document_score(scored);
        let probabilities = softmax(cfg.scale * score, cfg.neutral_margin);
        let (label, p) = probabilities.best();

        let mut strong: Vec<&SentenceScore> = scored
            .iter()
            .filter(|s| s.total.abs() >= cfg.min_evidence_contribution)
            .collect();
        strong.sort_by(|a, b| {
            b.total
                .abs()
                .total_cmp(&a.total.abs())
                .then(a.order.cmp(&b.order))
        });
        let mut evidence: Vec<Evidence> = strong
            .into_iter()
            .take(cfg.max_evidence)
            .map(SentenceScore::evidence)
            .collect();
        if evidence.is_empty() {
            // Nothing moved the decision: show where the target is mentioned.
            evidence = scored
                .iter()
                .take(cfg.max_evidence)
                .map(|s| {
                    let mut e = s.evidence();
                    e.reason = format!("{}; no stance cue or sentiment near it", s.mention_note);
                    e
                })
                .collect();
        }
        Stance {
            target: target.name.clone(),
            label,
            score: p,
            probabilities,
            evidence,
            entity_id: None,
            mentions: Vec::new(),
        }
    }
}

impl StanceClassifier for LexiconStance {
    fn model_info(&self) -> ModelInfo {
        ModelInfo {
            task: "stance".into(),
            name: "lexicon-stance".into(),
            version: "0.1.0".into(),
            backend: "lexicon".into(),
            labels: vec!["FAVOR".into(), "AGAINST".into(), "NEUTRAL".into()],
            components: vec![
                "gazetteer".into(),
                "stance-cues".into(),
                "vader-sentiment".into(),
            ],
            sha256: None,
            training_data: None,
        }
    }

    fn classify_all(
        &self,
        doc: &Recognized,
        text: &str,
        targets: &[Target],
        _memo: &mut DocumentMemo,
        decided: &mut dyn FnMut(Stance) -> ControlFlow<()>,
    ) -> Result<(), AnalysisError> {
        for target in targets {
            if decided(self.stance(doc, text, target)).is_break() {
                return Err(AnalysisError::Cancelled);
            }
        }
        Ok(())
    }

    fn canonical_name(&self, mention: &str) -> Option<CanonicalName> {
        self.lexicon.canonical_name(mention)
    }
}

/// FAVOR, AGAINST and NEUTRAL from logits `s`, `-s` and `margin`.
pub(crate) fn softmax(s: f32, margin: f32) -> Probabilities {
    let s = if s.is_finite() {
        s.clamp(-60.0, 60.0)
    } else {
        0.0
    };
    let logits = [s, -s, margin];
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let z: f32 = e.iter().sum();
    Probabilities {
        favor: e[0] / z,
        against: e[1] / z,
        neutral: e[2] / z,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_respects_the_margin() {
        for s in [-100.0, -2.0, 0.0, 0.5, 3.0, f32::NAN, f32::INFINITY] {
            let p = softmax(s, 1.0);
            assert!((p.favor + p.against + p.neutral - 1.0).abs() < 1e-5, "{s}");
        }
        assert_eq!(
            softmax(0.0, 1.0).best().0,
            crate::pipeline::StanceLabel::Neutral
        );
        assert_eq!(
            softmax(1.5, 1.0).best().0,
            crate::pipeline::StanceLabel::Favor
        );
        assert_eq!(
            softmax(-1.5, 1.0).best().0,
            crate::pipeline::StanceLabel::Against
        );
    }
}
