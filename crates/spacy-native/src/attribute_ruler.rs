//! spaCy's `AttributeRuler` (`attribute_ruler/patterns`): token patterns of
//! the `Matcher` (keys TAG, LOWER, DEP, IS_SPACE with a value or an
//! `IN`/`NOT_IN`/`REGEX` predicate; no operators) that set POS, MORPH,
//! LEMMA, TAG or DEP on one token of every match.
//!
//! As in spaCy, all matches are found first on the unmodified doc, then
//! applied sorted by (rule index, start, end), so later rules win.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use fancy_regex::Regex;

use super::error::ModelError;

/// The token attributes a pattern can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Tag,
    Lower,
    Dep,
    IsSpace,
}

#[derive(Debug, Clone)]
enum Pred {
    Eq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Regex(Box<Regex>),
    Flag(bool),
}

/// One token of a pattern: every (key, predicate) must hold.
type TokenSpec = Vec<(Key, Pred)>;

/// One entry of the patterns file.
#[derive(Debug, Clone)]
struct Rule {
    patterns: Vec<Vec<TokenSpec>>,
    index: i64,
    pos: Option<Arc<str>>,
    morph: Option<Arc<str>>,
    lemma: Option<Arc<str>>,
    tag: Option<Arc<str>>,
    dep: Option<Arc<str>>,
}

/// The attributes of one token that the rules read and write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenAttrs {
    pub tag: Arc<str>,
    /// `token.lower_` (Python `str.lower()` of the text).
    pub lower: String,
    pub dep: Arc<str>,
    pub is_space: bool,
    /// `token.pos_` (empty when no rule set it).
    pub pos: Arc<str>,
    /// `str(token.morph)` as set by a rule (`""` for none / `_`).
    pub morph: Arc<str>,
    /// `token.lemma_` when a rule set it.
    pub lemma: Option<Arc<str>>,
}

/// The attribute ruler of a pipeline.
#[derive(Debug, Clone)]
pub struct AttributeRuler {
    rules: Vec<Rule>,
}

/// One entry of the patterns file, as spaCy writes it.
#[derive(serde::Deserialize)]
struct RuleEntry {
    patterns: Vec<Vec<BTreeMap<String, PatternValue>>>,
    attrs: BTreeMap<String, String>,
    #[serde(default)]
    index: i64,
}

/// What a pattern token's key must be: a value, a flag, or one predicate.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum PatternValue {
    Flag(bool),
    Str(String),
    Predicate(BTreeMap<String, PredicateArg>),
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum PredicateArg {
    List(Vec<String>),
    Str(String),
}

fn parse_pred(op: &str, arg: PredicateArg) -> Result<Pred, String> {
    Ok(match (op, arg) {
        ("IN", PredicateArg::List(l)) => Pred::In(l),
        ("NOT_IN", PredicateArg::List(l)) => Pred::NotIn(l),
        ("IN" | "NOT_IN", _) => return Err(format!("{op} value is not a list")),
        ("REGEX", PredicateArg::Str(src)) => Pred::Regex(Box::new(
            Regex::new(&src).map_err(|e| format!("REGEX {src:?}: {e}"))?,
        )),
        ("REGEX", _) => return Err("REGEX value is not a string".into()),
        (other, _) => return Err(format!("unsupported predicate {other:?}")),
    })
}

fn parse_token(spec: BTreeMap<String, PatternValue>) -> Result<TokenSpec, String> {
    let mut out = Vec::with_capacity(spec.len());
    for (k, v) in spec {
        let key = match k.as_str() {
            "TAG" => Key::Tag,
            "LOWER" => Key::Lower,
            "DEP" => Key::Dep,
            "IS_SPACE" => Key::IsSpace,
            other => return Err(format!("unsupported pattern key {other:?}")),
        };
        let pred = match v {
            PatternValue::Flag(b) => Pred::Flag(b),
            PatternValue::Str(s) => Pred::Eq(s),
            PatternValue::Predicate(m) if m.len() == 1 => {
                let (op, arg) = m.into_iter().next().expect("one entry");
                parse_pred(&op, arg)?
            }
            PatternValue::Predicate(m) => {
                return Err(format!(
                    "pattern key {k:?} has {} predicates, not one",
                    m.len()
                ))
            }
        };
        if matches!(pred, Pred::Flag(_)) != (key == Key::IsSpace) {
            return Err(format!("the value of pattern key {k:?} does not fit it"));
        }
        out.push((key, pred));
    }
    Ok(out)
}

fn parse_rules(bytes: &[u8]) -> Result<Vec<Rule>, String> {
    let entries: Vec<RuleEntry> =
        rmp_serde::from_slice(bytes).map_err(|e| format!("not a patterns list: {e}"))?;
    let mut rules = Vec::with_capacity(entries.len());
    for entry in entries {
        let patterns = entry
            .patterns
            .into_iter()
            .map(|p| {
                p.into_iter()
                    .map(parse_token)
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, String>>()?;
        if patterns.iter().any(Vec::is_empty) {
            return Err("empty pattern".into());
        }
        let mut rule = Rule {
            patterns,
            index: entry.index,
            pos: None,
            morph: None,
            lemma: None,
            tag: None,
            dep: None,
        };
        for (k, v) in entry.attrs {
            let val: Arc<str> = Arc::from(v);
            match k.as_str() {
                "POS" => rule.pos = Some(val),
                "MORPH" => rule.morph = Some(val),
                "LEMMA" => rule.lemma = Some(val),
                "TAG" => rule.tag = Some(val),
                "DEP" => rule.dep = Some(val),
                other => return Err(format!("unsupported attr {other:?}")),
            }
        }
        rules.push(rule);
    }
    Ok(rules)
}

impl Pred {
    fn holds_str(&self, s: &str) -> bool {
        match self {
            Pred::Eq(v) => v == s,
            Pred::In(vs) => vs.iter().any(|v| v == s),
            Pred::NotIn(vs) => !vs.iter().any(|v| v == s),
            Pred::Regex(r) => r.is_match(s).unwrap_or(false),
            Pred::Flag(_) => false,
        }
    }
}

fn token_matches(spec: &TokenSpec, t: &TokenAttrs) -> bool {
    spec.iter().all(|(key, pred)| match key {
        Key::Tag => pred.holds_str(&t.tag),
        Key::Lower => pred.holds_str(&t.lower),
        Key::Dep => pred.holds_str(&t.dep),
        Key::IsSpace => matches!(pred, Pred::Flag(b) if *b == t.is_space),
    })
}

impl AttributeRuler {
    /// Loads `<dir>/patterns`.
    pub fn load(dir: &Path) -> Result<AttributeRuler, ModelError> {
        let path = dir.join("patterns");
        let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
        let rules = parse_rules(&bytes).map_err(|what| ModelError::format(&path, what))?;
        Ok(AttributeRuler { rules })
    }

    /// Number of rules (pattern groups).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Matches every rule on `tokens`, then applies the matches in spaCy's
    /// order.
    pub fn apply(&self, tokens: &mut [TokenAttrs]) {
        let n = tokens.len();
        // (rule, start, end) in rule order, then start, then end.
        let mut matches: Vec<(usize, usize, usize)> = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            let mut found: Vec<(usize, usize)> = Vec::new();
            for start in 0..n {
                for pat in &rule.patterns {
                    let end = start + pat.len();
                    if end <= n
                        && pat
                            .iter()
                            .zip(&tokens[start..end])
                            .all(|(s, t)| token_matches(s, t))
                    {
                        found.push((start, end));
                    }
                }
            }
            found.sort_unstable();
            found.dedup();
            matches.extend(found.into_iter().map(|(s, e)| (r, s, e)));
        }
        for (r, start, end) in matches {
            let rule = &self.rules[r];
            let len = (end - start) as i64;
            let idx = if rule.index < 0 {
                len + rule.index
            } else {
                rule.index
            };
            if idx < 0 || idx >= len {
                continue; // spaCy raises E1001 here; the shipped rules never do
            }
            let t = &mut tokens[start + idx as usize];
            if let Some(v) = &rule.pos {
                t.pos = v.clone();
            }
            if let Some(v) = &rule.morph {
                t.morph = if &**v == "_" {
                    Arc::from("")
                } else {
                    v.clone()
                };
            }
            if let Some(v) = &rule.lemma {
                t.lemma = Some(v.clone());
            }
            if let Some(v) = &rule.tag {
                t.tag = v.clone();
            }
            if let Some(v) = &rule.dep {
                t.dep = v.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;

    fn tok(tag: &str, lower: &str, dep: &str) -> TokenAttrs {
        TokenAttrs {
            tag: tag.into(),
            lower: lower.into(),
            dep: dep.into(),
            ..TokenAttrs::default()
        }
    }

    #[test]
    fn later_rules_win_and_index_selects_token() {
        let mut buf = Vec::new();
        let rule = |pats: Value, attrs: Value, index: i64| {
            Value::Map(vec![
                (Value::from("patterns"), pats),
                (Value::from("attrs"), attrs),
                (Value::from("index"), Value::from(index)),
            ])
        };
        let one = |k: &str, v: &str| {
            Value::Array(vec![Value::Array(vec![Value::Map(vec![(
                Value::from(k),
                Value::from(v),
            )])])])
        };
        let attrs = |k: &str, v: &str| Value::Map(vec![(Value::from(k), Value::from(v))]);
        let v = Value::Array(vec![
            rule(one("TAG", "NN"), attrs("POS", "NOUN"), 0),
            rule(one("LOWER", "time"), attrs("POS", "X"), 0),
            rule(
                Value::Array(vec![Value::Array(vec![
                    Value::Map(vec![(Value::from("LOWER"), Value::from("gon"))]),
                    Value::Map(vec![(
                        Value::from("LOWER"),
                        Value::Map(vec![(Value::from("REGEX"), Value::from("^n?a$"))]),
                    )]),
                ])]),
                attrs("LEMMA", "to"),
                1,
            ),
        ]);
        rmpv::encode::write_value(&mut buf, &v).unwrap();
        let ruler = AttributeRuler {
            rules: parse_rules(&buf).unwrap(),
        };
        let mut toks = vec![
            tok("NN", "time", "x"),
            tok("VBG", "gon", "x"),
            tok("TO", "na", "x"),
        ];
        ruler.apply(&mut toks);
        assert_eq!(&*toks[0].pos, "X");
        assert_eq!(toks[2].lemma.as_deref(), Some("to"));
        assert_eq!(toks[1].lemma, None);
    }
}
