//! The data files of the stance engine: gazetteer, stance cues, modifiers and
//! the VADER sentiment lexicon, parsed into matchable form.

use std::collections::HashMap;
use std::path::Path;

use super::tokens::{normalize, tokenize, Token, TokenKind};
use super::StanceError;
use crate::pipeline::{AliasKind, CanonicalName};

pub(crate) const GAZETTEER_FILE: &str = "gazetteer.tsv";
pub(crate) const CUES_FILE: &str = "cues.tsv";
pub(crate) const MODIFIERS_FILE: &str = "modifiers.tsv";
pub(crate) const VADER_FILE: &str = "vader_lexicon.txt";

/// One word of a phrase pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WordPat {
    Exact(String),
    /// A stem followed by `*`: any token that starts with it.
    Prefix(String),
}

/// A phrase as a sequence of token patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    words: Vec<WordPat>,
}

impl Pattern {
    fn parse(phrase: &str) -> Option<Pattern> {
        let mut words = Vec::new();
        for part in phrase.split_whitespace() {
            let (stem, prefix) = match part.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (part, false),
            };
            let toks = tokenize(stem);
            if toks.is_empty() {
                return None;
            }
            let last = toks.len() - 1;
            for (i, t) in toks.into_iter().enumerate() {
                if prefix && i == last {
                    words.push(WordPat::Prefix(t.norm));
                } else {
                    words.push(WordPat::Exact(t.norm));
                }
            }
        }
        if words.is_empty() {
            None
        } else {
            Some(Pattern { words })
        }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether the pattern matches the tokens starting at `at`.
    pub fn matches_at(&self, tokens: &[Token], at: usize) -> bool {
        let Some(window) = tokens.get(at..at + self.words.len()) else {
            return false;
        };
        window.iter().zip(&self.words).all(|(t, w)| match w {
            WordPat::Exact(s) => t.norm == *s,
            WordPat::Prefix(s) => t.kind == TokenKind::Word && t.norm.starts_with(s.as_str()),
        })
    }
}

/// Where the target must stand relative to a cue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The target follows the cue.
    Object,
    /// The target precedes the cue.
    Subject,
    /// Either side.
    Any,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Object => "object",
            Role::Subject => "subject",
            Role::Any => "any",
        }
    }
}

/// One reading of a cue phrase for one role.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CueSense {
    pub role: Role,
    pub weight: f32,
    /// An evaluation ("condemn") rather than a deed ("sanctions on").
    pub attitude: bool,
    /// A harmful deed whose object is its victim ("invasion of X"): the
    /// weight is the sympathy it earns the target, and an attitude toward
    /// the deed ("condemned the invasion of X") counts as harm to the target.
    pub victim: bool,
    pub reason: String,
}

/// A cue phrase with its senses (one per role).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cue {
    pub phrase: String,
    pub pattern: Pattern,
    pub senses: Vec<CueSense>,
}

impl Cue {
    pub fn sense(&self, role: Role) -> Option<&CueSense> {
        self.senses.iter().find(|s| s.role == role)
    }
}

/// Which part of a gazetteer entry a form comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormKind {
    Name,
    Demonym,
    Metonym,
}

/// One gazetteer entity.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GazEntry {
    pub canonical: String,
    pub forms: Vec<(String, FormKind)>,
}

/// Everything the engine reads from data files.
#[derive(Debug, Clone)]
pub(crate) struct Lexicon {
    pub gazetteer: Vec<GazEntry>,
    pub cues: Vec<Cue>,
    pub negators: Vec<Pattern>,
    pub contrasts: Vec<Pattern>,
    pub reports: Vec<Pattern>,
    pub ignore: Vec<String>,
    pub vader: HashMap<String, f32>,
}

impl Lexicon {
    /// The gazetteer entity a mention names, by any of its forms: exact case
    /// for forms without a lowercase letter ("US"), any case otherwise. A
    /// possessive or a leading "the" is ignored ("the Kremlin's").
    pub fn canonical_name(&self, mention: &str) -> Option<CanonicalName> {
        let mut m = mention.trim();
        for possessive in ["'s", "’s", "'", "’"] {
            if let Some(stripped) = m.strip_suffix(possessive) {
                m = stripped.trim_end();
                break;
            }
        }
        if let Some(rest) = m.strip_prefix("the ").or_else(|| m.strip_prefix("The ")) {
            m = rest.trim_start();
        }
        let lower = m.to_lowercase();
        self.gazetteer.iter().find_map(|entry| {
            entry
                .forms
                .iter()
                .find(|(form, _)| {
                    if form.chars().any(char::is_lowercase) {
                        form.to_lowercase() == lower
                    } else {
                        form == m
                    }
                })
                .map(|(_, kind)| CanonicalName {
                    name: entry.canonical.clone(),
                    kind: match kind {
                        FormKind::Name => AliasKind::Name,
                        FormKind::Demonym => AliasKind::Demonym,
                        FormKind::Metonym => AliasKind::Metonym,
                    },
                })
        })
    }
}

/// Splits a data line into exactly `names.len()` tab-separated columns, or
/// says which columns were expected.
fn columns<'a>(
    file: &str,
    n: usize,
    line: &'a str,
    names: &[&str],
) -> Result<Vec<&'a str>, StanceError> {
    let cols: Vec<&str> = line.split('\t').collect();
    if cols.len() != names.len() {
        return Err(StanceError::parse(
            file,
            n,
            format!(
                "expected {} tab-separated columns ({}), found {}",
                names.len(),
                names.join(", "),
                cols.len()
            ),
        ));
    }
    Ok(cols)
}

/// The data lines of a file: (line number from 1, text), without comments
/// and blank lines.
fn data_lines(content: &str) -> impl Iterator<Item = (usize, &str)> {
    content
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
}

fn parse_weight(file: &str, line: usize, s: &str) -> Result<f32, StanceError> {
    let w: f32 = s
        .trim()
        .parse()
        .map_err(|_| StanceError::parse(file, line, format!("weight {s:?} is not a number")))?;
    if !w.is_finite() || w.abs() > 100.0 {
        return Err(StanceError::parse(
            file,
            line,
            format!("weight {s:?} is out of range"),
        ));
    }
    Ok(w)
}

pub(crate) fn parse_gazetteer(file: &str, content: &str) -> Result<Vec<GazEntry>, StanceError> {
    let mut entries = Vec::new();
    for (n, line) in data_lines(content) {
        let cols = columns(
            file,
            n,
            line,
            &["canonical", "type", "names", "demonyms", "metonyms"],
        )?;
        let canonical = cols[0].trim();
        if canonical.is_empty() {
            return Err(StanceError::parse(file, n, "empty canonical name"));
        }
        let mut forms = vec![(canonical.to_string(), FormKind::Name)];
        for (col, kind) in [
            (cols[2], FormKind::Name),
            (cols[3], FormKind::Demonym),
            (cols[4], FormKind::Metonym),
        ] {
            let col = col.trim();
            if col == "-" {
                continue;
            }
            for form in col.split('|') {
                let form = form.trim();
                if form.is_empty() || tokenize(form).is_empty() {
                    return Err(StanceError::parse(
                        file,
                        n,
                        format!("empty form in {col:?}"),
                    ));
                }
                if !forms.iter().any(|(f, _)| f == form) {
                    forms.push((form.to_string(), kind));
                }
            }
        }
        entries.push(GazEntry {
            canonical: canonical.to_string(),
            forms,
        });
    }
    Ok(entries)
}

pub(crate) fn parse_cues(file: &str, content: &str) -> Result<Vec<Cue>, StanceError> {
    let mut cues: Vec<Cue> = Vec::new();
    for (n, line) in data_lines(content) {
        let cols = columns(
            file,
            n,
            line,
            &["phrase", "role", "weight", "kind", "reason"],
        )?;
        let phrase = cols[0].trim();
        let pattern = Pattern::parse(phrase)
            .ok_or_else(|| StanceError::parse(file, n, format!("empty phrase {phrase:?}")))?;
        let role = match cols[1].trim() {
            "object" => Role::Object,
            "subject" => Role::Subject,
            "any" => Role::Any,
            other => {
                return Err(StanceError::parse(
                    file,
                    n,
                    format!("role {other:?} is not object, subject or any"),
                ))
            }
        };
        let weight = parse_weight(file, n, cols[2])?;
        let (attitude, victim) = match cols[3].trim() {
            "attitude" => (true, false),
            "action" => (false, false),
            "victim" => (false, true),
            other => {
                return Err(StanceError::parse(
                    file,
                    n,
                    format!("kind {other:?} is not attitude, action or victim"),
                ))
            }
        };
        let reason = match cols[4].trim() {
            "-" | "" => String::new(),
            r => r.to_string(),
        };
        let sense = CueSense {
            role,
            weight,
            attitude,
            victim,
            reason,
        };
        match cues.iter_mut().find(|c| c.phrase == phrase) {
            Some(cue) => {
                if cue.sense(role).is_some() {
                    return Err(StanceError::parse(
                        file,
                        n,
                        format!("phrase {phrase:?} already has role {}", role.as_str()),
                    ));
                }
                cue.senses.push(sense);
            }
            None => cues.push(Cue {
                phrase: phrase.to_string(),
                pattern,
                senses: vec![sense],
            }),
        }
    }
    Ok(cues)
}

type Modifiers = (Vec<Pattern>, Vec<Pattern>, Vec<Pattern>, Vec<String>);

pub(crate) fn parse_modifiers(file: &str, content: &str) -> Result<Modifiers, StanceError> {
    let (mut neg, mut con, mut rep, mut ign) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (n, line) in data_lines(content) {
        let cols = columns(file, n, line, &["kind", "phrase"])?;
        let phrase = cols[1].trim();
        let pattern = Pattern::parse(phrase)
            .ok_or_else(|| StanceError::parse(file, n, format!("empty phrase {phrase:?}")))?;
        match cols[0].trim() {
            "negator" => neg.push(pattern),
            "contrast" => con.push(pattern),
            "report" => rep.push(pattern),
            "ignore" => ign.push(normalize(phrase)),
            other => {
                return Err(StanceError::parse(
                    file,
                    n,
                    format!("kind {other:?} is not negator, contrast, report or ignore"),
                ))
            }
        }
    }
    Ok((neg, con, rep, ign))
}

/// VADER's `vader_lexicon.txt`: token, mean valence, standard deviation,
/// ratings. Only the first two columns are used.
pub(crate) fn parse_vader(file: &str, content: &str) -> Result<HashMap<String, f32>, StanceError> {
    let mut map = HashMap::new();
    for (n, line) in content
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
    {
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (Some(token), Some(valence)) = (cols.next(), cols.next()) else {
            return Err(StanceError::parse(
                file,
                n,
                "expected a token and a valence, tab-separated",
            ));
        };
        let valence = parse_weight(file, n, valence)?;
        map.insert(normalize(token), valence);
    }
    Ok(map)
}

impl Lexicon {
    /// Parses the four files' contents.
    pub fn parse(
        gazetteer: &str,
        cues: &str,
        modifiers: &str,
        vader: &str,
    ) -> Result<Lexicon, StanceError> {
        let (negators, contrasts, reports, ignore) = parse_modifiers(MODIFIERS_FILE, modifiers)?;
        Ok(Lexicon {
            gazetteer: parse_gazetteer(GAZETTEER_FILE, gazetteer)?,
            cues: parse_cues(CUES_FILE, cues)?,
            negators,
            contrasts,
            reports,
            ignore,
            vader: parse_vader(VADER_FILE, vader)?,
        })
    }

    pub fn embedded() -> Result<Lexicon, StanceError> {
        Lexicon::parse(
            include_str!("../../data/stance/gazetteer.tsv"),
            include_str!("../../data/stance/cues.tsv"),
            include_str!("../../data/stance/modifiers.tsv"),
            include_str!("../../data/stance/vader_lexicon.txt"),
        )
    }

    pub fn from_dir(dir: &Path) -> Result<Lexicon, StanceError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| StanceError::Io { path, source })
        };
        Lexicon::parse(
            &read(GAZETTEER_FILE)?,
            &read(CUES_FILE)?,
            &read(MODIFIERS_FILE)?,
            &read(VADER_FILE)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_parse() {
        let lex = Lexicon::embedded().unwrap();
        assert!(lex.gazetteer.len() >= 60);
        assert!(lex.cues.len() > 50);
        assert!(lex.vader.len() > 7000);
        assert_eq!(lex.vader.get("friendship"), Some(&1.9));
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse_cues(
            "cues.tsv",
            "# c\ncondemn*\tobject\t-2\taction\tx\nfoo\tobject\tbig\taction\tx\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cues.tsv:3: weight \"big\" is not a number"
        );
        let err = parse_gazetteer("gazetteer.tsv", "China\tcountry\n").unwrap_err();
        assert!(
            err.to_string().starts_with("gazetteer.tsv:1: expected 5"),
            "{err}"
        );
        let err = parse_modifiers("modifiers.tsv", "\nnegater\tnot\n").unwrap_err();
        assert!(
            err.to_string().starts_with("modifiers.tsv:2: kind"),
            "{err}"
        );
    }

    #[test]
    fn patterns_match_prefixes_and_phrases() {
        let toks = tokenize("They condemned sanctions on Russia");
        let p = Pattern::parse("condemn*").unwrap();
        assert!(p.matches_at(&toks, 1));
        let p = Pattern::parse("sanction* on").unwrap();
        assert!(p.matches_at(&toks, 2));
        assert!(!p.matches_at(&toks, 3));
        assert!(!p.matches_at(&toks, 40));
    }
}
