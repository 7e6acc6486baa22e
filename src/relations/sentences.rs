//! The sentences of one article as the extractor reads them: each parsed
//! sentence's mentions as [`Item`]s (entities by referent, the caller's
//! topics), "we" and "I" resolved to the statement's issuer and speaker,
//! and the quotations that run over several sentences.

use std::collections::HashMap;

use crate::pipeline::{Recognized, Referent, RelationTarget, SentenceParse, Target};
use crate::text::TextSpan;

use super::clauses::{self, Item};
use super::{Holder, HOLDER_LABELS, MAX_SENTENCE_MENTIONS, MAX_SENTENCE_TOKENS};

/// A mention in one sentence, with what it stands for.
pub(super) struct Mentioned {
    pub span: TextSpan,
    pub target: RelationTarget,
}

impl Mentioned {
    /// A mention of referent `r`.
    fn of(span: TextSpan, r: &Referent) -> Mentioned {
        Mentioned {
            span,
            target: RelationTarget::Entity {
                entity_id: r.id.clone(),
                name: r.entity.canonical_text.clone(),
            },
        }
    }

    /// The holder it can be: an entity can, a topic cannot.
    pub fn holder(&self) -> Option<Holder> {
        match &self.target {
            RelationTarget::Entity { entity_id, name } => Some((entity_id.clone(), name.clone())),
            RelationTarget::Topic { .. } => None,
        }
    }
}

/// Quotations of the text as byte ranges (after the opening mark, at the
/// closing one): curly pairs, and straight double quotes taken in pairs.
pub(super) fn quotes(text: &str) -> Vec<(usize, usize)> {
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
pub(super) fn first_sentence_referents<'r>(
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
pub(super) fn speaker(referents: &[Referent], doc: &Recognized) -> Option<usize> {
    first_sentence_referents(referents, doc)
        .filter(|(_, r)| r.entity.label == "PERSON")
        .min_by_key(|(_, r)| r.entity.spans.first().map(|s| s.start_byte))
        .map(|(k, _)| k)
}

/// One parsed sentence with its mentions as items.
pub(super) struct Prepared<'a> {
    pub parse: SentenceParse<'a>,
    pub items: Vec<Item>,
    /// Beside `items`, one for one.
    pub mentioned: Vec<Mentioned>,
}

impl Prepared<'_> {
    /// "We" as the subject of a clause is the article's voice, "I" its
    /// speaker.
    pub(super) fn add_first_person(
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
            self.mentioned
                .push(Mentioned::of(self.parse.sentence().tokens[t].span, r));
        }
    }
}

/// The items of one sentence: its entity mentions (keyed by referent) and
/// the caller's topics found in it (keyed after the referents). `None`
/// without a parse.
pub(super) fn prepare<'a>(
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
        items.push(Item {
            tokens,
            head,
            can_hold: HOLDER_LABELS.contains(&m.label.as_str()),
            key,
        });
        mentioned.push(Mentioned::of(m.span, &referents[key]));
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
