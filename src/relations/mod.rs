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

mod clauses;
pub mod eval;
mod predicates;
pub mod render;

use std::collections::{BTreeMap, HashMap};

use crate::pipeline::{
    AnalysisError, EntityId, Evidence, MentionQuery, Probabilities, Recognized, Referent, Relation,
    RelationTarget, SentenceParse, StanceClassifier, StanceLabel, Target,
};
use crate::text::TextSpan;

use clauses::{Item, Link, Reading};
pub use predicates::PredicateError;
use predicates::Predicates;

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

/// A mention in one sentence, with what it stands for.
struct Mentioned {
    span: TextSpan,
    holder: Option<Holder>,
    target: RelationTarget,
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

/// Quotations of the text as byte ranges (after the opening mark, at the
/// closing one): curly pairs, and straight double quotes taken in pairs.
fn quotes(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut curly: Option<usize> = None;
    let mut straight: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match c {
            '\u{201c}' => curly = Some(i + c.len_utf8()),
            '\u{201d}' => {
                if let Some(open) = curly.take() {
                    out.push((open, i));
                }
            }
            '"' => match straight.take() {
                Some(open) => out.push((open, i)),
                None => straight = Some(i + 1),
            },
            _ => {}
        }
    }
    out.sort();
    out
}

/// The referents (index, referent) mentioned in the document's first
/// sentence: a statement's heading and byline.
fn first_sentence_referents<'r>(
    referents: &'r [Referent],
    doc: &Recognized,
) -> impl Iterator<Item = (usize, &'r Referent)> {
    let first = doc.sentences.first().map(|s| s.span);
    referents.iter().enumerate().filter(move |(_, r)| {
        first.is_some_and(|f| {
            r.entity
                .spans
                .iter()
                .any(|s| s.start_byte >= f.start_byte && s.end_byte <= f.end_byte)
        })
    })
}

/// Who "I" is: the first person named in the first sentence (a
/// statement's byline: "Antony J. Blinken, Secretary of State").
fn speaker(referents: &[Referent], doc: &Recognized) -> Option<usize> {
    first_sentence_referents(referents, doc)
        .filter(|(_, r)| r.entity.label == "PERSON")
        .min_by_key(|(_, r)| r.entity.spans.first().map(|s| s.start_byte))
        .map(|(k, _)| k)
}

/// One parsed sentence with its mentions as items.
struct Prepared<'a> {
    parse: SentenceParse<'a>,
    items: Vec<Item>,
    mentioned: Vec<Mentioned>,
}

impl Prepared<'_> {
    /// "We" as the subject of a clause is the article's voice, "I" its
    /// speaker.
    fn add_first_person(
        &mut self,
        voice: Option<usize>,
        speaker: Option<usize>,
        referents: &[Referent],
    ) {
        for (t, plural) in clauses::first_person_subjects(&self.parse) {
            let Some(r) = (if plural { voice } else { speaker })
                .and_then(|k| referents.get(k).map(|r| (k, r)))
            else {
                continue;
            };
            let (key, r) = r;
            self.items.push(Item {
                tokens: t..t + 1,
                head: t,
                can_hold: true,
                key,
            });
            self.mentioned.push(Mentioned {
                span: self.parse.sentence().tokens[t].span,
                holder: Some((r.id.clone(), r.entity.canonical_text.clone())),
                target: RelationTarget::Entity {
                    entity_id: r.id.clone(),
                    name: r.entity.canonical_text.clone(),
                },
            });
        }
    }
}

/// The items of one sentence: its entity mentions (keyed by referent) and
/// the caller's topics found in it (keyed after the referents). `None`
/// without a parse.
fn prepare<'a>(
    sentence: &'a crate::pipeline::Sentence,
    by_start: &HashMap<usize, usize>,
    referents: &[Referent],
    topics: &[Target],
) -> Option<Prepared<'a>> {
    if sentence.tokens.len() > MAX_SENTENCE_TOKENS {
        return None;
    }
    let parse = SentenceParse::new(sentence)?;
    let mut items = Vec::new();
    let mut mentioned: Vec<Mentioned> = Vec::new();
    for m in sentence.mentions.iter().take(MAX_SENTENCE_MENTIONS) {
        let Some(&key) = by_start.get(&m.span.start_byte) else {
            continue;
        };
        if !crate::pipeline::STANCE_WORTHY_LABELS.contains(&m.label.as_str()) {
            continue;
        }
        let tokens = parse.tokens_in(&m.span);
        let Some(head) = parse.phrase_head(tokens.clone()) else {
            continue;
        };
        let r = &referents[key];
        items.push(Item {
            tokens,
            head,
            can_hold: HOLDER_LABELS.contains(&m.label.as_str()),
            key,
        });
        mentioned.push(Mentioned {
            span: m.span,
            holder: Some((r.id.clone(), r.entity.canonical_text.clone())),
            target: RelationTarget::Entity {
                entity_id: r.id.clone(),
                name: r.entity.canonical_text.clone(),
            },
        });
    }
    for (ti, topic) in topics.iter().enumerate() {
        if items.len() >= 2 * MAX_SENTENCE_MENTIONS {
            break;
        }
        // The spans are sorted: find the sentence's by binary search.
        let from = topic
            .spans
            .partition_point(|s| s.start_byte < sentence.span.start_byte);
        for span in topic.spans[from..]
            .iter()
            .take_while(|s| s.start_byte < sentence.span.end_byte)
            .filter(|s| s.end_byte <= sentence.span.end_byte)
        {
            // The caller's topic wins over an entity inside it ("the Cold
            // War mindset" over "Cold War"); one inside an entity yields.
            let overlapping: Vec<usize> = (0..mentioned.len())
                .filter(|&k| {
                    let m = mentioned[k].span;
                    m.start_byte < span.end_byte && span.start_byte < m.end_byte
                })
                .collect();
            let inside_entity = overlapping.iter().any(|&k| {
                let m = mentioned[k].span;
                m.start_byte <= span.start_byte && span.end_byte <= m.end_byte && m != *span
            });
            if inside_entity {
                continue;
            }
            for &k in overlapping.iter().rev() {
                mentioned.remove(k);
                items.remove(k);
            }
            let tokens = parse.tokens_in(span);
            let Some(head) = parse.phrase_head(tokens.clone()) else {
                continue;
            };
            items.push(Item {
                tokens,
                head,
                can_hold: false,
                key: referents.len() + ti,
            });
            mentioned.push(Mentioned {
                span: *span,
                holder: None,
                target: RelationTarget::Topic {
                    name: topic.name.clone(),
                },
            });
        }
    }
    Some(Prepared {
        parse,
        items,
        mentioned,
    })
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
    /// targets that are not entities; `reader` the sentence model, if any.
    pub fn extract(
        &self,
        text: &str,
        doc: &Recognized,
        referents: &[Referent],
        topics: &[Target],
        reader: Option<&dyn StanceClassifier>,
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
                let (Some(h), t) = (&s.mentioned[holder].holder, &s.mentioned[target]) else {
                    continue;
                };
                match reading {
                    Reading::Cue { sign, note } => found.push(Found {
                        holder: h.clone(),
                        target: t.target.clone(),
                        strength: sign,
                        evidence: evidence(
                            s.parse.sentence(),
                            &[s.mentioned[holder].span, t.span],
                            sign,
                            format!("{} -> {}: {note}", h.1, t.target.name()),
                            None,
                        ),
                    }),
                    Reading::Said { verb } if !self.config.verb_patterns => said.push(Said {
                        sentence: k,
                        target,
                        holder: h.clone(),
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
        if let Some(reader) = reader.filter(|_| !said.is_empty()) {
            self.read_said(reader, &sentences, &said, &mut found)?;
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
                            && s.mentioned[*h].holder.is_some()
                    })
                    .map(|(h, verb)| (k, h, s.parse.text(verb).to_lowercase()))
            });
            let Some((speaker_sentence, h, verb)) = speaker else {
                continue;
            };
            let holder_mention = &sentences[speaker_sentence].mentioned[h];
            let Some(holder) = holder_mention.holder.clone() else {
                continue;
            };
            for &k in covered.iter().filter(|&&k| k != speaker_sentence) {
                let s = &sentences[k];
                for (t, m) in s.mentioned.iter().enumerate() {
                    let within = m.span.start_byte >= open && m.span.end_byte <= close;
                    let own = m.holder.as_ref().is_some_and(|x| x.0 == holder.0);
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
        let mut counts: Vec<(usize, usize)> = Vec::new();
        for s in sentences {
            for h in clauses::predicate_holders(&s.parse, &s.items, &self.predicates) {
                let key = s.items[h].key;
                let label = referents.get(key).map(|r| r.entity.label.as_str());
                if !matches!(label, Some("GPE" | "ORG")) {
                    continue;
                }
                match counts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((key, 1)),
                }
            }
        }
        // Most often; the first seen wins a tie.
        let most = counts
            .iter()
            .fold(None::<(usize, usize)>, |best, &(k, n)| match best {
                Some((_, bn)) if bn >= n => best,
                _ => Some((k, n)),
            })
            .map(|(k, _)| k);
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
        let Some(read) = reader.read_mentions(&batch) else {
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
        for f in found {
            match groups
                .iter_mut()
                .find(|(h, t, _)| h.0 == f.holder.0 && *t == f.target)
            {
                Some((_, _, items)) => items.push((f.strength, f.evidence)),
                None => groups.push((f.holder, f.target, vec![(f.strength, f.evidence)])),
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
