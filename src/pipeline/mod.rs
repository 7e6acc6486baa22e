//! The analysis pipeline: entities, then stance, as plain Rust.
//!
//! Models plug in through two traits, [`EntityRecognizer`] and
//! [`StanceClassifier`]; [`Pipeline::analyze`] runs them over one article and
//! hands each result to a sink as soon as it is ready, so a server can stream
//! it and a command-line tool can collect it. Nothing here knows about gRPC.

mod grouping;
mod types;

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

pub use grouping::group_mentions;
pub use types::*;

/// Finds named entities and sentences in a text.
///
/// Implementations are synchronous and CPU-bound; callers run them off any
/// async runtime.
pub trait EntityRecognizer: Send + Sync {
    /// What is loaded, for `GetModels` and the `Started` event.
    fn model_info(&self) -> ModelInfo;
    /// Tokenizes, splits into sentences and finds entity mentions.
    fn recognize(&self, text: &str) -> Result<Recognized, AnalysisError>;
}

/// Decides the stance of a text toward one target.
pub trait StanceClassifier: Send + Sync {
    fn model_info(&self) -> ModelInfo;
    /// Stance of `doc` toward `target`, with the evidence for it.
    fn classify(
        &self,
        doc: &Recognized,
        text: &str,
        target: &Target,
    ) -> Result<Stance, AnalysisError>;
}

/// Default number of automatic stance targets.
pub const DEFAULT_MAX_TARGETS: usize = 5;
/// Upper bound on stance targets per request, explicit or automatic.
pub const MAX_TARGETS_LIMIT: usize = 32;

/// Entity labels worth a stance: things that can be for or against something,
/// or be the object of an opinion. Dates and numbers are not.
const STANCE_WORTHY_LABELS: &[&str] = &[
    "PERSON", "ORG", "GPE", "NORP", "LOC", "FAC", "PRODUCT", "EVENT", "LAW",
];

/// A recognizer and an optional stance classifier, ready to analyze text.
#[derive(Clone)]
pub struct Pipeline {
    recognizer: Arc<dyn EntityRecognizer>,
    stance: Option<Arc<dyn StanceClassifier>>,
    labels: BTreeSet<String>,
}

impl Pipeline {
    pub fn new(
        recognizer: Arc<dyn EntityRecognizer>,
        stance: Option<Arc<dyn StanceClassifier>>,
    ) -> Self {
        let labels = recognizer.model_info().labels.into_iter().collect();
        Pipeline {
            recognizer,
            stance,
            labels,
        }
    }

    /// Every loaded model.
    pub fn models(&self) -> Vec<ModelInfo> {
        let mut models = vec![self.recognizer.model_info()];
        if let Some(stance) = &self.stance {
            models.push(stance.model_info());
        }
        models
    }

    /// Checks options before any work is queued, so bad requests fail fast.
    pub fn validate(&self, options: &AnalyzeOptions) -> Result<(), AnalysisError> {
        for label in &options.entity_labels {
            if !self.labels.contains(label) {
                return Err(AnalysisError::InvalidArgument(format!(
                    "unknown entity label {label:?}; known labels: {}",
                    self.labels.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        match &options.stance {
            StanceMode::Explicit(targets) => {
                if targets.is_empty() {
                    return Err(AnalysisError::InvalidArgument(
                        "stance mode EXPLICIT needs at least one target".into(),
                    ));
                }
                if targets.len() > MAX_TARGETS_LIMIT {
                    return Err(AnalysisError::InvalidArgument(format!(
                        "{} stance targets given; the limit is {MAX_TARGETS_LIMIT}",
                        targets.len()
                    )));
                }
                if let Some(t) = targets.iter().find(|t| t.trim().is_empty()) {
                    return Err(AnalysisError::InvalidArgument(format!(
                        "stance target {t:?} is empty"
                    )));
                }
            }
            StanceMode::Automatic { max_targets } => {
                if *max_targets > MAX_TARGETS_LIMIT {
                    return Err(AnalysisError::InvalidArgument(format!(
                        "max_targets {max_targets} is over the limit of {MAX_TARGETS_LIMIT}"
                    )));
                }
            }
            StanceMode::Disabled => {}
        }
        Ok(())
    }

    /// Analyzes one text, handing every event to `sink` in order: `Started`,
    /// one `Sentence` per sentence, `Entities`, one `Stance` per target,
    /// `Completed`. A sink that returns `Break` stops the work (the caller went
    /// away or ran out of time) and the result is [`AnalysisError::Cancelled`].
    pub fn analyze(
        &self,
        text: &str,
        options: &AnalyzeOptions,
        sink: &mut dyn FnMut(Event) -> ControlFlow<()>,
    ) -> Result<Summary, AnalysisError> {
        self.validate(options)?;
        let started = Instant::now();
        let mut timings = Vec::new();
        emit(sink, Event::Started(self.models()))?;

        let t = Instant::now();
        let mut doc = self.recognizer.recognize(text)?;
        timings.push(StageTiming::since("ner", t));

        if !options.entity_labels.is_empty() {
            for sentence in &mut doc.sentences {
                sentence
                    .mentions
                    .retain(|m| options.entity_labels.contains(&m.label));
            }
        }
        let mention_count = doc.sentences.iter().map(|s| s.mentions.len()).sum();
        for sentence in &doc.sentences {
            emit(sink, Event::Sentence(sentence.clone()))?;
        }

        let t = Instant::now();
        let entities = group_mentions(doc.sentences.iter().flat_map(|s| &s.mentions));
        timings.push(StageTiming::since("grouping", t));
        let entity_count = entities.len();
        emit(sink, Event::Entities(entities.clone()))?;

        let t = Instant::now();
        let mut stance_count = 0;
        if let Some(classifier) = &self.stance {
            for target in select_targets(&options.stance, &entities, text) {
                let stance = classifier.classify(&doc, text, &target)?;
                stance_count += 1;
                emit(sink, Event::Stance(stance))?;
            }
        }
        timings.push(StageTiming::since("stance", t));

        let summary = Summary {
            sentence_count: doc.sentences.len(),
            token_count: doc.token_count,
            mention_count,
            entity_count,
            stance_count,
            timings,
            total_ms: started.elapsed().as_secs_f64() * 1e3,
        };
        emit(sink, Event::Completed(summary.clone()))?;
        Ok(summary)
    }

    /// Runs [`Pipeline::analyze`] and collects every event into one value.
    pub fn analyze_collect(
        &self,
        text: &str,
        options: &AnalyzeOptions,
    ) -> Result<Analysis, AnalysisError> {
        let mut analysis = Analysis::default();
        self.analyze(text, options, &mut |event| {
            analysis.push(event);
            ControlFlow::Continue(())
        })?;
        Ok(analysis)
    }
}

fn emit(sink: &mut dyn FnMut(Event) -> ControlFlow<()>, event: Event) -> Result<(), AnalysisError> {
    match sink(event) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(AnalysisError::Cancelled),
    }
}

/// The targets to classify: the caller's, or the most salient entities.
fn select_targets(mode: &StanceMode, entities: &[Entity], text: &str) -> Vec<Target> {
    match mode {
        StanceMode::Disabled => Vec::new(),
        StanceMode::Explicit(names) => names
            .iter()
            .map(|name| Target::explicit(name.trim(), entities, text))
            .collect(),
        StanceMode::Automatic { max_targets } => {
            let n = if *max_targets == 0 {
                DEFAULT_MAX_TARGETS
            } else {
                *max_targets
            };
            let mut ranked: Vec<&Entity> = entities
                .iter()
                .filter(|e| STANCE_WORTHY_LABELS.contains(&e.label.as_str()))
                .collect();
            // Most mentioned first; earlier first mention breaks ties.
            ranked.sort_by_key(|e| {
                (
                    std::cmp::Reverse(e.spans.len()),
                    e.spans.first().map(|s| s.start_byte),
                )
            });
            ranked
                .into_iter()
                .take(n)
                .map(Target::from_entity)
                .collect()
        }
    }
}
