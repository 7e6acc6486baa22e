//! One entity per real-world referent, with an id and a salience.
//!
//! [`group_mentions`](super::group_mentions) groups mentions by their text
//! ("Wang Yi" and "Wang", "Russia" and "Russia's"). A referent goes one step
//! further with what the stance classifier knows of names
//! ([`StanceClassifier::canonical_name`](super::StanceClassifier::canonical_name)):
//! "China", "Chinese" and "Beijing" are one referent, as are "US", "the
//! United States" and "Washington". These are the same merges automatic
//! stance targets use, so a stance's `entity_id` points at the referent it
//! was decided for.
//!
//! A merge that may be wrong is marked, not hidden: a capital standing for
//! its government ("Beijing" for China) may also be the city, so such
//! mention texts are listed in [`Referent::uncertain_aliases`].
//!
//! **Salience** says how central a referent is to the article, in [0, 1],
//! summing to 1 over the article's referents. Each mention weighs
//! `position × role`:
//!
//! - `position = 1 + 1 / (1 + i)` for a mention in sentence `i` (the
//!   headline or first sentence weighs 2, the second 1.5, late ones near 1);
//! - `role = 1.5` when the mention is the subject of its clause (`nsubj`,
//!   `nsubjpass`, from the parse; 1 without a parse or in any other role).
//!
//! A referent's salience is its mentions' weight over the weight of every
//! mention. Dates, times, numbers, money, percentages and quantities weigh 0:
//! they are not what an article is about (unless nothing else is named, in
//! which case every referent weighs by its mentions alone).

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use super::grouping::{key, most_frequent};
use super::syntax::SentenceParse;
use super::types::{AliasKind, CanonicalName, Entity, Recognized};
use super::STANCE_WORTHY_LABELS;

/// An entity's id within one response: `e1`, `e2`, ... in order of first
/// mention.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EntityId(String);

impl EntityId {
    /// The id of the `k`-th referent (from 0).
    pub fn nth(k: usize) -> EntityId {
        EntityId(format!("e{}", k + 1))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every mention of one real-world referent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Referent {
    pub id: EntityId,
    /// The grouped mentions: `canonical_text` is the referent's name (the
    /// gazetteer's when it knows the referent), `label` the most frequent
    /// label, `texts` and `spans` every mention in text order.
    #[serde(flatten)]
    pub entity: Entity,
    /// The distinct mention texts, in order of first use.
    pub aliases: Vec<String>,
    /// The aliases that joined only as a capital or other place standing
    /// for a government: the merge may be wrong where the text means the
    /// place.
    pub uncertain_aliases: Vec<String>,
    pub salience: f32,
}

/// Labels that carry no salience: what an article is about is not a date.
const UNSALIENT_LABELS: &[&str] = &[
    "DATE", "TIME", "CARDINAL", "ORDINAL", "MONEY", "PERCENT", "QUANTITY",
];

/// Groups on their way to a referent: the resolved name, if any, and the
/// member groups, each with whether it joined uncertainly.
type Merging<'a> = Vec<(Option<String>, Vec<(&'a Entity, bool)>)>;

/// The referents of grouped mentions, `resolve` naming what a mention text
/// stands for.
pub fn referents(
    groups: &[Entity],
    doc: &Recognized,
    resolve: &dyn Fn(&str) -> Option<CanonicalName>,
) -> Vec<Referent> {
    // (name, groups, whether each group joined uncertainly)
    let mut merged: Merging = Vec::new();
    for group in groups {
        let resolved = STANCE_WORTHY_LABELS
            .contains(&group.label.as_str())
            .then(|| {
                resolve(&group.canonical_text)
                    .or_else(|| group.texts.iter().find_map(|t| resolve(t)))
            })
            .flatten();
        match resolved {
            Some(c) => {
                let uncertain = c.kind == AliasKind::Metonym;
                match merged
                    .iter_mut()
                    .find(|(name, _)| name.as_deref() == Some(c.name.as_str()))
                {
                    Some((_, members)) => members.push((group, uncertain)),
                    None => merged.push((Some(c.name), vec![(group, uncertain)])),
                }
            }
            None => merged.push((None, vec![(group, false)])),
        }
    }

    fold_surnames(&mut merged);

    let mut out: Vec<Referent> = merged
        .into_iter()
        .map(|(name, members)| combine(name, &members))
        .collect();
    out.sort_by_key(|r| r.entity.spans.first().map(|s| s.start_byte));
    for (k, r) in out.iter_mut().enumerate() {
        r.id = EntityId::nth(k);
    }
    assign_salience(&mut out, doc);
    out
}

/// A one-word name that the recognizer labelled a person or an
/// organisation joins the one multi-word person it can be the surname (or
/// first name) of: "Wang" (which the recognizer may take for an
/// organisation) joins "Wang Yi" when no other person is a Wang. Where the
/// label was not PERSON the merge is marked uncertain.
fn fold_surnames(merged: &mut Merging) {
    // First and last words of multi-word persons -> the entries holding
    // them. A one-word entry owns nothing, so folding never changes this.
    let mut owners: HashMap<String, Vec<usize>> = HashMap::new();
    for (j, (_, members)) in merged.iter().enumerate() {
        for (e, _) in members.iter().filter(|(e, _)| e.label == "PERSON") {
            let k = key(&e.canonical_text);
            let words: Vec<&str> = k.split(' ').collect();
            if let [first, .., last] = words.as_slice() {
                for w in [first, last] {
                    let entries = owners.entry(w.to_string()).or_default();
                    if !entries.contains(&j) {
                        entries.push(j);
                    }
                }
            }
        }
    }
    let mut moves: Vec<(usize, usize)> = Vec::new(); // (one-word entry, owner)
    for (k, (name, members)) in merged.iter().enumerate() {
        let single = name.is_none()
            && members.len() == 1
            && matches!(members[0].0.label.as_str(), "PERSON" | "ORG")
            && !members[0].0.canonical_text.contains(char::is_whitespace);
        if !single {
            continue;
        }
        if let Some([owner]) = owners
            .get(&key(&members[0].0.canonical_text))
            .map(Vec::as_slice)
        {
            moves.push((k, *owner));
        }
    }
    for &(k, owner) in &moves {
        let group = merged[k].1[0].0;
        merged[owner].1.push((group, group.label != "PERSON"));
    }
    for &(k, _) in moves.iter().rev() {
        merged.remove(k);
    }
}

fn combine(name: Option<String>, members: &[(&Entity, bool)]) -> Referent {
    // (span, text, label counted for the majority)
    let mut mentions: Vec<(crate::text::TextSpan, &str, Option<&str>)> = Vec::new();
    let mut uncertain_aliases = Vec::new();
    let any_certain = members.iter().any(|(_, u)| !u);
    for (group, uncertain) in members {
        for (span, text) in group.spans.iter().zip(&group.texts) {
            // An uncertain merge does not vote for the label.
            let vote = (!uncertain || !any_certain).then_some(group.label.as_str());
            mentions.push((*span, text, vote));
        }
        if *uncertain {
            for t in &group.texts {
                if !uncertain_aliases.contains(t) {
                    uncertain_aliases.push(t.clone());
                }
            }
        }
    }
    mentions.sort_by_key(|(s, _, _)| s.start_byte);
    let mut aliases: Vec<String> = Vec::new();
    for (_, text, _) in &mentions {
        if !aliases.iter().any(|a| a == text) {
            aliases.push(text.to_string());
        }
    }
    let label = most_frequent(mentions.iter().filter_map(|(_, _, label)| *label))
        .map_or(String::new(), str::to_string);
    let canonical_text = name.unwrap_or_else(|| members[0].0.canonical_text.clone());
    Referent {
        id: EntityId::nth(0),
        entity: Entity {
            canonical_text,
            label,
            mention_count: mentions.len(),
            texts: mentions.iter().map(|(_, t, _)| t.to_string()).collect(),
            spans: mentions.iter().map(|(s, _, _)| *s).collect(),
        },
        aliases,
        uncertain_aliases,
        salience: 0.0,
    }
}

/// Each mention's weight, by its start byte: `position × role`.
fn mention_weights(doc: &Recognized) -> HashMap<usize, f32> {
    let mut out = HashMap::new();
    for (i, sentence) in doc.sentences.iter().enumerate() {
        let position = 1.0 + 1.0 / (1.0 + i as f32);
        let parse = SentenceParse::new(sentence);
        for m in &sentence.mentions {
            let subject = parse.is_some_and(|p| {
                p.phrase_head(p.tokens_in(&m.span))
                    .is_some_and(|h| matches!(p.dep(h), "nsubj" | "nsubjpass"))
            });
            let role = if subject { 1.5 } else { 1.0 };
            out.insert(m.span.start_byte, position * role);
        }
    }
    out
}

fn assign_salience(referents: &mut [Referent], doc: &Recognized) {
    let weights = mention_weights(doc);
    let weight_of = |r: &Referent, count_all: bool| -> f32 {
        if !count_all && UNSALIENT_LABELS.contains(&r.entity.label.as_str()) {
            return 0.0;
        }
        r.entity
            .spans
            .iter()
            .map(|s| weights.get(&s.start_byte).copied().unwrap_or(1.0))
            .sum()
    };
    let mut raw: Vec<f32> = referents.iter().map(|r| weight_of(r, false)).collect();
    if raw.iter().sum::<f32>() <= 0.0 {
        raw = referents.iter().map(|r| weight_of(r, true)).collect();
    }
    let total: f32 = raw.iter().sum();
    for (r, w) in referents.iter_mut().zip(raw) {
        r.salience = if total > 0.0 { w / total } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::super::grouping::tests::mention;
    use super::*;
    use crate::pipeline::{group_mentions, Mention, Sentence};
    use crate::text::TextSpan;

    fn doc(sentences: Vec<Vec<Mention>>) -> Recognized {
        Recognized {
            token_count: 0,
            sentences: sentences
                .into_iter()
                .enumerate()
                .map(|(index, mentions)| Sentence {
                    index,
                    span: TextSpan::default(),
                    text: String::new(),
                    mentions,
                    first_token: 0,
                    tokens: Vec::new(),
                })
                .collect(),
        }
    }

    fn resolve(m: &str) -> Option<CanonicalName> {
        let (name, kind) = match m {
            "China" => ("China", AliasKind::Name),
            "Chinese" => ("China", AliasKind::Demonym),
            "Beijing" => ("China", AliasKind::Metonym),
            _ => return None,
        };
        Some(CanonicalName {
            name: name.into(),
            kind,
        })
    }

    #[test]
    fn aliases_of_one_referent_share_an_id_and_capitals_are_marked() {
        let d = doc(vec![
            vec![mention("China", "GPE", 0), mention("Wang Yi", "PERSON", 10)],
            vec![mention("Beijing", "GPE", 30), mention("2022", "DATE", 40)],
            vec![mention("Chinese", "NORP", 50)],
        ]);
        let groups = group_mentions(d.sentences.iter().flat_map(|s| &s.mentions));
        let rs = referents(&groups, &d, &resolve);
        let names: Vec<(&str, &str)> = rs
            .iter()
            .map(|r| (r.id.as_str(), r.entity.canonical_text.as_str()))
            .collect();
        assert_eq!(names, [("e1", "China"), ("e2", "Wang Yi"), ("e3", "2022")]);
        assert_eq!(rs[0].aliases, ["China", "Beijing", "Chinese"]);
        assert_eq!(rs[0].uncertain_aliases, ["Beijing"]);
        assert_eq!(rs[0].entity.label, "GPE");
        assert_eq!(rs[0].entity.mention_count, 3);
    }

    #[test]
    fn salience_sums_to_one_and_ignores_dates() {
        let d = doc(vec![
            vec![mention("China", "GPE", 0)],
            vec![
                mention("Wang Yi", "PERSON", 30),
                mention("2022", "DATE", 40),
            ],
            vec![mention("Wang Yi", "PERSON", 60)],
        ]);
        let groups = group_mentions(d.sentences.iter().flat_map(|s| &s.mentions));
        let rs = referents(&groups, &d, &|_| None);
        let sum: f32 = rs.iter().map(|r| r.salience).sum();
        assert!((sum - 1.0).abs() < 1e-6, "{sum}");
        let date = rs.iter().find(|r| r.entity.label == "DATE").unwrap();
        assert_eq!(date.salience, 0.0);
        // China: one headline mention (2.0); Wang Yi: 1.5 + 1.33.
        let china = rs[0].salience;
        let wang = rs[1].salience;
        assert!(wang > china && china > 0.3, "{china} {wang}");
    }

    #[test]
    fn an_article_of_dates_only_still_sums_to_one() {
        let d = doc(vec![vec![
            mention("2022", "DATE", 0),
            mention("May", "DATE", 9),
        ]]);
        let groups = group_mentions(d.sentences.iter().flat_map(|s| &s.mentions));
        let rs = referents(&groups, &d, &|_| None);
        let sum: f32 = rs.iter().map(|r| r.salience).sum();
        assert!((sum - 1.0).abs() < 1e-6);
    }
}
