//! Finding a target in a sentence: its aliases, expanded through the
//! gazetteer (names, demonyms, metonyms), surnames of persons, and the
//! target's own spans.

use crate::pipeline::{Recognized, Target};

use super::lexicon::{FormKind, Lexicon};
use super::tokens::{normalize, tokenize, Token, TokenKind};

/// One surface form of a target.
#[derive(Debug, Clone)]
pub(crate) struct Form {
    pub text: String,
    /// Normal forms of its tokens.
    norms: Vec<String>,
    /// Its tokens as written, for case-sensitive forms.
    raw: Vec<String>,
    /// Acronyms and other forms without a lowercase letter match exactly.
    case_sensitive: bool,
    /// A form written with a capital must be capitalised in the text.
    capitalized: bool,
    /// How the form relates to the target, for evidence reasons.
    pub origin: String,
}

impl Form {
    fn new(text: &str, origin: String) -> Option<Form> {
        let toks = tokenize(text);
        if toks.is_empty() {
            return None;
        }
        let raw = toks
            .iter()
            .map(|t| text.get(t.start..t.end).unwrap_or("").to_string())
            .collect();
        Some(Form {
            text: text.to_string(),
            norms: toks.into_iter().map(|t| t.norm).collect(),
            raw,
            case_sensitive: !text.chars().any(char::is_lowercase),
            capitalized: text.chars().next().is_some_and(char::is_uppercase),
            origin,
        })
    }

    fn len(&self) -> usize {
        self.norms.len()
    }

    fn matches_at(&self, text: &str, tokens: &[Token], at: usize) -> bool {
        let Some(window) = tokens.get(at..at + self.norms.len()) else {
            return false;
        };
        for (k, t) in window.iter().enumerate() {
            if self.case_sensitive {
                if text.get(t.start..t.end) != Some(self.raw[k].as_str()) {
                    return false;
                }
            } else if t.norm != self.norms[k] {
                return false;
            }
        }
        if self.capitalized && !self.case_sensitive {
            let first = text.get(window[0].start..window[0].end).unwrap_or("");
            if !first.chars().next().is_some_and(char::is_uppercase) {
                return false;
            }
        }
        true
    }

    /// Whether `other` (token norms) contains this form's tokens.
    fn inside(&self, other: &Form) -> bool {
        other.len() > self.len() && other.norms.windows(self.len()).any(|w| w == self.norms)
    }
}

/// A mention of the target in a sentence, as a token range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Occurrence {
    pub start: usize,
    pub end: usize,
    /// Index into [`TargetMatcher::forms`]; `None` for a target span that no
    /// form matched.
    pub form: Option<usize>,
}

/// An entity mention from the recognizer, as a token range of a sentence.
#[derive(Debug, Clone)]
pub(crate) struct EntityRange {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// The forms of one target and the longer forms that shadow them.
#[derive(Debug, Clone)]
pub(crate) struct TargetMatcher {
    pub forms: Vec<Form>,
    /// Forms of other entities that contain one of ours ("Latin America").
    blockers: Vec<Form>,
    /// The target's own aliases, normalized, for checking NER mentions.
    alias_norms: Vec<String>,
}

fn strip_alias(alias: &str) -> &str {
    let a = alias.trim();
    let a = a
        .strip_suffix("'s")
        .or_else(|| a.strip_suffix("\u{2019}s"))
        .unwrap_or(a);
    let a = a
        .strip_prefix("the ")
        .or_else(|| a.strip_prefix("The "))
        .unwrap_or(a);
    a.trim()
}

fn form_equals_alias(form: &str, alias: &str) -> bool {
    if form.chars().any(char::is_lowercase) {
        normalize(form) == normalize(alias)
    } else {
        form == alias
    }
}

fn looks_like_person_name(alias: &str) -> bool {
    let words: Vec<&str> = alias.split_whitespace().collect();
    (2..=4).contains(&words.len())
        && words.iter().all(|w| {
            w.chars().next().is_some_and(char::is_uppercase)
                && w.chars().all(|c| c.is_alphabetic() || c == '-' || c == '.')
        })
}

impl TargetMatcher {
    pub fn new(lexicon: &Lexicon, target: &Target, doc: &Recognized) -> TargetMatcher {
        let mut bases: Vec<&str> = vec![strip_alias(&target.name)];
        for a in &target.aliases {
            let a = strip_alias(a);
            if !a.is_empty() && !bases.contains(&a) {
                bases.push(a);
            }
        }
        bases.retain(|b| !b.is_empty());

        let mut forms: Vec<Form> = Vec::new();
        let add = |forms: &mut Vec<Form>, text: &str, origin: String| {
            if forms.iter().any(|f| f.text == text) {
                return;
            }
            if let Some(f) = Form::new(text, origin) {
                forms.push(f);
            }
        };
        for b in &bases {
            let origin = if *b == strip_alias(&target.name) {
                "the target's name".to_string()
            } else {
                "an alias of the target".to_string()
            };
            add(&mut forms, b, origin);
        }
        let mut matched = vec![false; lexicon.gazetteer.len()];
        for (i, entry) in lexicon.gazetteer.iter().enumerate() {
            if !bases
                .iter()
                .any(|b| entry.forms.iter().any(|(f, _)| form_equals_alias(f, b)))
            {
                continue;
            }
            matched[i] = true;
            for (f, kind) in &entry.forms {
                let origin = match kind {
                    FormKind::Name => format!("a name of {}", entry.canonical),
                    FormKind::Demonym => format!("a demonym of {}", entry.canonical),
                    FormKind::Metonym => format!("standing for {}", entry.canonical),
                };
                add(&mut forms, f, origin);
            }
        }
        // Surname-only mentions of persons ("Wang" for "Wang Yi").
        let persons: Vec<&str> = doc
            .sentences
            .iter()
            .flat_map(|s| &s.mentions)
            .filter(|m| m.label == "PERSON")
            .map(|m| strip_alias(&m.text))
            .collect();
        for b in bases.clone() {
            if !looks_like_person_name(b) || forms.iter().any(|f| f.origin.starts_with("a name")) {
                continue;
            }
            let Some(last) = b.split_whitespace().last() else {
                continue;
            };
            if persons
                .iter()
                .any(|p| form_equals_alias(p, b) || form_equals_alias(p, last))
            {
                add(&mut forms, last, format!("the surname of {b}"));
            }
        }
        // Longest forms first, so "European Union" wins over "European".
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));

        let mut blockers = Vec::new();
        for (i, entry) in lexicon.gazetteer.iter().enumerate() {
            if matched[i] {
                continue;
            }
            for (f, _) in &entry.forms {
                if let Some(other) = Form::new(f, String::new()) {
                    if forms.iter().any(|ours| ours.inside(&other)) {
                        blockers.push(other);
                    }
                }
            }
        }
        let alias_norms = forms.iter().map(|f| normalize(&f.text)).collect();
        TargetMatcher {
            forms,
            blockers,
            alias_norms,
        }
    }

    /// Whether a recognizer mention names the target itself.
    pub fn is_alias(&self, mention_text: &str) -> bool {
        let n = normalize(strip_alias(mention_text));
        self.alias_norms.contains(&n)
    }

    /// Occurrences of the target in one tokenized sentence. `entities` are
    /// the recognizer's mentions in it; `spans` the target's own spans as
    /// token ranges.
    pub fn find(
        &self,
        text: &str,
        tokens: &[Token],
        entities: &[EntityRange],
        spans: &[(usize, usize)],
    ) -> Vec<Occurrence> {
        let mut out: Vec<Occurrence> = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let hit = self.forms.iter().enumerate().find(|(_, f)| {
                f.matches_at(text, tokens, i)
                    && !self.blocked(text, tokens, entities, i, f.len())
                    && !(f.origin.starts_with("a demonym") && counted(tokens, i))
            });
            match hit {
                Some((k, f)) => {
                    out.push(Occurrence {
                        start: i,
                        end: i + f.len(),
                        form: Some(k),
                    });
                    i += f.len();
                }
                None => i += 1,
            }
        }
        for &(start, end) in spans {
            if start < end && !out.iter().any(|o| o.start < end && start < o.end) {
                out.push(Occurrence {
                    start,
                    end,
                    form: None,
                });
            }
        }
        out.sort_by_key(|o| o.start);
        out
    }

    fn blocked(
        &self,
        text: &str,
        tokens: &[Token],
        entities: &[EntityRange],
        at: usize,
        len: usize,
    ) -> bool {
        let end = at + len;
        // "US$26 billion" is money, not the United States.
        if let (Some(last), Some(next)) = (tokens.get(end - 1), tokens.get(end)) {
            if next.norm == "$" && next.start == last.end {
                return true;
            }
        }
        for b in &self.blockers {
            let from = (end).saturating_sub(b.len());
            for s in from..=at {
                if s + b.len() >= end && b.matches_at(text, tokens, s) {
                    return true;
                }
            }
        }
        // Inside a longer recognizer mention of something else ("South China
        // Morning Post"), unless it is that mention's possessor ("China's
        // UnionPay").
        entities.iter().any(|e| {
            e.start <= at
                && end <= e.end
                && e.end - e.start > len
                && !self.is_alias(&e.text)
                && !(e.start == at
                    && tokens
                        .get(end)
                        .is_some_and(|t| t.kind == TokenKind::Possessive))
        })
    }
}

/// Number words and quantifiers that make a following demonym name
/// individuals ("four Ukrainians", "2 Americans"), not their country.
const COUNTING_WORDS: &[&str] = &[
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "dozen",
    "dozens",
    "hundreds",
    "thousands",
    "several",
    "many",
    "some",
    "few",
    "both",
];

/// Whether the token before `at` counts the word at `at` (a number or a
/// quantifier, possibly after "the").
fn counted(tokens: &[Token], at: usize) -> bool {
    let Some(prev) = at.checked_sub(1).and_then(|p| tokens.get(p)) else {
        return false;
    };
    prev.norm.chars().next().is_some_and(|c| c.is_ascii_digit())
        || COUNTING_WORDS.contains(&prev.norm.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str) -> Target {
        Target {
            name: name.into(),
            aliases: vec![name.into()],
            spans: vec![],
        }
    }

    fn hits(name: &str, text: &str) -> Vec<String> {
        let lex = Lexicon::embedded().unwrap();
        let m = TargetMatcher::new(&lex, &target(name), &Recognized::default());
        let toks = tokenize(text);
        m.find(text, &toks, &[], &[])
            .into_iter()
            .map(|o| text[toks[o.start].start..toks[o.end - 1].end].to_string())
            .collect()
    }

    #[test]
    fn gazetteer_expands_aliases_with_case_rules() {
        assert_eq!(
            hits(
                "United States",
                "Washington and the US, not us, said U.S. and American officials"
            ),
            ["Washington", "US", "U.S.", "American"]
        );
        assert_eq!(
            hits("Russia", "Russia’s Kremlin and Moscow's Russians"),
            ["Russia", "Kremlin", "Moscow", "Russians"]
        );
        assert_eq!(
            hits("EU", "The European Union and the EU"),
            ["European Union", "EU"]
        );
    }

    #[test]
    fn longer_names_of_other_entities_block() {
        assert!(hits("United States", "Latin America grows; US$26 billion").is_empty());
        assert_eq!(hits("China", "the South China Sea and China"), ["China"]);
        assert!(hits("China", "fine china plates").is_empty());
    }
}
