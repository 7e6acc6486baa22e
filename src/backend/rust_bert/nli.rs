//! Zero-shot stance from an NLI cross-encoder.
//!
//! Each sentence that mentions a target is a premise; the hypotheses are the
//! configured templates ("The author supports {target}." ...). The model's
//! entailment logits for the three hypotheses, softmaxed, are that
//! sentence's FAVOR / AGAINST / NEUTRAL distribution; a target's stance is
//! the mean over its evidence sentences. Every pair of every target runs in
//! shared batches, and each target is reported as soon as its last pair is
//! scored.
//!
//! The entailment class is read from the model's own `id2label`: models
//! disagree on its position, and assuming it is the last logit (as some
//! zero-shot code does) silently inverts others.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Mutex;

use rust_bert::pipelines::common::TokenizerOption;
use rust_bert::pipelines::sequence_classification::{
    SequenceClassificationConfig, SequenceClassificationOption,
};
use rust_tokenizers::tokenizer::TruncationStrategy;
use rust_tokenizers::TokenizedInput;

use super::model_dir::{pipeline_config, ModelDir, Pieces, TransformerError};
use super::ner::{flat_f32, pad_rows};
use super::softmax;
use super::whitespace::FoldedText;
use crate::config::TransformerConfig;
use crate::pipeline::{
    AnalysisError, DocumentMemo, Evidence, ModelInfo, Probabilities, Recognized, Sentence, Stance,
    StanceClassifier, Target,
};

/// A loaded sequence-pair classifier trained on NLI.
pub struct NliModel {
    dir: ModelDir,
    tokenizer: TokenizerOption,
    /// `Send` but not `Sync` (libtorch modules): one forward pass at a time.
    model: Mutex<SequenceClassificationOption>,
    entailment: usize,
    max_len: usize,
    pad_id: i64,
}

impl NliModel {
    pub fn load(dir: &Path) -> Result<NliModel, TransformerError> {
        let dir = ModelDir::open(dir)?;
        let entailment = dir
            .label_id("entailment")
            .ok_or_else(|| TransformerError::Config {
                path: dir.config.clone(),
                message: format!(
                    "id2label has no \"entailment\" label (labels: {}); an NLI model needs one",
                    dir.labels.join(", ")
                ),
            })?;
        let tokenizer = dir.tokenizer()?;
        let config_file = dir.rust_bert_config()?;
        let config = pipeline_config!(&dir, &config_file, SequenceClassificationConfig {});
        let model =
            SequenceClassificationOption::new(&config).map_err(|e| dir.rust_bert_error(e))?;
        let pad_id = tokenizer.get_pad_id().unwrap_or(0);
        Ok(NliModel {
            max_len: dir.max_positions.min(512),
            dir,
            tokenizer,
            model: Mutex::new(model),
            entailment,
            pad_id,
        })
    }

    pub fn model_dir(&self) -> &ModelDir {
        &self.dir
    }

    /// Index of the entailment logit.
    pub fn entailment(&self) -> usize {
        self.entailment
    }

    /// The model's input for one pair (the premise truncated if too long).
    pub fn encode(&self, premise: &str, hypothesis: &str) -> TokenizedInput {
        self.encode_pairs(&[(premise, hypothesis)])
            .pop()
            .expect("one pair in, one input out")
    }

    /// The model's inputs for `pairs`, whitespace folded first for
    /// SentencePiece models as their Hugging Face tokenizers do.
    fn encode_pairs(&self, pairs: &[(&str, &str)]) -> Vec<TokenizedInput> {
        let truncation = &TruncationStrategy::OnlyFirst;
        if self.dir.pieces() != Pieces::SentencePiece {
            return self
                .tokenizer
                .encode_pair_list(pairs, self.max_len, truncation, 0);
        }
        let folded: Vec<(String, String)> = pairs
            .iter()
            .map(|(p, h)| (FoldedText::new(p).text, FoldedText::new(h).text))
            .collect();
        let pairs: Vec<(&str, &str)> = folded
            .iter()
            .map(|(p, h)| (p.as_str(), h.as_str()))
            .collect();
        self.tokenizer
            .encode_pair_list(&pairs, self.max_len, truncation, 0)
    }

    /// Raw logits for each (premise, hypothesis) pair, `batch` pairs per
    /// forward pass.
    pub fn logits(
        &self,
        pairs: &[(&str, &str)],
        batch: usize,
    ) -> Result<Vec<Vec<f32>>, AnalysisError> {
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(batch.max(1)) {
            out.extend(self.forward(chunk)?);
        }
        Ok(out)
    }

    fn forward(&self, pairs: &[(&str, &str)]) -> Result<Vec<Vec<f32>>, AnalysisError> {
        let inputs = self.encode_pairs(pairs);
        let rows: Vec<(Vec<i64>, Vec<i8>)> = inputs
            .into_iter()
            .map(|t| (t.token_ids, t.segment_ids))
            .collect();
        let (ids, mask, types) = pad_rows(&rows, self.pad_id);
        let token_types = self.dir.uses_token_types().then_some(&types);
        let model = self
            .model
            .lock()
            // The weights are never written: a call that panicked while
            // holding the lock (answered INTERNAL) leaves nothing half-done.
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let logits = tch::no_grad(|| {
            model.forward_t(Some(&ids), Some(&mask), token_types, None, None, false)
        });
        drop(model);
        let labels = self.dir.labels.len();
        let flat = flat_f32(&logits)?;
        if labels == 0 || flat.len() != rows.len() * labels {
            return Err(AnalysisError::Model(format!(
                "NLI logits of shape {:?} for {} pairs and {labels} labels",
                logits.size(),
                rows.len()
            )));
        }
        Ok(flat.chunks(labels).map(<[f32]>::to_vec).collect())
    }
}

/// Stance toward each target from an NLI model, with each evidence
/// sentence's distribution as its contribution.
pub struct NliStance {
    model: NliModel,
    /// FAVOR, AGAINST and NEUTRAL hypotheses, each with `{target}`.
    templates: [String; 3],
    max_sentences: usize,
    batch: usize,
}

impl NliStance {
    pub fn load(dir: &Path, config: &TransformerConfig) -> Result<NliStance, TransformerError> {
        let templates = [
            config.favor_template.clone(),
            config.against_template.clone(),
            config.neutral_template.clone(),
        ];
        if let Some(t) = templates.iter().find(|t| !t.contains("{target}")) {
            return Err(TransformerError::Config {
                path: dir.to_path_buf(),
                message: format!("hypothesis template {t:?} has no {{target}}"),
            });
        }
        Ok(NliStance {
            model: NliModel::load(dir)?,
            templates,
            max_sentences: config.max_sentences.max(1),
            batch: config.batch_size.max(1),
        })
    }

    pub fn model(&self) -> &NliModel {
        &self.model
    }

    /// The sentences that mention `target`, in text order, at most
    /// `max_sentences`.
    fn evidence<'d>(&self, doc: &'d Recognized, target: &Target) -> Vec<&'d Sentence> {
        doc.sentences
            .iter()
            .filter(|s| {
                target
                    .spans
                    .iter()
                    .any(|t| t.start_byte < s.span.end_byte && s.span.start_byte < t.end_byte)
            })
            .take(self.max_sentences)
            .collect()
    }

    fn hypotheses(&self, target: &Target) -> [String; 3] {
        self.templates
            .clone()
            .map(|t| t.replace("{target}", &target.name))
    }

    /// The stance from each evidence sentence's entailment logits for the
    /// FAVOR, AGAINST and NEUTRAL hypotheses.
    fn decide(&self, target: &Target, sentences: &[&Sentence], logits: &[Vec<f32>]) -> Stance {
        let e = self.model.entailment;
        let mut mean = [0f32; 3];
        let mut evidence = Vec::with_capacity(sentences.len());
        for (sentence, triple) in sentences.iter().zip(logits.chunks(3)) {
            let dist = softmax(&[triple[0][e], triple[1][e], triple[2][e]]);
            for (m, d) in mean.iter_mut().zip(&dist) {
                *m += d / sentences.len() as f32;
            }
            evidence.push(Evidence {
                span: sentence.span,
                text: sentence.text.clone(),
                contribution: dist[0] - dist[1],
                reason: format!(
                    "NLI entailment: supports {:.2}, opposes {:.2}, neutral {:.2}",
                    dist[0], dist[1], dist[2]
                ),
                mentions: Vec::new(),
                model: Some(Probabilities {
                    favor: dist[0],
                    against: dist[1],
                    neutral: dist[2],
                }),
            });
        }
        let probabilities = if sentences.is_empty() {
            Probabilities {
                favor: 0.0,
                against: 0.0,
                neutral: 1.0,
            }
        } else {
            Probabilities {
                favor: mean[0],
                against: mean[1],
                neutral: mean[2],
            }
        };
        let (label, score) = probabilities.best();
        Stance {
            target: target.name.clone(),
            label,
            score,
            probabilities,
            evidence,
            entity_id: None,
            mentions: Vec::new(),
        }
    }
}

impl StanceClassifier for NliStance {
    fn model_info(&self) -> ModelInfo {
        let dir = self.model.model_dir();
        ModelInfo {
            task: "stance".into(),
            name: dir.name.clone(),
            version: String::new(),
            backend: "rust-bert".into(),
            labels: vec!["FAVOR".into(), "AGAINST".into(), "NEUTRAL".into()],
            components: vec![format!("nli-zero-shot:{}", dir.model_type_name)],
            sha256: None,
            training_data: None,
        }
    }

    fn classify_all(
        &self,
        doc: &Recognized,
        _text: &str,
        targets: &[Target],
        _memo: &mut DocumentMemo,
        decided: &mut dyn FnMut(Stance) -> ControlFlow<()>,
    ) -> Result<(), AnalysisError> {
        // Every target's pairs, in target order, three per sentence.
        let plans: Vec<(Vec<&Sentence>, [String; 3])> = targets
            .iter()
            .map(|t| (self.evidence(doc, t), self.hypotheses(t)))
            .collect();
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let mut ends = VecDeque::new();
        for (sentences, hypotheses) in &plans {
            for s in sentences {
                for h in hypotheses {
                    pairs.push((s.text.as_str(), h.as_str()));
                }
            }
            ends.push_back(pairs.len());
        }

        let mut logits: Vec<Vec<f32>> = Vec::with_capacity(pairs.len());
        let mut next = 0;
        let mut report = |logits: &Vec<Vec<f32>>, next: &mut usize| -> Result<(), AnalysisError> {
            // Report every target whose pairs are all scored.
            while *next < targets.len() && ends[*next] <= logits.len() {
                let start = if *next == 0 { 0 } else { ends[*next - 1] };
                let stance = self.decide(
                    &targets[*next],
                    &plans[*next].0,
                    &logits[start..ends[*next]],
                );
                *next += 1;
                if decided(stance).is_break() {
                    return Err(AnalysisError::Cancelled);
                }
            }
            Ok(())
        };
        report(&logits, &mut next)?;
        for chunk in pairs.chunks(self.batch) {
            logits.extend(self.model.forward(chunk)?);
            report(&logits, &mut next)?;
        }
        Ok(())
    }
}
