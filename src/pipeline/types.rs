//! The values that flow through the pipeline.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::referents::{EntityId, Referent};
use crate::text::TextSpan;

/// A loaded model, as reported by `GetModels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// What it does: `"ner"` or `"stance"`.
    pub task: String,
    pub name: String,
    pub version: String,
    /// Which runtime serves it: `"spacy-native"`, `"lexicon"`, `"rust-bert"`.
    pub backend: String,
    /// The labels it can produce.
    pub labels: Vec<String>,
    /// The pipeline components that run for this task.
    pub components: Vec<String>,
    /// sha256 of the model's own weights file, where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// What the model was trained on, where the project trained it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_data: Option<String>,
}

/// One occurrence of a named entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mention {
    pub text: String,
    pub label: String,
    #[serde(flatten)]
    pub span: TextSpan,
}

/// One token with what the model knows about it. Syntax fields are present
/// only when the components that produce them run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub text: String,
    #[serde(flatten)]
    pub span: TextSpan,
    /// Whether one space follows it.
    pub whitespace: bool,
    // The labels below are shared with the model's output (`Arc<str>`): a
    // token costs no allocation for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dep: Option<Arc<str>>,
    /// Index (in the document) of the syntactic head; a root is its own head.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lemma: Option<Arc<str>>,
}

/// One sentence and the entity mentions inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sentence {
    pub index: usize,
    #[serde(flatten)]
    pub span: TextSpan,
    pub text: String,
    pub mentions: Vec<Mention>,
    /// Index of the sentence's first token in the document.
    pub first_token: usize,
    /// The sentence's tokens (whitespace tokens included, as spaCy has them).
    pub tokens: Vec<TokenInfo>,
}

/// What an [`EntityRecognizer`](super::EntityRecognizer) found in a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recognized {
    /// Number of tokens, whitespace tokens included (as spaCy counts).
    pub token_count: usize,
    /// Sentences in text order; together they hold every mention.
    pub sentences: Vec<Sentence>,
}

/// Mentions of one real-world thing, grouped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entity {
    /// The longest (then most frequent) mention text.
    pub canonical_text: String,
    pub label: String,
    pub mention_count: usize,
    /// Every mention's text, in text order.
    pub texts: Vec<String>,
    pub spans: Vec<TextSpan>,
}

/// Something to decide a stance toward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The name reported back to the caller.
    pub name: String,
    /// Surface forms that refer to it (mention texts, or the caller's string).
    pub aliases: Vec<String>,
    /// Where the text mentions it.
    pub spans: Vec<TextSpan>,
}

impl Target {
    pub fn from_entity(entity: &Entity) -> Target {
        let mut aliases = entity.texts.clone();
        aliases.sort();
        aliases.dedup();
        Target {
            name: entity.canonical_text.clone(),
            aliases,
            spans: entity.spans.clone(),
        }
    }

    /// Adds another entity's mentions to this target.
    pub fn merge(&mut self, other: Target) {
        self.aliases.extend(other.aliases);
        self.aliases.sort();
        self.aliases.dedup();
        self.spans.extend(other.spans);
        self.spans.sort();
        self.spans.dedup();
    }

    /// Adds every whole-word occurrence of the target's name as written.
    /// An automatic target's name is a proper name, where case matters
    /// ("West" is not "west"); the recognizer misses names in headlines and
    /// tag lines, and a target should not read fewer sentences for having
    /// been chosen automatically.
    pub fn add_name_occurrences(&mut self, text: &str) {
        let found = find_word(text, &self.name);
        self.add_found(text, found);
    }

    /// Adds the byte ranges `found` in `text` as spans, keeping the spans
    /// sorted and distinct.
    fn add_found(&mut self, text: &str, found: Vec<(usize, usize)>) {
        let map = crate::text::OffsetMap::new(text);
        self.spans
            .extend(found.into_iter().map(|(start, end)| map.span(start, end)));
        self.spans.sort();
        self.spans.dedup();
    }

    /// A caller-given target: it is mentioned wherever an entity with a
    /// matching mention is, and wherever the string itself occurs, in any
    /// case ("nato" finds "NATO"), except that a name in capitals only (an
    /// acronym: "US", "UN") matches only in capitals, since its lower-case
    /// form is often an ordinary word ("us", "un").
    pub fn explicit(name: &str, entities: &[Entity], text: &str) -> Target {
        let acronym = is_acronym(name);
        let lower = name.to_lowercase();
        let same = |t: &str| {
            if acronym {
                t == name
            } else {
                t.to_lowercase() == lower
            }
        };
        let mut aliases = vec![name.to_string()];
        let mut spans = Vec::new();
        for entity in entities {
            if entity.texts.iter().any(|t| same(t)) || same(&entity.canonical_text) {
                aliases.extend(entity.texts.iter().cloned());
                spans.extend(entity.spans.iter().copied());
            }
        }
        aliases.sort();
        aliases.dedup();
        let mut target = Target {
            name: name.to_string(),
            aliases,
            spans,
        };
        let found = if acronym {
            find_word(text, name)
        } else {
            find_word_ci(text, name)
        };
        target.add_found(text, found);
        target
    }
}

/// Two or more letters, every letter a capital ("US", "U.S.", "EU").
fn is_acronym(name: &str) -> bool {
    let letters: Vec<char> = name.chars().filter(|c| c.is_alphabetic()).collect();
    letters.len() >= 2 && letters.iter().all(|c| c.is_uppercase())
}

/// Whole-word occurrences of `needle` in `hay`, case as given (byte ranges).
fn find_word(hay: &str, needle: &str) -> Vec<(usize, usize)> {
    if needle.is_empty() {
        return Vec::new();
    }
    let edge = |c: Option<char>| c.map_or(true, |c| !c.is_alphanumeric());
    hay.match_indices(needle)
        .filter(|(i, m)| {
            edge(hay[..*i].chars().next_back()) && edge(hay[i + m.len()..].chars().next())
        })
        .map(|(i, m)| (i, i + m.len()))
        .collect()
}

/// Case-insensitive whole-word occurrences of `needle` in `hay` (byte ranges).
fn find_word_ci(hay: &str, needle: &str) -> Vec<(usize, usize)> {
    let needle: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    if needle.is_empty() {
        return Vec::new();
    }
    let chars: Vec<(usize, char)> = hay.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let before_ok = i == 0 || !chars[i - 1].1.is_alphanumeric();
        if before_ok {
            let mut j = i;
            let mut k = 0;
            while k < needle.len() && j < chars.len() {
                let mut lower = chars[j].1.to_lowercase();
                if lower.next() != Some(needle[k]) || lower.next().is_some() {
                    break;
                }
                j += 1;
                k += 1;
            }
            let after_ok = j == chars.len() || !chars[j].1.is_alphanumeric();
            if k == needle.len() && after_ok {
                let end = chars.get(j).map_or(hay.len(), |c| c.0);
                out.push((chars[i].0, end));
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The stance labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StanceLabel {
    Favor,
    Against,
    Neutral,
}

impl StanceLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            StanceLabel::Favor => "FAVOR",
            StanceLabel::Against => "AGAINST",
            StanceLabel::Neutral => "NEUTRAL",
        }
    }
}

/// A probability for each stance label; they sum to one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Probabilities {
    pub favor: f32,
    pub against: f32,
    pub neutral: f32,
}

impl Probabilities {
    /// The most probable label and its probability (ties go to NEUTRAL, then
    /// FAVOR).
    pub fn best(&self) -> (StanceLabel, f32) {
        let mut best = (StanceLabel::Neutral, self.neutral);
        for (label, p) in [
            (StanceLabel::Favor, self.favor),
            (StanceLabel::Against, self.against),
        ] {
            if p > best.1 {
                best = (label, p);
            }
        }
        best
    }
}

/// One piece of text that moved a stance decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    #[serde(flatten)]
    pub span: TextSpan,
    pub text: String,
    /// Positive toward FAVOR, negative toward AGAINST.
    pub contribution: f32,
    pub reason: String,
    /// Where the sentence mentions the target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<TextSpan>,
    /// The learned model's probabilities for the sentence's mentions of the
    /// target; `None` when the lexicon engine decided alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Probabilities>,
}

/// The stance of the text toward one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stance {
    pub target: String,
    pub label: StanceLabel,
    /// Probability of `label`.
    pub score: f32,
    pub probabilities: Probabilities,
    pub evidence: Vec<Evidence>,
    /// The referent the target is, when it is an entity of the response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<EntityId>,
    /// The sentence model's reading of each mention it classified, in text
    /// order: how the article portrays the target, mention by mention.
    /// Empty when no sentence model ran (the lexicon engine).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<MentionSentiment>,
}

/// The sentence model's reading of one mention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MentionSentiment {
    #[serde(flatten)]
    pub span: TextSpan,
    pub label: StanceLabel,
    /// Probability of `label`.
    pub score: f32,
    pub probabilities: Probabilities,
}

impl MentionSentiment {
    pub fn new(span: TextSpan, probabilities: Probabilities) -> MentionSentiment {
        let (label, score) = probabilities.best();
        MentionSentiment {
            span,
            label,
            score,
            probabilities,
        }
    }
}

/// What a relation's target is: a referent of the response, or a topic the
/// caller named.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RelationTarget {
    Entity { entity_id: EntityId, name: String },
    Topic { name: String },
}

impl RelationTarget {
    pub fn name(&self) -> &str {
        match self {
            RelationTarget::Entity { name, .. } | RelationTarget::Topic { name } => name,
        }
    }

    pub fn entity_id(&self) -> Option<&EntityId> {
        match self {
            RelationTarget::Entity { entity_id, .. } => Some(entity_id),
            RelationTarget::Topic { .. } => None,
        }
    }
}

/// A named holder's stance toward a target, aggregated over the article:
/// "Wang Yi AGAINST the United States".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Relation {
    pub holder_id: EntityId,
    pub holder: String,
    pub target: RelationTarget,
    pub label: StanceLabel,
    /// Mean signed strength of the sentences, as a magnitude in [0, 1].
    pub score: f32,
    /// The sentences, strongest first; `contribution` is each one's signed
    /// strength (positive toward FAVOR).
    pub evidence: Vec<Evidence>,
}

/// One sentence and the mentions in it (byte ranges of `text`) that a
/// sentence model should read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MentionQuery<'a> {
    pub text: &'a str,
    pub mentions: Vec<(usize, usize)>,
}

/// How a mention text names a referent the classifier knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasKind {
    /// One of its names or acronyms ("US", "the United States").
    Name,
    /// Its demonym ("Chinese").
    Demonym,
    /// A place or building standing for it ("Beijing", "the Kremlin"),
    /// which may also mean the place itself.
    Metonym,
}

/// The referent a mention text stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalName {
    pub name: String,
    pub kind: AliasKind,
}

/// How long one stage took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTiming {
    pub stage: String,
    pub ms: f64,
}

impl StageTiming {
    pub fn since(stage: &str, start: Instant) -> Self {
        StageTiming {
            stage: stage.to_string(),
            ms: start.elapsed().as_secs_f64() * 1e3,
        }
    }
}

/// Counts and timings of a finished analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub sentence_count: usize,
    pub token_count: usize,
    pub mention_count: usize,
    pub entity_count: usize,
    pub stance_count: usize,
    pub relation_count: usize,
    pub timings: Vec<StageTiming>,
    pub total_ms: f64,
}

/// One step of an analysis, in the order [`Pipeline::analyze`](super::Pipeline::analyze)
/// emits them.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started(Vec<ModelInfo>),
    Sentence(Sentence),
    Entities(Vec<Referent>),
    Stance(Stance),
    /// Holder-to-target relations, after every stance.
    Relations(Vec<Relation>),
    Completed(Summary),
}

/// A whole analysis, collected from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Analysis {
    pub models: Vec<ModelInfo>,
    pub sentences: Vec<Sentence>,
    /// Every mention in text order.
    pub entities: Vec<Mention>,
    /// Mentions grouped by referent.
    pub groups: Vec<Referent>,
    pub stances: Vec<Stance>,
    pub relations: Vec<Relation>,
    pub completed: Option<Summary>,
}

impl Analysis {
    pub fn push(&mut self, event: Event) {
        match event {
            Event::Started(models) => self.models = models,
            Event::Sentence(s) => {
                self.entities.extend(s.mentions.iter().cloned());
                self.sentences.push(s);
            }
            Event::Entities(groups) => self.groups = groups,
            Event::Stance(s) => self.stances.push(s),
            Event::Relations(r) => self.relations = r,
            Event::Completed(summary) => self.completed = Some(summary),
        }
    }
}

/// What the caller wants from one analysis.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnalyzeOptions {
    /// Keep only these entity labels; empty keeps all.
    pub entity_labels: Vec<String>,
    pub stance: StanceMode,
}

/// Which targets get a stance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StanceMode {
    /// The most salient entities; 0 means the default number.
    Automatic { max_targets: usize },
    /// Exactly these targets.
    Explicit(Vec<String>),
    /// No stance.
    Disabled,
}

impl Default for StanceMode {
    fn default() -> Self {
        StanceMode::Automatic { max_targets: 0 }
    }
}

/// Why an analysis did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    /// The request is wrong; retrying it will not help.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The input is over a configured limit.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The consumer stopped listening (cancelled, disconnected, out of time).
    #[error("cancelled")]
    Cancelled,
    /// A model failed on this input.
    #[error("model failure: {0}")]
    Model(String),
    /// Every queue slot is taken; retrying later may succeed.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The caller's deadline passed (the text says where).
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(&'static str),
    /// The engine is shutting down and takes no new work.
    #[error("shutting down")]
    ShuttingDown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_search_is_case_insensitive_and_respects_word_edges() {
        let hay = "NATO and nato, but not NATOs; Nato.";
        let hits: Vec<&str> = find_word_ci(hay, "nato")
            .into_iter()
            .map(|(s, e)| &hay[s..e])
            .collect();
        assert_eq!(hits, ["NATO", "nato", "Nato"]);
    }

    #[test]
    fn an_explicit_acronym_matches_only_in_capitals() {
        let text = "The US told us that the EU and the UN agree; USA is not US.";
        let target = Target::explicit("US", &[], text);
        let found: Vec<&str> = target.spans.iter().map(|s| s.slice(text)).collect();
        assert_eq!(found, ["US", "US"]);
        // A name with lower-case letters still matches in any case.
        let target = Target::explicit("Nato", &[], "NATO and nato");
        assert_eq!(target.spans.len(), 2);
    }
}
