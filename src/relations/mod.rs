//! Who stands where: holder-to-target relations from the dependency parse.
//!
//! The `Stance` stream is the article's own voice. This module finds the
//! stances the article *reports*: "Wang Yi denounced the United States",
//! "China firmly stands with Russia", "Zhao said the sanctions are
//! illegal". In each parsed sentence ([`clauses`]) a named holder is tied to
//! the mentions its verbs govern, and each link is read one of two ways:
//!
//! - **a predicate** from `data/relations/predicates.tsv` decides: "condemn"
//!   is AGAINST its object, "support" FAVOR, "express concern" AGAINST;
//!   harm nouns turn the side for their victims ("condemned the attack on
//!   Israel" is FAVOR Israel); a negation flips it;
//! - **a verb of saying** hands what is said to the sentence model (the
//!   learned stance encoder, through
//!   [`StanceClassifier::read_mentions`]): the mention's P(positive) −
//!   P(negative) in that sentence is the holder's view of it. Without a
//!   sentence model these links are not read.
//!
//! Each link gives a signed strength in [-1, 1] (±1 for a predicate). Per
//! (holder, target) the strengths are averaged over the article; a mean of
//! at least [`RelationConfig::threshold`] is FAVOR, at most its negative
//! AGAINST, and anything between is not reported. Every sentence is an
//! evidence item.
//!
//! With [`RelationConfig::verb_patterns`] only predicates count, with no
//! sentence model: the source-verb-target coding of event coders such as
//! PETRARCH, the baseline the evaluation compares with.
//!
//! This file holds the extractor (links to strengths, the model's reading,
//! the aggregation); beside it:
//!
//! - `sentences`: each parsed sentence's mentions as items, "we" and "I",
//!   quotations over several sentences;
//! - `clauses`: holders, their predicates and the slots those govern;
//! - `predicates`: the predicate file;
//! - [`render`]: the "who stands where" table and the Graphviz graph;
//! - [`eval`]: scoring on `eval/relations/`.

mod clauses;
pub mod eval;
mod predicates;
pub mod render;
mod sentences;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use crate::pipeline::{
    most_frequent, AnalysisError, DocumentMemo, EntityId, Evidence, MentionQuery, Probabilities,
    Recognized, Referent, Relation, RelationTarget, StanceClassifier, StanceLabel, Target,
};
use crate::text::TextSpan;

use clauses::{Link, Reading};
pub use predicates::PredicateError;
use predicates::Predicates;
use sentences::{first_sentence_referents, prepare, quotes, speaker, Prepared};

/// Labels of mentions that can hold a stance.
const HOLDER_LABELS: &[&str] = &["PERSON", "ORG", "GPE", "NORP", "PER"];

/// The extractor's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationConfig {
    /// Least mean strength reported as FAVOR (its negative: AGAINST).
    pub threshold: f32,
    /// Most sentences the sentence model reads for relations per article.
    pub max_sentences: usize,
    /// Most evidence items per relation.
    pub max_evidence: usize,
    /// Multiplies the sentence model's strength for what a holder says
    /// (P(positive) - P(negative) of the mention).
    pub said_weight: f32,
    /// Predicates only, no sentence model (the baseline).
    pub verb_patterns: bool,
}

impl Default for RelationConfig {
    fn default() -> Self {
        RelationConfig {
            threshold: DEFAULT_THRESHOLD,
            max_sentences: 64,
            max_evidence: 3,
            said_weight: DEFAULT_SAID_WEIGHT,
            verb_patterns: false,
        }
    }
}

// Chosen on `eval/relations/dev.jsonl` only (`cargo run --release --example
// relations_eval -- --sweep`): the development F1 is flat (0.37-0.39) over
// thresholds 0.1-0.7 and weights 0.25-1.0; these sit in the middle of it.
const DEFAULT_THRESHOLD: f32 = 0.3;
const DEFAULT_SAID_WEIGHT: f32 = 0.75;
/// Sentences longer than this many tokens are not read for relations: the
/// tree walks are quadratic in the sentence, and such a "sentence" is
/// usually a table or a list without punctuation.
pub const MAX_SENTENCE_TOKENS: usize = 200;
/// Mentions read per sentence, the first ones.
pub const MAX_SENTENCE_MENTIONS: usize = 40;

/// The relation extractor.
#[derive(Debug, Clone)]
pub struct RelationExtractor {
    predicates: Predicates,
    config: RelationConfig,
}

/// A link the sentence model has to read.
struct Said {
    sentence: usize,
    target: usize,
    holder: Holder,
    /// Where the holder is named (possibly in another sentence, for a
    /// quote that runs over several).
    holder_span: TextSpan,
    verb: String,
}

/// A holder: its entity id and name.
type Holder = (EntityId, String);

/// One (holder, target) pair and its sentences' strengths and evidence.
type Pair = (Holder, RelationTarget, Vec<(f32, Evidence)>);

/// One read link, before aggregation.
struct Found {
    holder: Holder,
    target: RelationTarget,
    strength: f32,
    evidence: Evidence,
}

impl RelationExtractor {
    pub fn embedded(config: RelationConfig) -> Result<RelationExtractor, PredicateError> {
        Ok(RelationExtractor {
            predicates: Predicates::embedded()?,
            config,
        })
    }

    pub fn config(&self) -> &RelationConfig {
        &self.config
    }

    /// The relations of one article. `topics` are the caller's explicit
    /// targets that are not entities; `reader` the sentence model, if any,
    /// with the document's memo (see [`DocumentMemo`]).
    pub fn extract(
        &self,
        text: &str,
        doc: &Recognized,
        referents: &[Referent],
        topics: &[Target],
        reader: Option<(&dyn StanceClassifier, &mut DocumentMemo)>,
    ) -> Result<Vec<Relation>, AnalysisError> {
        let by_start: HashMap<usize, usize> = referents
            .iter()
            .enumerate()
            .flat_map(|(k, r)| r.entity.spans.iter().map(move |s| (s.start_byte, k)))
            .collect();
        let mut sentences: Vec<Prepared> = doc
            .sentences
            .iter()
            .filter_map(|s| prepare(s, &by_start, referents, topics))
            .collect();
        let voice = self.voice(&sentences, referents, doc);
        let speaker = speaker(referents, doc);
        for s in &mut sentences {
            s.add_first_person(voice, speaker, referents);
        }

        let mut found: Vec<Found> = Vec::new();
        let mut said: Vec<Said> = Vec::new();
        for (k, s) in sentences.iter().enumerate() {
            for Link {
                holder,
                target,
                reading,
            } in clauses::links(&s.parse, &s.items, &self.predicates)
            {
                let (Some(h), t) = (s.mentioned[holder].holder(), &s.mentioned[target]) else {
                    continue;
                };
                match reading {
                    Reading::Cue { sign, note } => found.push(Found {
                        target: t.target.clone(),
                        strength: sign,
                        evidence: evidence(
                            s.parse.sentence(),
                            &[s.mentioned[holder].span, t.span],
                            sign,
                            format!("{} -> {}: {note}", h.1, t.target.name()),
                            None,
                        ),
                        holder: h,
                    }),
                    Reading::Said { verb } if !self.config.verb_patterns => said.push(Said {
                        sentence: k,
                        target,
                        holder: h,
                        holder_span: s.mentioned[holder].span,
                        verb,
                    }),
                    Reading::Said { .. } => {}
                }
            }
        }

        if !self.config.verb_patterns {
            said.extend(self.quoted(text, &sentences));
        }
        if let Some((reader, memo)) = reader.filter(|_| !said.is_empty()) {
            self.read_said(reader, memo, &sentences, &said, &mut found)?;
        }
        Ok(self.aggregate(found))
    }

    /// What a speaker says in a quote that runs over several sentences:
    /// every mention inside the quotation marks, outside the sentence that
    /// names the speaker (whose own parse already reads its part), is
    /// attributed to the speaker of the sentence where the quote closes
    /// ("..., Zhao said.") or, failing that, where it opens ("Zhao said:
    /// ...").
    fn quoted(&self, text: &str, sentences: &[Prepared]) -> Vec<Said> {
        let mut out = Vec::new();
        for (open, close) in quotes(text) {
            // The sentences are in text order: find the quote's by binary
            // search.
            let from = sentences.partition_point(|s| s.parse.sentence().span.end_byte <= open);
            let covered: Vec<usize> = (from..sentences.len())
                .take_while(|&k| sentences[k].parse.sentence().span.start_byte < close)
                .collect();
            if covered.len() < 2 {
                continue;
            }
            let (first, last) = (covered[0], covered[covered.len() - 1]);
            let outside_quote = |b: usize| b < open || b >= close;
            let speaker = [last, first].into_iter().find_map(|k| {
                let s = &sentences[k];
                clauses::speakers(&s.parse, &s.items, &self.predicates)
                    .into_iter()
                    .find(|(h, verb)| {
                        let byte = s.parse.sentence().tokens[*verb].span.start_byte;
                        outside_quote(byte)
                            && outside_quote(s.mentioned[*h].span.start_byte)
                            && s.mentioned[*h].holder().is_some()
                    })
                    .map(|(h, verb)| (k, h, s.parse.text(verb).to_lowercase()))
            });
            let Some((speaker_sentence, h, verb)) = speaker else {
                continue;
            };
            let holder_mention = &sentences[speaker_sentence].mentioned[h];
            let Some(holder) = holder_mention.holder() else {
                continue;
            };
            for &k in covered.iter().filter(|&&k| k != speaker_sentence) {
                let s = &sentences[k];
                for (t, m) in s.mentioned.iter().enumerate() {
                    let within = m.span.start_byte >= open && m.span.end_byte <= close;
                    let own = m.target.entity_id() == Some(&holder.0);
                    if within && !own {
                        out.push(Said {
                            sentence: k,
                            target: t,
                            holder: holder.clone(),
                            holder_span: holder_mention.span,
                            verb: verb.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Who "we" is: the government or organisation that is most often the
    /// named subject of a predicate (the issuer of a statement: "The United
    /// States condemns ..."); failing that, the most salient government or
    /// organisation of the first sentence (a statement's heading).
    fn voice(
        &self,
        sentences: &[Prepared],
        referents: &[Referent],
        doc: &Recognized,
    ) -> Option<usize> {
        // Most often; the first seen wins a tie.
        let most = most_frequent(sentences.iter().flat_map(|s| {
            clauses::predicate_holders(&s.parse, &s.items, &self.predicates)
                .into_iter()
                .map(|h| s.items[h].key)
                .filter(|&key| {
                    let label = referents.get(key).map(|r| r.entity.label.as_str());
                    matches!(label, Some("GPE" | "ORG"))
                })
        }));
        most.or_else(|| {
            first_sentence_referents(referents, doc)
                .filter(|(_, r)| matches!(r.entity.label.as_str(), "GPE" | "ORG"))
                .max_by(|a, b| a.1.salience.total_cmp(&b.1.salience))
                .map(|(k, _)| k)
        })
    }

    /// Reads what holders said about their targets with the sentence model:
    /// one query per sentence, the first `max_sentences` sentences.
    fn read_said(
        &self,
        reader: &dyn StanceClassifier,
        memo: &mut DocumentMemo,
        sentences: &[Prepared],
        said: &[Said],
        found: &mut Vec<Found>,
    ) -> Result<(), AnalysisError> {
        let range_of = |x: &Said| {
            let s = &sentences[x.sentence];
            let span = s.mentioned[x.target].span;
            let base = s.parse.sentence().span.start_byte;
            (span.start_byte - base, span.end_byte - base)
        };
        let mut queries: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
        for x in said {
            if queries.len() >= self.config.max_sentences && !queries.contains_key(&x.sentence) {
                continue;
            }
            let ranges = queries.entry(x.sentence).or_default();
            if !ranges.contains(&range_of(x)) {
                ranges.push(range_of(x));
            }
        }
        let batch: Vec<MentionQuery> = queries
            .iter()
            .map(|(k, ranges)| MentionQuery {
                text: &sentences[*k].parse.sentence().text,
                mentions: ranges.clone(),
            })
            .collect();
        let Some(read) = reader.read_mentions(&batch, memo) else {
            return Ok(());
        };
        let read = read?;
        let row: HashMap<usize, usize> = queries.keys().enumerate().map(|(q, k)| (*k, q)).collect();
        for x in said {
            let Some(&q) = row.get(&x.sentence) else {
                continue;
            };
            let Some(m) = queries[&x.sentence].iter().position(|r| *r == range_of(x)) else {
                continue;
            };
            let Some(Some(probs)) = read.get(q).and_then(|ms| ms.get(m)) else {
                continue;
            };
            let s = &sentences[x.sentence];
            let (h, t) = (&x.holder, &s.mentioned[x.target]);
            let strength = self.config.said_weight * (probs.favor - probs.against);
            found.push(Found {
                holder: h.clone(),
                target: t.target.clone(),
                strength,
                evidence: evidence(
                    s.parse.sentence(),
                    &[x.holder_span, t.span],
                    strength,
                    format!(
                        "{} -> {}: what '{}' reports; model: favor {:.2}, against {:.2}, neutral {:.2}",
                        h.1,
                        t.target.name(),
                        x.verb,
                        probs.favor,
                        probs.against,
                        probs.neutral
                    ),
                    Some(*probs),
                ),
            });
        }
        Ok(())
    }

    /// One relation per (holder, target): the mean strength, thresholded.
    fn aggregate(&self, found: Vec<Found>) -> Vec<Relation> {
        let mut groups: Vec<Pair> = Vec::new();
        let mut index: HashMap<(EntityId, RelationTarget), usize> = HashMap::new();
        for f in found {
            match index.entry((f.holder.0.clone(), f.target.clone())) {
                Entry::Occupied(at) => groups[*at.get()].2.push((f.strength, f.evidence)),
                Entry::Vacant(slot) => {
                    slot.insert(groups.len());
                    groups.push((f.holder, f.target, vec![(f.strength, f.evidence)]));
                }
            }
        }
        let mut out = Vec::new();
        for (holder, target, mut items) in groups {
            let mean = items.iter().map(|(s, _)| s).sum::<f32>() / items.len() as f32;
            let label = if mean >= self.config.threshold {
                StanceLabel::Favor
            } else if mean <= -self.config.threshold {
                StanceLabel::Against
            } else {
                continue;
            };
            items.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
            out.push(Relation {
                holder_id: holder.0,
                holder: holder.1,
                target,
                label,
                score: mean.abs().min(1.0),
                evidence: items
                    .into_iter()
                    .take(self.config.max_evidence)
                    .map(|(_, e)| e)
                    .collect(),
            });
        }
        out
    }
}

fn evidence(
    sentence: &crate::pipeline::Sentence,
    mentions: &[TextSpan],
    contribution: f32,
    reason: String,
    model: Option<Probabilities>,
) -> Evidence {
    Evidence {
        span: sentence.span,
        text: sentence.text.clone(),
        contribution,
        reason,
        mentions: mentions.to_vec(),
        model,
    }
}
