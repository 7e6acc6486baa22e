//! Holders, their predicates and what those predicates govern, in one
//! parsed sentence.
//!
//! A **holder** is a named mention that is the subject of a verb (`nsubj`),
//! the agent of a passive ("by X"), an apposition to a subject ("its foreign
//! minister, Wang Yi, said"), a conjunct of a holder ("China and Russia
//! oppose"), the owner of a subject that is not itself named ("China's
//! foreign ministry said"), the passive subject of a state ("X is concerned
//! by"), or the owner of an attitude noun ("the United States' rejection
//! of"). Its verbs are that verb and the verbs joined to it without their
//! own subject ("condemns X and calls on Y"; "wants to help Y"). ("We" and
//! "I" become items of the statement's issuer and speaker in the module
//! above.)
//!
//! Each target mention goes to the **nearest** holder verb above it in the
//! tree, so that in "Wang said China opposes the sanctions" the sanctions
//! are China's, not Wang's. The target must fill one of the predicate's
//! slots (its object, "stands with X", "concerned about X"), not an adjunct
//! ("isolate Moscow over Ukraine") or a clause of its own ("accuses X of
//! helping Y").

use std::ops::Range;

use crate::pipeline::SentenceParse;

use super::predicates::{NounKind, Predicates, VerbKind};

/// A mention in the sentence: an entity or a caller's topic.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub tokens: Range<usize>,
    pub head: usize,
    /// Whether it can hold a stance (a person, organisation, place or group).
    pub can_hold: bool,
    /// Items of the same referent share a key.
    pub key: usize,
}

/// How a holder's verb reads a target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reading {
    /// The predicate decides: `sign` is +1 (FAVOR) or -1 (AGAINST).
    Cue { sign: f32, note: String },
    /// What is said: the sentence model decides.
    Said { verb: String },
}

/// One holder-to-target link in the sentence.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Link {
    pub holder: usize,
    pub target: usize,
    pub reading: Reading,
}

/// A holder and one of its verbs.
struct HolderVerb {
    holder: usize,
    verb: usize,
    depth: usize,
}

/// Every link in the sentence.
pub(crate) fn links(p: &SentenceParse, items: &[Item], predicates: &Predicates) -> Vec<Link> {
    let holder_verbs = holder_verbs(p, items, predicates);
    let mut out = Vec::new();
    for (t, target) in items.iter().enumerate() {
        // The nearest holder verbs above the target, not inside a holder's
        // own phrase and not of the target's own referent.
        let candidates: Vec<&HolderVerb> = holder_verbs
            .iter()
            .filter(|hv| {
                let holder = &items[hv.holder];
                holder.key != target.key
                    && !p.dominates(holder.head, target.head)
                    && !p.dominates(target.head, holder.head)
                    && hv.verb != target.head
                    && p.dominates(hv.verb, target.head)
            })
            .collect();
        let Some(depth) = candidates.iter().map(|hv| hv.depth).max() else {
            continue;
        };
        for hv in candidates.into_iter().filter(|hv| hv.depth == depth) {
            if let Some(reading) = read(p, predicates, hv.verb, target.head) {
                out.push(Link {
                    holder: hv.holder,
                    target: t,
                    reading,
                });
            }
        }
    }
    out.dedup_by(|a, b| a.holder == b.holder && a.target == b.target);
    out
}

/// The items that are the subject of a predicate of the lexicon.
pub(crate) fn predicate_holders(
    p: &SentenceParse,
    items: &[Item],
    predicates: &Predicates,
) -> Vec<usize> {
    let mut out: Vec<usize> = holder_verbs(p, items, predicates)
        .into_iter()
        .filter(|hv| {
            !matches!(
                predicates.verb(&p.lemma(hv.verb)),
                None | Some((VerbKind::Copula, _))
            )
        })
        .map(|hv| hv.holder)
        .collect();
    out.dedup();
    out
}

/// The items that are the subject of a verb of saying, with the verb.
pub(crate) fn speakers(
    p: &SentenceParse,
    items: &[Item],
    predicates: &Predicates,
) -> Vec<(usize, usize)> {
    holder_verbs(p, items, predicates)
        .into_iter()
        .filter(|hv| {
            matches!(
                predicates.verb(&p.lemma(hv.verb)),
                Some((VerbKind::Speech, _))
            )
        })
        .map(|hv| (hv.holder, hv.verb))
        .collect()
}

/// Tokens "we" (plural: true) and "I" that are the subject of a clause.
pub(crate) fn first_person_subjects(p: &SentenceParse) -> Vec<(usize, bool)> {
    (0..p.len())
        .filter(|&i| p.dep(i) == "nsubj")
        .filter_map(|i| match p.text(i) {
            "we" | "We" => Some((i, true)),
            "I" => Some((i, false)),
            _ => None,
        })
        .collect()
}

/// The verbs each holder is the subject of.
fn holder_verbs(p: &SentenceParse, items: &[Item], predicates: &Predicates) -> Vec<HolderVerb> {
    let item_at = |tok: usize| items.iter().position(|i| i.tokens.contains(&tok));
    // The verb a phrase headed at `h` is the subject of.
    let verb_of = |h: usize| -> Option<usize> {
        let up = p.head(h);
        let state = |v: usize| {
            matches!(
                predicates.verb(p.text(v)),
                Some((VerbKind::State { .. }, _))
            )
        };
        match p.dep(h) {
            "nsubj" => Some(up),
            // "X is concerned by Y": the state's passive subject holds it.
            "nsubjpass" if state(up) => Some(up),
            "appos" if p.dep(up) == "nsubj" => Some(p.head(up)),
            "pobj" if p.dep(up) == "agent" => Some(p.head(up)),
            // "the United States' rejection of ...": the attitude noun is
            // the predicate.
            "poss"
                if matches!(
                    predicates.noun(&p.lemma(up)),
                    Some(NounKind::Favor | NounKind::Against)
                ) =>
            {
                Some(up)
            }
            "poss" | "compound" | "amod" | "nmod"
                if p.dep(up) == "nsubj" && item_at(up).is_none() =>
            {
                Some(p.head(up))
            }
            _ => None,
        }
    };
    let mut subjects: Vec<(usize, usize)> = Vec::new(); // (holder item, verb token)
    for (k, item) in items.iter().enumerate() {
        if !item.can_hold {
            continue;
        }
        // A conjunct holds with the first of its conjuncts: "China and
        // Russia oppose ...".
        let mut h = item.head;
        while p.dep(h) == "conj" && p.head(h) != h {
            h = p.head(h);
        }
        if let Some(v) = verb_of(h) {
            subjects.push((k, v));
        }
    }

    let mut out = Vec::new();
    for (holder, verb) in subjects {
        for v in shared_verbs(p, verb) {
            out.push(HolderVerb {
                holder,
                verb: v,
                depth: p.ancestors(v).len(),
            });
        }
    }
    out
}

/// `verb` and the verbs that share its subject: conjuncts without a
/// subject of their own, open complements ("to help"), recursively.
fn shared_verbs(p: &SentenceParse, verb: usize) -> Vec<usize> {
    let mut out = vec![verb];
    let mut k = 0;
    while k < out.len() && out.len() <= p.len() {
        let v = out[k];
        for c in p.children(v) {
            let joined = match p.dep(c) {
                "conj" => !p
                    .children(c)
                    .any(|g| matches!(p.dep(g), "nsubj" | "nsubjpass")),
                "xcomp" => true,
                _ => false,
            };
            // Without a tagger there is no part of speech; a conjunct or
            // complement of a verb is then taken as a verb.
            let verb_like = matches!(p.pos(c), "VERB" | "AUX" | "");
            if joined && verb_like && !out.contains(&c) {
                out.push(c);
            }
        }
        k += 1;
    }
    out
}

/// Dependencies that open a clause of their own.
const CLAUSES: &[&str] = &[
    "relcl",
    "advcl",
    "ccomp",
    "pcomp",
    "xcomp",
    "csubj",
    "parataxis",
];

/// Prepositions of a verb that introduce what it is about.
const SLOT_PREPOSITIONS: &[&str] = &[
    "on",
    "against",
    "with",
    "to",
    "toward",
    "towards",
    "behind",
    "by",
    "alongside",
    "of",
];

/// Whether the path from a target up to (not including) its verb stays in
/// the verb's object slots and out of clauses.
fn in_slot(p: &SentenceParse, path: &[usize]) -> bool {
    let Some(&top) = path.last() else {
        return false;
    };
    let slot = match p.dep(top) {
        "dobj" | "dative" | "iobj" | "attr" | "oprd" => true,
        "prep" => SLOT_PREPOSITIONS.contains(&p.lemma(top).as_str()),
        _ => false,
    };
    slot && !path.iter().any(|&t| CLAUSES.contains(&p.dep(t)))
}

/// The predicate at a holder's verb token: the verb itself, the state
/// adjective of a copula ("is grateful"), or an attitude noun held by its
/// possessor ("the United States' rejection of ...").
fn predicate_at(
    p: &SentenceParse,
    predicates: &Predicates,
    token: usize,
) -> Option<(VerbKind, String, usize)> {
    // A copula's adjective carries the state: "X is grateful for Y".
    let state = p
        .children(token)
        .filter(|&c| matches!(p.dep(c), "acomp" | "oprd"))
        .find_map(|c| match predicates.verb(p.text(c)) {
            Some((k @ VerbKind::State { .. }, l)) => Some((k, l, c)),
            _ => None,
        });
    match predicates.verb(&p.lemma(token)) {
        Some((VerbKind::Copula, _)) if state.is_some() => return state,
        Some((kind, lemma)) => return Some((kind, lemma, token)),
        None => {}
    }
    if let Some(kind) = predicates.noun(&p.lemma(token)) {
        let favor = match kind {
            NounKind::Favor => true,
            NounKind::Against => false,
            NounKind::Harm => return None,
        };
        return Some((VerbKind::Attitude { favor }, p.lemma(token), token));
    }
    state
}

/// The object of `verb` that is an attitude noun ("expressed support"),
/// with its sign.
fn object_attitude(
    p: &SentenceParse,
    predicates: &Predicates,
    verb: usize,
) -> Option<(usize, f32)> {
    p.children(verb)
        .filter(|&c| p.dep(c) == "dobj")
        .find_map(|c| match predicates.noun(&p.lemma(c)) {
            Some(NounKind::Favor) => Some((c, 1.0)),
            Some(NounKind::Against) => Some((c, -1.0)),
            _ => None,
        })
}

/// Prepositions after an attitude noun or state that say what it is about.
const ABOUT_PREPOSITIONS: &[&str] = &[
    "about", "over", "by", "for", "with", "of", "at", "to", "in", "toward", "towards", "against",
    "on",
];

/// How the verb at `verb` reads the target whose head is `target`.
fn read(p: &SentenceParse, predicates: &Predicates, verb: usize, target: usize) -> Option<Reading> {
    let (kind, lemma, verb) = predicate_at(p, predicates, verb)?;
    // From the target up to the predicate, which is not included.
    let path: Vec<usize> = std::iter::once(target)
        .chain(p.ancestors(target).into_iter().take_while(|&a| a != verb))
        .collect();
    if !p.dominates(verb, target) || path.contains(&verb) {
        return None;
    }
    let top = *path.last()?;
    let clause_free = !path.iter().any(|&t| CLAUSES.contains(&p.dep(t)));
    let about =
        |top: usize| p.dep(top) == "prep" && ABOUT_PREPOSITIONS.contains(&p.lemma(top).as_str());
    let negated = p.children(verb).any(|c| p.dep(c) == "neg");
    let flip = if negated { -1.0 } else { 1.0 };
    let cue = |sign: f32, how: String| {
        Some(harm_reading(
            p,
            predicates,
            &path,
            sign * flip,
            how,
            negated,
            false,
        ))
    };
    match kind {
        VerbKind::Favor | VerbKind::Against if in_slot(p, &path) => {
            let sign = if kind == VerbKind::Favor { 1.0 } else { -1.0 };
            cue(sign, format!("'{lemma}'"))
        }
        VerbKind::Favor | VerbKind::Against => None,
        VerbKind::Speech | VerbKind::Light => {
            // An attitude noun as the object makes it a cue: "reaffirmed
            // support for Y", "expressed concern over Y".
            if let Some((noun, sign)) = object_attitude(p, predicates, verb) {
                if path.contains(&noun) && clause_free {
                    return cue(sign, format!("'{lemma} {}'", p.lemma(noun)));
                }
                return None;
            }
            let said = kind == VerbKind::Speech
                && matches!(p.dep(top), "ccomp" | "xcomp" | "parataxis" | "dobj");
            said.then_some(Reading::Said { verb: lemma })
        }
        VerbKind::Position | VerbKind::Copula if clause_free => {
            let prep = path
                .iter()
                .copied()
                .find(|&a| p.head(a) == verb && p.dep(a) == "prep")?;
            let sign = match (kind, p.lemma(prep).as_str()) {
                (_, "with" | "behind") => 1.0,
                (VerbKind::Position, "by" | "alongside") => 1.0,
                (_, "against") => -1.0,
                _ => return None,
            };
            cue(sign, format!("'{lemma} {}'", p.lemma(prep)))
        }
        VerbKind::Position | VerbKind::Copula => None,
        VerbKind::State { favor } | VerbKind::Attitude { favor } if about(top) && clause_free => {
            cue(if favor { 1.0 } else { -1.0 }, format!("'{lemma}'"))
        }
        VerbKind::State { .. } | VerbKind::Attitude { .. } => None,
        VerbKind::Inflict if in_slot(p, &path) || (about(top) && clause_free) => {
            Some(harm_reading(
                p,
                predicates,
                &path,
                flip,
                format!("'{lemma}'"),
                negated,
                true,
            ))
        }
        VerbKind::Inflict => None,
    }
}

/// A predicate's reading of a target at the bottom of `path`: harm between
/// them turns the side for its victim ("condemns the attack on Y": FAVOR
/// Y), not for its doer ("Russia's attack").
fn harm_reading(
    p: &SentenceParse,
    predicates: &Predicates,
    path: &[usize],
    sign: f32,
    how: String,
    negated: bool,
    inflicted: bool,
) -> Reading {
    let mut side = 1.0;
    let mut role = "its object";
    // "imposes sanctions on Y": the harm is the object, Y its victim, even
    // where the parse hangs "on Y" from the verb.
    if inflicted
        && path.len() > 1
        && !path
            .iter()
            .any(|&t| predicates.noun(&p.lemma(t)) == Some(NounKind::Harm))
    {
        side = -1.0;
        role = "the victim of what the verb inflicts";
    }
    for w in path.windows(2) {
        let (below, above) = (w[0], w[1]);
        if predicates.noun(&p.lemma(above)) == Some(NounKind::Harm) {
            let doer = match p.dep(below) {
                "poss" | "compound" | "amod" => true,
                "prep" => p.lemma(below) == "by",
                _ => false,
            };
            if doer {
                role = "the doer of the harm it names";
            } else {
                side = -1.0;
                role = "the victim of the harm it names";
            }
            break;
        }
    }
    Reading::Cue {
        sign: sign * side,
        note: format!(
            "{how}{} (the target as {role})",
            if negated { ", negated" } else { "" }
        ),
    }
}
