//! The analysis pipeline: entities, then stance, as plain Rust.
//!
//! Models plug in through two traits, [`EntityRecognizer`] and
//! [`StanceClassifier`]; [`Pipeline::analyze`] runs them over one article and
//! hands each result to a sink as soon as it is ready, so a server can stream
//! it and a command-line tool can collect it. Nothing here knows about gRPC.

mod grouping;
mod memo;
mod referents;
mod syntax;
mod types;
pub mod windows;

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

pub use grouping::group_mentions;
pub(crate) use grouping::{key as mention_key, most_frequent};
pub use memo::DocumentMemo;
pub use referents::{referents, EntityId, Referent};
pub use syntax::SentenceParse;
pub use types::*;

use crate::relations::RelationExtractor;

/// Finds named entities and sentences in a text.
///
/// Implementations are synchronous and CPU-bound; callers run them off any
/// async runtime.
pub trait EntityRecognizer: Send + Sync {
    /// What is loaded, for `GetModels` and the `Started` event.
    fn model_info(&self) -> ModelInfo;
    /// Tokenizes, splits into sentences and finds entity mentions.
    fn recognize(&self, text: &str) -> Result<Recognized, AnalysisError>;

    /// [`EntityRecognizer::recognize`] for several texts at once, one result
    /// per text in order. Models that compute faster in batches (one matrix
    /// product over the tokens of every text) override it; the default
    /// runs the texts one by one.
    fn recognize_batch(&self, texts: &[&str]) -> Vec<Result<Recognized, AnalysisError>> {
        texts.iter().map(|text| self.recognize(text)).collect()
    }
}

/// The recognizer's result for one text, computed ahead (in a batch with
/// other texts) and handed to [`Pipeline::analyze_prepared`].
#[derive(Debug, Clone)]
pub struct Recognition {
    pub result: Result<Recognized, AnalysisError>,
    /// Time the whole batch took in the recognizer, milliseconds.
    pub ms: f64,
}

/// Decides the stance of a text toward its targets.
pub trait StanceClassifier: Send + Sync {
    fn model_info(&self) -> ModelInfo;

    /// Stances toward several targets, each handed to `decided` as soon as
    /// it is decided, in the order of `targets`; `decided` breaks to stop
    /// early (the result is then [`AnalysisError::Cancelled`]). Models that
    /// compute faster in batches share one forward pass over the evidence
    /// of every target here. `memo` is this document's: what the model
    /// keeps there, its later calls on the document may reuse.
    fn classify_all(
        &self,
        doc: &Recognized,
        text: &str,
        targets: &[Target],
        memo: &mut DocumentMemo,
        decided: &mut dyn FnMut(Stance) -> ControlFlow<()>,
    ) -> Result<(), AnalysisError>;

    /// Stance of `doc` toward one `target`, with the evidence for it.
    fn classify(
        &self,
        doc: &Recognized,
        text: &str,
        target: &Target,
    ) -> Result<Stance, AnalysisError> {
        let mut out = None;
        let mut memo = DocumentMemo::default();
        self.classify_all(
            doc,
            text,
            std::slice::from_ref(target),
            &mut memo,
            &mut |s| {
                out = Some(s);
                ControlFlow::Continue(())
            },
        )?;
        out.ok_or_else(|| AnalysisError::Model("the classifier decided no stance".into()))
    }

    /// The real-world target a mention names, when the classifier knows
    /// more than the recognizer ("Washington", "US" and "American" all name
    /// the United States). Automatic target selection and the referents of
    /// the `Entities` event merge entities that resolve to the same name.
    fn canonical_name(&self, _mention: &str) -> Option<CanonicalName> {
        None
    }

    /// The sentence model's probabilities for each mention of each query
    /// (`None` for a mention it could not read), for the holder-to-target
    /// relations. `None` when the classifier has no sentence model. `memo`
    /// is the document's, as for [`StanceClassifier::classify_all`].
    fn read_mentions(
        &self,
        _queries: &[MentionQuery],
        _memo: &mut DocumentMemo,
    ) -> Option<Result<Vec<Vec<Option<Probabilities>>>, AnalysisError>> {
        None
    }
}

/// Default number of automatic stance targets.
pub const DEFAULT_MAX_TARGETS: usize = 5;
/// Upper bound on stance targets per request, explicit or automatic.
pub const MAX_TARGETS_LIMIT: usize = 32;

/// Entity labels worth a stance: things that can be for or against something,
/// or be the object of an opinion. Dates and numbers are not. OntoNotes
/// labels (spaCy), then the CoNLL ones transformer NER models often use.
pub(crate) const STANCE_WORTHY_LABELS: &[&str] = &[
    "PERSON", "ORG", "GPE", "NORP", "LOC", "FAC", "PRODUCT", "EVENT", "LAW", "PER", "MISC",
];

/// A recognizer and an optional stance classifier, ready to analyze text.
#[derive(Clone)]
pub struct Pipeline {
    recognizer: Arc<dyn EntityRecognizer>,
    stance: Option<Arc<dyn StanceClassifier>>,
    relations: Option<Arc<RelationExtractor>>,
    labels: BTreeSet<String>,
    /// Whether the recognizer runs a dependency parser (a span field).
    parser: bool,
}

impl Pipeline {
    pub fn new(
        recognizer: Arc<dyn EntityRecognizer>,
        stance: Option<Arc<dyn StanceClassifier>>,
    ) -> Self {
        let info = recognizer.model_info();
        let parser = info.components.iter().any(|c| c == "parser");
        let labels = info.labels.into_iter().collect();
        Pipeline {
            recognizer,
            stance,
            relations: None,
            labels,
            parser,
        }
    }

    /// Adds the holder-to-target relations (they need the parser; without
    /// it there are none).
    pub fn with_relations(mut self, extractor: RelationExtractor) -> Self {
        self.relations = Some(Arc::new(extractor));
        self
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
        self.analyze_prepared(text, options, None, sink)
    }

    /// Runs the recognizer over several texts at once (see
    /// [`EntityRecognizer::recognize_batch`]), for [`Pipeline::analyze_prepared`].
    pub fn recognize_batch(&self, texts: &[&str]) -> Vec<Recognition> {
        let _span = tracing::info_span!(
            "ner",
            batched = true,
            documents = texts.len(),
            parser = self.parser
        )
        .entered();
        let t = Instant::now();
        let results = self.recognizer.recognize_batch(texts);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        results
            .into_iter()
            .map(|result| Recognition { result, ms })
            .collect()
    }

    /// [`Pipeline::analyze`], with the recognizer's result computed ahead
    /// when `recognized` is given (its `ner` timing is then the batch's
    /// and `total_ms` leaves it out).
    pub fn analyze_prepared(
        &self,
        text: &str,
        options: &AnalyzeOptions,
        recognized: Option<Recognition>,
        sink: &mut dyn FnMut(Event) -> ControlFlow<()>,
    ) -> Result<Summary, AnalysisError> {
        self.validate(options)?;
        let started = Instant::now();
        let mut timings = Vec::new();
        emit(sink, Event::Started(self.models()))?;

        let mut doc = match recognized {
            Some(r) => {
                timings.push(StageTiming {
                    stage: "ner".to_string(),
                    ms: r.ms,
                });
                r.result?
            }
            None => {
                // Tokenizer, NER and (when loaded) the parser: one span; the
                // text itself is never recorded, only sizes.
                let span = tracing::info_span!(
                    "ner",
                    text_bytes = text.len(),
                    parser = self.parser,
                    tokens = tracing::field::Empty,
                    sentences = tracing::field::Empty
                );
                let _entered = span.enter();
                let t = Instant::now();
                let doc = self.recognizer.recognize(text)?;
                timings.push(StageTiming::since("ner", t));
                span.record("tokens", doc.token_count);
                span.record("sentences", doc.sentences.len());
                doc
            }
        };

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

        let grouping = tracing::info_span!("grouping").entered();
        let t = Instant::now();
        let groups = group_mentions(doc.sentences.iter().flat_map(|s| &s.mentions));
        let resolve = |m: &str| self.stance.as_ref().and_then(|c| c.canonical_name(m));
        let referents = referents(&groups, &doc, &resolve);
        timings.push(StageTiming::since("grouping", t));
        drop(grouping);
        let entity_count = referents.len();
        emit(sink, Event::Entities(referents.clone()))?;

        let stance_span = tracing::info_span!(
            "stance",
            enabled = self.stance.is_some(),
            targets = tracing::field::Empty
        );
        let stance_entered = stance_span.enter();
        let t = Instant::now();
        let mut stance_count = 0;
        let mut targets = Vec::new();
        let mut ids = Vec::new();
        let mut memo = DocumentMemo::default();
        if let Some(classifier) = &self.stance {
            targets = select_targets(&options.stance, &groups, text, &|m| {
                classifier.canonical_name(m).map(|c| c.name)
            });
            ids = entity_ids(&targets, &referents);
            classifier.classify_all(&doc, text, &targets, &mut memo, &mut |mut stance| {
                stance.entity_id = ids.get(stance_count).cloned().flatten();
                stance_count += 1;
                sink(Event::Stance(stance))
            })?;
        }
        timings.push(StageTiming::since("stance", t));
        stance_span.record("targets", stance_count);
        drop(stance_entered);

        let mut relation_count = 0;
        if let Some(extractor) = self
            .relations
            .as_ref()
            .filter(|_| options.stance != StanceMode::Disabled)
        {
            let _span = tracing::info_span!("relations").entered();
            let t = Instant::now();
            let topics: Vec<Target> = targets
                .into_iter()
                .zip(ids)
                .filter(|(_, id)| id.is_none())
                .map(|(t, _)| t)
                .collect();
            let reader = self.stance.as_deref().map(|c| (c, &mut memo));
            let relations = extractor.extract(text, &doc, &referents, &topics, reader)?;
            relation_count = relations.len();
            timings.push(StageTiming::since("relations", t));
            emit(sink, Event::Relations(relations))?;
        }

        let summary = Summary {
            sentence_count: doc.sentences.len(),
            token_count: doc.token_count,
            mention_count,
            entity_count,
            stance_count,
            relation_count,
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

/// The referent each target is, if any: the one whose mention holds the
/// target's first span that lies inside an entity mention ("United States"
/// inside "the United States"; not "Cold War mindset" around "Cold War").
fn entity_ids(targets: &[Target], referents: &[Referent]) -> Vec<Option<EntityId>> {
    let mut mentions: Vec<(usize, usize, &EntityId)> = referents
        .iter()
        .flat_map(|r| {
            r.entity
                .spans
                .iter()
                .map(move |s| (s.start_byte, s.end_byte, &r.id))
        })
        .collect();
    mentions.sort();
    let container = |start: usize, end: usize| {
        let k = mentions.partition_point(|m| m.0 <= start);
        let (s, e, id) = *mentions.get(k.checked_sub(1)?)?;
        (s <= start && end <= e).then(|| id.clone())
    };
    targets
        .iter()
        .map(|t| {
            t.spans
                .iter()
                .find_map(|s| container(s.start_byte, s.end_byte))
        })
        .collect()
}

/// The targets to classify: the caller's, or the most salient entities.
fn select_targets(
    mode: &StanceMode,
    entities: &[Entity],
    text: &str,
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Vec<Target> {
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
            // Merge entities that name the same real-world target, keeping
            // the order of first mention.
            let mut targets: Vec<Target> = Vec::new();
            for entity in entities
                .iter()
                .filter(|e| STANCE_WORTHY_LABELS.contains(&e.label.as_str()))
            {
                let name = resolve(&entity.canonical_text)
                    .or_else(|| entity.texts.iter().find_map(|t| resolve(t)));
                let target = Target::from_entity(entity);
                match name {
                    Some(name) => match targets.iter_mut().find(|t| t.name == name) {
                        Some(existing) => existing.merge(target),
                        None => targets.push(Target { name, ..target }),
                    },
                    None => targets.push(target),
                }
            }
            // Most mentioned first; the earlier first mention breaks ties.
            targets.sort_by_key(|t| {
                (
                    std::cmp::Reverse(t.spans.len()),
                    t.spans.first().map(|s| s.start_byte),
                )
            });
            targets.truncate(n);
            // Like an explicit target, also wherever its name occurs.
            for target in &mut targets {
                target.add_name_occurrences(text);
            }
            targets
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::TextSpan;

    fn entity(text: &str, label: &str, at: usize, count: usize) -> Entity {
        let spans = (0..count)
            .map(|k| TextSpan {
                start_char: at + 100 * k,
                end_char: at + 100 * k + text.len(),
                start_byte: at + 100 * k,
                end_byte: at + 100 * k + text.len(),
            })
            .collect();
        Entity {
            canonical_text: text.into(),
            label: label.into(),
            mention_count: count,
            texts: vec![text.into(); count],
            spans,
        }
    }

    #[test]
    fn automatic_targets_merge_aliases_and_rank_by_mentions() {
        let entities = [
            entity("Russia", "GPE", 0, 2),
            entity("Moscow", "GPE", 10, 2),
            entity("Bob", "PERSON", 20, 3),
            entity("2022", "DATE", 30, 9),
        ];
        let resolve = |m: &str| match m {
            "Russia" | "Moscow" => Some("Russia".to_string()),
            _ => None,
        };
        let targets = select_targets(
            &StanceMode::Automatic { max_targets: 0 },
            &entities,
            "",
            &resolve,
        );
        let names: Vec<(&str, usize)> = targets
            .iter()
            .map(|t| (t.name.as_str(), t.spans.len()))
            .collect();
        // Dates are not stance targets; Russia + Moscow outrank Bob.
        assert_eq!(names, [("Russia", 4), ("Bob", 3)]);
    }

    #[test]
    fn an_automatic_target_is_also_found_where_the_recognizer_missed_its_name() {
        // The tag line's "Russia" was not recognized; "russia" is not a name.
        let text = "China Russia summit\n\nRussia and China met, russia.";
        let at = text.find("Russia and").unwrap();
        let entities = [entity("Russia", "GPE", at, 1)];
        let targets = select_targets(
            &StanceMode::Automatic { max_targets: 0 },
            &entities,
            text,
            &|_| None,
        );
        let starts: Vec<usize> = targets[0].spans.iter().map(|s| s.start_byte).collect();
        assert_eq!(starts, [text.find("Russia").unwrap(), at]);
    }

    #[test]
    fn automatic_targets_respect_the_limit() {
        let entities: Vec<Entity> = (0..10)
            .map(|i| entity(&format!("Org{i}"), "ORG", i * 7, 1))
            .collect();
        let targets = select_targets(
            &StanceMode::Automatic { max_targets: 3 },
            &entities,
            "",
            &|_| None,
        );
        assert_eq!(targets.len(), 3);
        assert_eq!(targets[0].name, "Org0");
    }
}
