//! The predicate lexicon: `data/relations/predicates.tsv`.

use std::collections::HashMap;

/// What a verb says about its subject's attitude to what it governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerbKind {
    /// "X supports Y".
    Favor,
    /// "X condemns Y".
    Against,
    /// "X said ...": the sentence model reads what is said.
    Speech,
    /// "X expressed ...": the object noun decides.
    Light,
    /// "X stands with / against Y": the preposition decides.
    Position,
    /// "X is grateful for Y" (FAVOR) or "X is concerned about Y"
    /// (AGAINST): a state of mind of the subject.
    State { favor: bool },
    /// "X imposed sanctions on Y": the object is a harm done to Y.
    Inflict,
    /// "X is against Y": a copula whose preposition decides.
    Copula,
    /// An attitude noun held by its possessor: "X's support for Y". Not in
    /// the file as a verb; the nouns of kind favor-noun / against-noun.
    Attitude { favor: bool },
}

/// What a noun adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NounKind {
    /// The object of a light verb: "support", "solidarity".
    Favor,
    /// The object of a light verb: "concern", "condemnation".
    Against,
    /// Harm done to whom a preposition attaches: "the attack on Y".
    Harm,
}

/// Why the predicate file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredicateError {
    #[error("data/relations/predicates.tsv line {line}: {problem}")]
    Line { line: usize, problem: String },
}

#[derive(Debug, Clone)]
pub(crate) struct Predicates {
    verbs: HashMap<String, VerbKind>,
    nouns: HashMap<String, NounKind>,
}

const EMBEDDED: &str = include_str!("../../data/relations/predicates.tsv");

impl Predicates {
    pub fn embedded() -> Result<Predicates, PredicateError> {
        Predicates::parse(EMBEDDED)
    }

    fn parse(text: &str) -> Result<Predicates, PredicateError> {
        let mut verbs = HashMap::new();
        let mut nouns = HashMap::new();
        for (k, raw) in text.lines().enumerate() {
            let line = raw.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |problem: String| PredicateError::Line {
                line: k + 1,
                problem,
            };
            let (lemma, kind) = line
                .split_once('\t')
                .ok_or_else(|| err(format!("{line:?} is not `lemma<TAB>kind`")))?;
            if lemma.is_empty() || lemma.chars().any(char::is_uppercase) {
                return Err(err(format!("lemma {lemma:?} must be non-empty lower case")));
            }
            let old = match kind {
                "favor" => verbs.insert(lemma.to_string(), VerbKind::Favor).is_some(),
                "against" => verbs.insert(lemma.to_string(), VerbKind::Against).is_some(),
                "speech" => verbs.insert(lemma.to_string(), VerbKind::Speech).is_some(),
                "light" => verbs.insert(lemma.to_string(), VerbKind::Light).is_some(),
                "position" => verbs
                    .insert(lemma.to_string(), VerbKind::Position)
                    .is_some(),
                "inflict" => verbs.insert(lemma.to_string(), VerbKind::Inflict).is_some(),
                "copula" => verbs.insert(lemma.to_string(), VerbKind::Copula).is_some(),
                "favor-state" => verbs
                    .insert(lemma.to_string(), VerbKind::State { favor: true })
                    .is_some(),
                "against-state" => verbs
                    .insert(lemma.to_string(), VerbKind::State { favor: false })
                    .is_some(),
                "favor-noun" => nouns.insert(lemma.to_string(), NounKind::Favor).is_some(),
                "against-noun" => nouns.insert(lemma.to_string(), NounKind::Against).is_some(),
                "harm" => nouns.insert(lemma.to_string(), NounKind::Harm).is_some(),
                other => return Err(err(format!("unknown kind {other:?}"))),
            };
            if old {
                return Err(err(format!(
                    "{lemma:?} has two kinds of the same part of speech"
                )));
            }
        }
        Ok(Predicates { verbs, nouns })
    }

    /// The verb's kind and the lemma it was found under. `word` is a
    /// lemma or an inflected form ("condemns", "denounced", "standing"):
    /// the pipeline runs without the lemmatizer by default, so the regular
    /// English inflections are undone here.
    pub fn verb(&self, word: &str) -> Option<(VerbKind, String)> {
        base_forms(word)
            .into_iter()
            .find_map(|b| self.verbs.get(&b).map(|k| (*k, b)))
    }

    /// The noun's kind, for a lemma or a regular plural.
    pub fn noun(&self, word: &str) -> Option<NounKind> {
        base_forms(word)
            .into_iter()
            .find_map(|b| self.nouns.get(&b).copied())
    }
}

/// `word` in lower case, then the stems its regular inflections could come
/// from: "-s", "-es", "-ies", "-ed", "-d", "-ied", "-ing", doubled final
/// consonants ("stopped"), a dropped final "e" ("denouncing").
fn base_forms(word: &str) -> Vec<String> {
    let w = word.to_lowercase();
    let mut out = vec![w.clone()];
    let mut push = |s: String| {
        if s.len() >= 2 && !out.contains(&s) {
            out.push(s);
        }
    };
    if let Some(stem) = w.strip_suffix("ies").or_else(|| w.strip_suffix("ied")) {
        push(format!("{stem}y"));
    }
    for suffix in ["es", "s", "ed", "d"] {
        if let Some(stem) = w.strip_suffix(suffix) {
            push(stem.to_string());
        }
    }
    for suffix in ["ing", "ed"] {
        if let Some(stem) = w.strip_suffix(suffix) {
            push(stem.to_string());
            push(format!("{stem}e"));
            let b = stem.as_bytes();
            if b.len() >= 2 && b[b.len() - 1] == b[b.len() - 2] {
                push(stem[..stem.len() - 1].to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_file_reads() {
        let p = Predicates::embedded().unwrap();
        assert_eq!(p.verb("condemn").map(|v| v.0), Some(VerbKind::Against));
        assert_eq!(p.verb("say").map(|v| v.0), Some(VerbKind::Speech));
        assert_eq!(p.noun("attack"), Some(NounKind::Harm));
        assert_eq!(p.noun("solidarity"), Some(NounKind::Favor));
    }

    #[test]
    fn inflected_forms_find_their_lemma() {
        let p = Predicates::embedded().unwrap();
        for (word, lemma) in [
            ("condemns", "condemn"),
            ("Denounced", "denounce"),
            ("denouncing", "denounce"),
            ("supported", "support"),
            ("criticizes", "criticize"),
            ("applauded", "applaud"),
            ("stressed", "stress"),
        ] {
            assert_eq!(p.verb(word).map(|v| v.1).as_deref(), Some(lemma), "{word}");
        }
        assert_eq!(p.noun("Sanctions"), Some(NounKind::Harm));
        assert_eq!(p.verb("sang"), None);
    }

    #[test]
    fn a_bad_line_names_itself() {
        let e = Predicates::parse("# c\nsay\tspeech\nsay\tfavor\n").unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        assert!(Predicates::parse("say speech\n").is_err());
        assert!(Predicates::parse("say\tshout\n").is_err());
    }
}
