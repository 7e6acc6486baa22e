//! The learned stance engine: a target-dependent sentence model trained on
//! NewsMTSC, read out per mention and aggregated over the article, with the
//! lexicon engine's cues combined in.
//!
//! For each target the lexicon engine finds the sentences that mention it
//! (names, aliases, gazetteer forms, surnames; the headline included) and
//! reads each: its cues, and whether the mention is someone else's reported
//! words. The first [`LearnedConfig::max_sentences`] of them go to the
//! [`encoder`], one pass per sentence shared by every target it mentions,
//! which gives P(negative, neutral, positive) for each mention. Per target:
//!
//! ```text
//! z = Σ wᵢ (P(positive)ᵢ − P(negative)ᵢ) / Σ wᵢ     wᵢ = reported_weight for reported speech, else 1
//! c = learned_weight · z + lexicon_weight · L         L = the lexicon engine's document score
//! N = Σ wᵢ P(neutral)ᵢ / Σ wᵢ                          (1 when no sentence was encoded)
//! P(FAVOR, AGAINST, NEUTRAL) = softmax(c, −c, neutral_margin + neutral_weight · N)
//! ```
//!
//! `N` lets the model's own reading say whether the article takes a side
//! at all: news statements name many targets neutrally, opinion pieces
//! rarely do, and a fixed margin has to choose between them. The numbers
//! are fitted per model and live in its manifest ([`Decision`]).
//!
//! With `lexicon_weight` 0 (mode [`Mode::LearnedOnly`]) it is the model
//! alone. Each sentence is an evidence item with its mention spans, the
//! model's probabilities and its share of `c`.

mod adapter;
mod bert;
pub mod encoder;
mod head;
mod simd;

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::pipeline::{
    AnalysisError, CanonicalName, DocumentMemo, Evidence, MentionQuery, MentionSentiment,
    ModelInfo, Probabilities, Recognized, Stance, StanceClassifier, Target,
};

pub use adapter::{Adapter, AdapterError, Decision, DecisionSettings, Manifest};
use encoder::{EncoderLimits, SentenceEncoder, SentenceInput};
pub use head::{Head, HeadKind, Pooling};

use super::{softmax, LexiconStance, SentenceScore};

/// Directory name of the learned model inside the models directory.
pub const MODEL_DIR: &str = "stance-minilm-newsmtsc";
/// Directory name of its base encoder inside the models directory.
pub const BASE_DIR: &str = "all-MiniLM-L6-v2";

/// Whether the lexicon engine's score joins the model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The model and the lexicon's cues (the default).
    Combined,
    /// The model alone (for evaluation).
    LearnedOnly,
}

/// The article-level decision's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedConfig {
    /// Most sentences classified per target (the first ones in text order,
    /// so the headline and lead are always among them). Bounds the cost on
    /// huge articles.
    pub max_sentences: usize,
    /// The weights, margins and reported-speech weight of the decision
    /// (module docs): the model's fitted ones for the mode.
    pub decision: DecisionSettings,
    /// Most evidence items per stance.
    pub max_evidence: usize,
}

impl LearnedConfig {
    /// The settings for `mode` from the model's fitted decision. Its
    /// weights, margin and reported-speech weight are chosen on the
    /// development sets (`eval/stance/real.jsonl`, `dev.jsonl`,
    /// `opinion_dev.jsonl`) by `cargo run --release --example stance_fit`;
    /// the held-out, opinion and sample sets are not used.
    pub fn for_mode(mode: Mode, decision: &Decision) -> LearnedConfig {
        let decision = match mode {
            Mode::Combined => decision.combined,
            // The model alone: whatever the manifest says, no lexicon.
            Mode::LearnedOnly => DecisionSettings {
                lexicon_weight: 0.0,
                ..decision.learned_only
            },
        };
        LearnedConfig {
            max_sentences: crate::config::DEFAULT_STANCE_MAX_SENTENCES,
            decision,
            max_evidence: 5,
        }
    }

    /// A sentence's weight in the model's means: 0 when it was not encoded.
    fn weight(&self, r: &SentenceReading) -> f32 {
        match r.model {
            None => 0.0,
            Some(_) if r.reported => self.decision.reported_weight,
            Some(_) => 1.0,
        }
    }

    /// The sum of the sentences' weights, the denominator of the model's
    /// means.
    fn total_weight(&self, readings: &[SentenceReading]) -> f32 {
        readings.iter().map(|r| self.weight(r)).sum()
    }

    /// Each sentence's share of the decision score `c` (their sum).
    pub fn shares(&self, readings: &[SentenceReading]) -> Vec<f32> {
        let d = &self.decision;
        let total = self.total_weight(readings);
        readings
            .iter()
            .map(|r| {
                let learned = match r.model {
                    Some(p) if total > 0.0 => {
                        d.learned_weight * self.weight(r) * (p.favor - p.against) / total
                    }
                    _ => 0.0,
                };
                learned + d.lexicon_weight * r.lexicon
            })
            .collect()
    }

    /// NEUTRAL's logit: `neutral_margin + neutral_weight · N`.
    pub fn neutral_logit(&self, readings: &[SentenceReading]) -> f32 {
        let total = self.total_weight(readings);
        let neutral = if total > 0.0 {
            readings
                .iter()
                .filter_map(|r| r.model.map(|p| self.weight(r) * p.neutral))
                .sum::<f32>()
                / total
        } else {
            1.0
        };
        self.decision.neutral_margin + self.decision.neutral_weight * neutral
    }

    /// FAVOR, AGAINST and NEUTRAL for one target's readings.
    pub fn decide(&self, readings: &[SentenceReading]) -> Probabilities {
        softmax(
            self.shares(readings).iter().sum(),
            self.neutral_logit(readings),
        )
    }
}

/// One sentence's reading for one target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SentenceReading {
    /// The model's mean probabilities over the target's mentions in it;
    /// `None` when it was not encoded (past the cap).
    pub model: Option<Probabilities>,
    /// Whether the mention is someone else's reported words.
    pub reported: bool,
    /// The lexicon engine's contribution.
    pub lexicon: f32,
}

fn readings_of(scored: &[SentenceScore], model: &[Option<Probabilities>]) -> Vec<SentenceReading> {
    scored
        .iter()
        .zip(model)
        .map(|(s, m)| SentenceReading {
            model: *m,
            reported: s.reported,
            lexicon: s.total,
        })
        .collect()
}

/// Where a learned model lives: its adapter directory and its base.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub adapter: PathBuf,
    pub base: PathBuf,
}

impl ModelPaths {
    /// The standard layout under a models directory.
    pub fn under(models: &Path) -> ModelPaths {
        ModelPaths {
            adapter: models.join(MODEL_DIR),
            base: models.join(BASE_DIR),
        }
    }

    /// Whether the adapter's manifest is there (the base is checked at load).
    pub fn present(&self) -> bool {
        self.adapter.join("adapter.json").is_file()
    }
}

/// The learned stance engine.
pub struct LearnedStance {
    encoder: SentenceEncoder,
    lexicon: LexiconStance,
    manifest: Manifest,
    config: LearnedConfig,
    mode: Mode,
}

/// What [`LearnedStance::read`] hands on per target: the target, its scored
/// sentences and the model's probabilities for each.
type ReadSink<'a> =
    dyn FnMut(&Target, &[SentenceScore], &[MentionReadings]) -> ControlFlow<()> + 'a;

/// The model's probabilities for each of a sentence's mentions of the
/// target, in the order of [`SentenceScore::mentions`]; empty when the
/// sentence was not encoded (past the cap).
type MentionReadings = Vec<Option<Probabilities>>;

/// The mean over a sentence's read mentions.
fn sentence_means(readings: &[MentionReadings]) -> Vec<Option<Probabilities>> {
    readings
        .iter()
        .map(|ms| {
            let read: Vec<Probabilities> = ms.iter().flatten().copied().collect();
            mean_probabilities(&read)
        })
        .collect()
}

/// One target's sentences and where their mentions went in the batch.
struct Plan {
    scored: Vec<SentenceScore>,
    /// Per encoded sentence (the first `max_sentences` of `scored`): its
    /// index in the document and the indices of the target's mentions among
    /// that sentence's encoder mentions.
    slots: Vec<(usize, Vec<usize>)>,
}

impl LearnedStance {
    /// Loads and checks the adapter and its base, builds the encoder.
    pub fn load(
        paths: &ModelPaths,
        lexicon: LexiconStance,
        mode: Mode,
    ) -> Result<LearnedStance, AdapterError> {
        let adapter = Adapter::load(&paths.adapter, &paths.base)?;
        let config = LearnedConfig::for_mode(mode, &adapter.manifest.decision);
        let encoder = SentenceEncoder::load(&paths.base, &adapter, EncoderLimits::default())?;
        Ok(LearnedStance {
            encoder,
            lexicon,
            manifest: adapter.manifest,
            config,
            mode,
        })
    }

    /// Replaces the decision settings (evaluation and fitting use this).
    pub fn with_config(mut self, config: LearnedConfig) -> Self {
        self.config = config;
        self
    }

    pub fn config(&self) -> &LearnedConfig {
        &self.config
    }

    /// The raw model for a set of sentences: see [`SentenceEncoder::classify`].
    pub fn encoder(&self) -> &SentenceEncoder {
        &self.encoder
    }

    /// Per-mention probabilities with the fitted temperature.
    fn probabilities(&self, logits: &[f32; 3]) -> Probabilities {
        let t = self.manifest.temperature;
        let max = logits.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = logits.iter().map(|l| ((l - max) / t).exp()).collect();
        let z: f32 = e.iter().sum();
        Probabilities {
            against: e[0] / z,
            neutral: e[1] / z,
            favor: e[2] / z,
        }
    }

    /// The stance toward one target from its scored sentences and the
    /// model's probabilities for each (`None`: not encoded).
    fn decide(
        &self,
        target: &Target,
        scored: &[SentenceScore],
        mentions: &[MentionReadings],
    ) -> Stance {
        let cfg = &self.config;
        let model = sentence_means(mentions);
        let model = model.as_slice();
        let readings = readings_of(scored, model);
        let shares = cfg.shares(&readings);
        let probabilities = softmax(shares.iter().sum(), cfg.neutral_logit(&readings));
        let (label, score) = probabilities.best();

        let mut evidence: Vec<(f32, usize, Evidence)> = scored
            .iter()
            .zip(&shares)
            .zip(model)
            .map(|((s, &contribution), p)| {
                let mut reason = s.mention_note.clone();
                if let Some(p) = p {
                    reason.push_str(&format!(
                        "; model: favor {:.2}, against {:.2}, neutral {:.2}",
                        p.favor, p.against, p.neutral
                    ));
                    if s.reported {
                        reason.push_str(&format!(
                            " (reported speech, weighs x{:.2})",
                            cfg.decision.reported_weight
                        ));
                    }
                }
                if cfg.decision.lexicon_weight != 0.0 && s.total != 0.0 {
                    let lex = s.evidence().reason;
                    if let Some((_, cues)) = lex.split_once(": ") {
                        reason.push_str(&format!("; lexicon: {cues}"));
                    }
                }
                let item = Evidence {
                    span: s.span,
                    text: s.text.clone(),
                    contribution,
                    reason,
                    mentions: s.mention_spans(),
                    model: *p,
                };
                (contribution.abs(), s.order, item)
            })
            .collect();
        evidence.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut portrayal: Vec<MentionSentiment> = scored
            .iter()
            .zip(mentions)
            .flat_map(|(s, ms)| s.mention_spans().into_iter().zip(ms.clone()))
            .filter_map(|(span, p)| Some(MentionSentiment::new(span, p?)))
            .collect();
        portrayal.sort_by_key(|m| m.span.start_byte);
        Stance {
            target: target.name.clone(),
            label,
            score,
            probabilities,
            evidence: evidence
                .into_iter()
                .take(cfg.max_evidence)
                .map(|(_, _, e)| e)
                .collect(),
            entity_id: None,
            mentions: portrayal,
        }
    }

    /// What the engine reads for each target, before any decision: for
    /// fitting and evaluating the decision settings without re-encoding.
    pub fn readings(
        &self,
        doc: &Recognized,
        text: &str,
        targets: &[Target],
    ) -> Result<Vec<Vec<SentenceReading>>, AnalysisError> {
        let mut out = Vec::with_capacity(targets.len());
        let mut memo = DocumentMemo::default();
        self.read(doc, text, targets, &mut memo, &mut |_, scored, mentions| {
            out.push(readings_of(scored, &sentence_means(mentions)));
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Reads every target's sentences first (cheap), so that a sentence
    /// naming several targets is encoded once with all their mentions; then
    /// encodes target by target, in order, and hands each target's sentences
    /// and model probabilities to `each` as soon as they are done.
    fn read(
        &self,
        doc: &Recognized,
        text: &str,
        targets: &[Target],
        memo: &mut DocumentMemo,
        each: &mut ReadSink,
    ) -> Result<(), AnalysisError> {
        // Sentence index -> (its text, mention ranges of every target, and
        // where each range is in that list: a sentence may hold thousands).
        type Input = (String, Vec<(usize, usize)>, HashMap<(usize, usize), usize>);
        let mut inputs: BTreeMap<usize, Input> = BTreeMap::new();
        let mut plans = Vec::with_capacity(targets.len());
        for target in targets {
            let scored = self.lexicon.score_sentences(doc, text, target);
            let mut slots = Vec::new();
            for s in scored.iter().take(self.config.max_sentences) {
                let (_, ranges, index) = inputs
                    .entry(s.order)
                    .or_insert_with(|| (s.text.clone(), Vec::new(), HashMap::new()));
                let ids = s
                    .mentions
                    .iter()
                    .map(|m| {
                        *index.entry(*m).or_insert_with(|| {
                            ranges.push(*m);
                            ranges.len() - 1
                        })
                    })
                    .collect();
                slots.push((s.order, ids));
            }
            plans.push(Plan { scored, slots });
        }

        let mut done: BTreeMap<usize, Vec<Option<[f32; 3]>>> = BTreeMap::new();
        for (target, plan) in targets.iter().zip(&plans) {
            let todo: Vec<usize> = plan
                .slots
                .iter()
                .map(|(order, _)| *order)
                .filter(|o| !done.contains_key(o))
                .collect();
            if !todo.is_empty() {
                let batch: Vec<SentenceInput> = todo
                    .iter()
                    .map(|o| {
                        let (t, m, _) = &inputs[o];
                        SentenceInput {
                            text: t,
                            mentions: m.clone(),
                        }
                    })
                    .collect();
                let logits = self
                    .encoder
                    .classify_with(&batch, memo.get_or_default())
                    .map_err(AnalysisError::Model)?;
                for (o, l) in todo.into_iter().zip(logits) {
                    done.insert(o, l);
                }
            }
            // Sentences past the cap keep their lexicon reading only.
            let mut model: Vec<MentionReadings> = plan
                .slots
                .iter()
                .map(|(order, ids)| {
                    ids.iter()
                        .map(|&k| done[order].get(k).copied().flatten())
                        .map(|l| l.map(|l| self.probabilities(&l)))
                        .collect()
                })
                .collect();
            model.resize(plan.scored.len(), Vec::new());
            if each(target, &plan.scored, &model).is_break() {
                return Err(AnalysisError::Cancelled);
            }
        }
        Ok(())
    }
}

impl StanceClassifier for LearnedStance {
    fn model_info(&self) -> ModelInfo {
        let mut components = vec![format!("learned:{}", self.manifest.base.name)];
        if self.mode == Mode::Combined {
            components.extend(["gazetteer", "stance-cues", "vader-sentiment"].map(String::from));
        }
        ModelInfo {
            task: "stance".into(),
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            backend: "native".into(),
            labels: vec!["FAVOR".into(), "AGAINST".into(), "NEUTRAL".into()],
            components,
            sha256: Some(self.manifest.adapter_sha256.clone()),
            training_data: Some(self.manifest.training.data.clone()),
        }
    }

    fn canonical_name(&self, mention: &str) -> Option<CanonicalName> {
        self.lexicon.canonical_name(mention)
    }

    fn classify_all(
        &self,
        doc: &Recognized,
        text: &str,
        targets: &[Target],
        memo: &mut DocumentMemo,
        decided: &mut dyn FnMut(Stance) -> ControlFlow<()>,
    ) -> Result<(), AnalysisError> {
        self.read(doc, text, targets, memo, &mut |target, scored, mentions| {
            decided(self.decide(target, scored, mentions))
        })
    }

    fn read_mentions(
        &self,
        queries: &[MentionQuery],
        memo: &mut DocumentMemo,
    ) -> Option<Result<Vec<Vec<Option<Probabilities>>>, AnalysisError>> {
        Some(
            self.encoder
                .classify_with(queries, memo.get_or_default())
                .map_err(AnalysisError::Model)
                .map(|sentences| {
                    sentences
                        .into_iter()
                        .map(|ms| {
                            ms.into_iter()
                                .map(|l| l.map(|l| self.probabilities(&l)))
                                .collect()
                        })
                        .collect()
                }),
        )
    }
}

fn mean_probabilities(ps: &[Probabilities]) -> Option<Probabilities> {
    if ps.is_empty() {
        return None;
    }
    let n = ps.len() as f32;
    Some(Probabilities {
        favor: ps.iter().map(|p| p.favor).sum::<f32>() / n,
        against: ps.iter().map(|p| p.against).sum::<f32>() / n,
        neutral: ps.iter().map(|p| p.neutral).sum::<f32>() / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::StanceLabel;

    fn reading(favor: f32, against: f32, reported: bool) -> SentenceReading {
        SentenceReading {
            model: Some(Probabilities {
                favor,
                against,
                neutral: 1.0 - favor - against,
            }),
            reported,
            lexicon: 0.0,
        }
    }

    fn config(neutral_weight: f32) -> LearnedConfig {
        LearnedConfig {
            decision: DecisionSettings {
                learned_weight: 2.0,
                lexicon_weight: 1.0,
                neutral_margin: -1.0,
                neutral_weight,
                reported_weight: 0.5,
            },
            ..LearnedConfig::for_mode(Mode::Combined, &Decision::default())
        }
    }

    #[test]
    fn neutral_logit_is_the_margin_plus_the_weighted_mean_p_neutral() {
        // P(neutral) 0.8 said by the author, 0.2 reported (weight 0.5):
        // N = (0.8 + 0.5 · 0.2) / 1.5 = 0.6.
        let readings = [reading(0.1, 0.1, false), reading(0.4, 0.4, true)];
        let logit = config(3.0).neutral_logit(&readings);
        assert!((logit - (-1.0 + 3.0 * 0.6)).abs() < 1e-6, "{logit}");
        // Nothing encoded: N is 1, no evidence of a side.
        let unread = [SentenceReading {
            model: None,
            reported: false,
            lexicon: 0.0,
        }];
        assert!((config(3.0).neutral_logit(&unread) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn a_lean_the_model_itself_reads_as_neutral_stays_neutral() {
        // z = 0.2, c = 0.4: without the neutral weight the margin (-1) lets
        // FAVOR win; with it, N = 0.7 makes NEUTRAL's logit 1.1 > 0.4.
        let readings = [reading(0.25, 0.05, false)];
        assert_eq!(config(0.0).decide(&readings).best().0, StanceLabel::Favor);
        assert_eq!(config(3.0).decide(&readings).best().0, StanceLabel::Neutral);
        // A clear side is not overruled: z = 0.8, c = 1.6 > -1 + 3 · 0.1.
        let clear = [reading(0.85, 0.05, false)];
        assert_eq!(config(3.0).decide(&clear).best().0, StanceLabel::Favor);
    }
}
