//! spaCy's `AttributeRuler` (`attribute_ruler/patterns`): token patterns of
//! the `Matcher` (keys TAG, LOWER, DEP, IS_SPACE with a value or an
//! `IN`/`NOT_IN`/`REGEX` predicate; no operators) that set POS, MORPH,
//! LEMMA, TAG or DEP on one token of every match.
//!
//! As in spaCy, all matches are found first on the unmodified doc, then
//! applied sorted by (rule index, start, end), so later rules win.

use std::path::Path;
use std::sync::Arc;

use fancy_regex::Regex;
use rmpv::Value;

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

fn str_of(v: &Value) -> Option<&str> {
    v.as_str()
}

fn map_get<'a>(m: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn str_list(v: &Value) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or("IN/NOT_IN value is not a list")?
        .iter()
        .map(|s| {
            str_of(s)
                .map(str::to_owned)
                .ok_or("IN/NOT_IN item is not a string")
        })
        .collect::<Result<_, _>>()
        .map_err(str::to_owned)
}

fn parse_token(spec: &Value) -> Result<TokenSpec, String> {
    let map = spec.as_map().ok_or("pattern token is not a map")?;
    let mut out = Vec::new();
    for (k, v) in map {
        let key = match k.as_str() {
            Some("TAG") => Key::Tag,
            Some("LOWER") => Key::Lower,
            Some("DEP") => Key::Dep,
            Some("IS_SPACE") => Key::IsSpace,
            other => return Err(format!("unsupported pattern key {other:?}")),
        };
        let pred = match v {
            Value::Boolean(b) => Pred::Flag(*b),
            Value::String(_) => Pred::Eq(str_of(v).ok_or("bad string")?.to_owned()),
            Value::Map(m) if m.len() == 1 => {
                let (op, arg) = &m[0];
                match op.as_str() {
                    Some("IN") => Pred::In(str_list(arg)?),
                    Some("NOT_IN") => Pred::NotIn(str_list(arg)?),
                    Some("REGEX") => {
                        let src = str_of(arg).ok_or("REGEX value is not a string")?;
                        Pred::Regex(Box::new(
                            Regex::new(src).map_err(|e| format!("REGEX {src:?}: {e}"))?,
                        ))
                    }
                    other => return Err(format!("unsupported predicate {other:?}")),
                }
            }
            other => return Err(format!("unsupported pattern value {other}")),
        };
        if matches!(pred, Pred::Flag(_)) != (key == Key::IsSpace) {
            return Err(format!("pattern value {v} does not fit its key"));
        }
        out.push((key, pred));
    }
    Ok(out)
}

fn parse_rules(bytes: &[u8]) -> Result<Vec<Rule>, String> {
    let v = rmpv::decode::read_value(&mut &bytes[..]).map_err(|e| format!("not msgpack: {e}"))?;
    let list = v.as_array().ok_or("patterns file is not a list")?;
    let mut rules = Vec::with_capacity(list.len());
    for entry in list {
        let m = entry.as_map().ok_or("rule is not a map")?;
        let patterns = map_get(m, "patterns")
            .and_then(Value::as_array)
            .ok_or("rule has no patterns")?
            .iter()
            .map(|p| {
                p.as_array()
                    .ok_or_else(|| "pattern is not a list".to_owned())?
                    .iter()
                    .map(parse_token)
                    .collect::<Result<Vec<_>, String>>()
            })
            .collect::<Result<Vec<_>, String>>()?;
        if patterns.iter().any(Vec::is_empty) {
            return Err("empty pattern".into());
        }
        let index = map_get(m, "index").and_then(Value::as_i64).unwrap_or(0);
        let attrs = map_get(m, "attrs")
            .and_then(Value::as_map)
            .ok_or("rule has no attrs")?;
        let mut rule = Rule {
            patterns,
            index,
            pos: None,
            morph: None,
            lemma: None,
            tag: None,
            dep: None,
        };
        for (k, v) in attrs {
            let val: Arc<str> = Arc::from(str_of(v).ok_or("attr value is not a string")?);
            match k.as_str() {
                Some("POS") => rule.pos = Some(val),
                Some("MORPH") => rule.morph = Some(val),
                Some("LEMMA") => rule.lemma = Some(val),
                Some("TAG") => rule.tag = Some(val),
                Some("DEP") => rule.dep = Some(val),
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
