//! Python `re` patterns on Rust's regex engines, for the tokenizer.
//!
//! spaCy's prefix, suffix, infix, token and URL rules are Python `re`
//! patterns. They are translated to the syntax of the `regex`/`fancy-regex`
//! crates ([`translate`]), and each pattern is cut into its top-level
//! alternatives so that only the few alternatives with look-around run on
//! fancy-regex's backtracking engine; everything else runs on the
//! linear-time automata of the `regex` crate. The documented differences
//! from Python `re` are listed in [`super::tokenizer`].

use fancy_regex::Regex;

/// A Python `re` pattern used with `re.search` / `re.finditer`, compiled as
/// an ordered list of alternative groups (see [`Group`]).
///
/// Python tries the alternatives of a pattern in order at each position and
/// takes the leftmost position where any of them matches. Searching each
/// group separately and taking the leftmost start (ties: the earlier group)
/// gives the same match, while most groups stay free of look-around.
pub(super) struct Searcher {
    groups: Vec<Group>,
    /// The whole pattern with all look-around removed: a superset matcher,
    /// cheap to run first. No match there means no match at all.
    prefilter: Option<Regex>,
}

/// One run of consecutive top-level alternatives.
enum Group {
    /// No look-around: runs on the `regex` crate's automata.
    Plain(Regex),
    /// `(?<=X)Y` where X is `k` single-character items and Y has no
    /// look-around: matched as `XY`, then the match start moves `k` chars.
    Lookbehind { re: Regex, chars: usize },
    /// Anything else: fancy-regex's backtracking VM, behind a superset
    /// prefilter without the look-around.
    Fancy { re: Regex, prefilter: Regex },
}

impl Group {
    /// The leftmost match starting at or after byte `pos` of `s`.
    fn find_from(&self, s: &str, pos: usize) -> Option<(usize, usize)> {
        match self {
            Group::Plain(re) => find(re, s, pos),
            Group::Lookbehind { re, chars } => {
                // X may start up to `chars` characters before `pos`.
                let mut from = s[..pos]
                    .char_indices()
                    .rev()
                    .take(*chars)
                    .last()
                    .map_or(pos, |(i, _)| i);
                loop {
                    let (a, b) = find(re, s, from)?;
                    let y = s[a..]
                        .char_indices()
                        .nth(*chars)
                        .map_or(s.len(), |(i, _)| a + i);
                    if y >= pos {
                        return Some((y, b));
                    }
                    from = a + s[a..].chars().next().map_or(1, char::len_utf8);
                }
            }
            Group::Fancy { re, prefilter } => {
                find(prefilter, s, pos)?;
                find(re, s, pos)
            }
        }
    }
}

/// `re.find_from_pos`, with engine errors (backtracking limit) as no match.
fn find(re: &Regex, s: &str, pos: usize) -> Option<(usize, usize)> {
    if pos > s.len() {
        return None;
    }
    re.find_from_pos(s, pos)
        .ok()
        .flatten()
        .map(|m| (m.start(), m.end()))
}

impl Searcher {
    pub(super) fn new(pattern: &str) -> Result<Searcher, String> {
        let (flags, body) = split_leading_flags(pattern);
        let flags = translate(&flags)?.strict;
        let compile = |p: &str| compile(&format!("{flags}{p}"));
        let mut groups = Vec::new();
        let mut plain: Vec<String> = Vec::new();
        let flush = |plain: &mut Vec<String>, groups: &mut Vec<Group>| -> Result<(), String> {
            if !plain.is_empty() {
                groups.push(Group::Plain(compile(&plain.join("|"))?));
                plain.clear();
            }
            Ok(())
        };
        for alt in split_alternatives(body) {
            let t = translate(alt)?;
            if !t.has_lookaround {
                plain.push(t.strict);
                continue;
            }
            flush(&mut plain, &mut groups)?;
            if let Some((x, chars, y)) = leading_lookbehind(alt) {
                let (x, y) = (translate(x)?, translate(y)?);
                if !x.has_lookaround && !y.has_lookaround {
                    groups.push(Group::Lookbehind {
                        re: compile(&format!("(?:{})(?:{})", x.strict, y.strict))?,
                        chars,
                    });
                    continue;
                }
            }
            groups.push(Group::Fancy {
                re: compile(&t.strict)?,
                prefilter: compile(&t.relaxed)?,
            });
        }
        flush(&mut plain, &mut groups)?;
        let whole = translate(body)?;
        let prefilter = if whole.has_lookaround {
            Some(compile(&whole.relaxed)?)
        } else {
            None
        };
        Ok(Searcher { groups, prefilter })
    }

    /// `re.search(s)`: the leftmost match (start, end) in bytes.
    pub(super) fn search(&self, s: &str) -> Option<(usize, usize)> {
        if let Some(pf) = &self.prefilter {
            find(pf, s, 0)?;
        }
        let mut best: Option<(usize, usize)> = None;
        for group in &self.groups {
            if let Some(m) = group.find_from(s, 0) {
                if best.map_or(true, |b| m.0 < b.0) {
                    best = Some(m);
                    if m.0 == 0 {
                        break;
                    }
                }
            }
        }
        best
    }

    /// The first match of `re.finditer(s)`, if any.
    pub(super) fn find_first(&self, s: &str) -> Option<(usize, usize)> {
        self.search(s)
    }

    /// `re.finditer(s)` as (start, end) byte pairs.
    pub(super) fn find_all(&self, s: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        if let Some(pf) = &self.prefilter {
            if find(pf, s, 0).is_none() {
                return out;
            }
        }
        // Each group's next match from the current position; recomputed only
        // once the position passes its start, so a scan is linear per group.
        let mut next: Vec<Option<(usize, usize)>> =
            self.groups.iter().map(|g| g.find_from(s, 0)).collect();
        let mut pos = 0;
        while pos <= s.len() {
            let mut best: Option<(usize, (usize, usize))> = None;
            for (gi, group) in self.groups.iter().enumerate() {
                if next[gi].is_some_and(|(a, _)| a < pos) {
                    next[gi] = group.find_from(s, pos);
                }
                if let Some(m) = next[gi] {
                    if best.map_or(true, |(_, b)| m.0 < b.0) {
                        best = Some((gi, m));
                    }
                }
            }
            let Some((_, (a, b))) = best else {
                break;
            };
            out.push((a, b));
            pos = if b > a {
                b
            } else {
                // An empty match: move on one character.
                b + s[b..].chars().next().map_or(1, char::len_utf8)
            };
        }
        out
    }
}

/// A pattern used with `re.match` (anchored at the start): `token_match`
/// and `url_match`.
pub(super) struct AnchoredMatcher {
    re: Regex,
    prefilter: Option<Regex>,
}

impl AnchoredMatcher {
    pub(super) fn new(pattern: &str) -> Result<AnchoredMatcher, String> {
        let (flags, body) = split_leading_flags(pattern);
        let flags = translate(&flags)?.strict;
        let t = translate(body)?;
        let re = compile(&format!("{flags}^(?:{})", t.strict))?;
        let prefilter = if t.has_lookaround {
            Some(compile(&format!("{flags}^(?:{})", t.relaxed))?)
        } else {
            None
        };
        Ok(AnchoredMatcher { re, prefilter })
    }

    pub(super) fn is_match(&self, s: &str) -> bool {
        if let Some(pf) = &self.prefilter {
            if find(pf, s, 0).is_none() {
                return false;
            }
        }
        find(&self.re, s, 0).is_some()
    }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("cannot compile translated pattern: {e}"))
}

/// Splits off leading global flag groups such as `(?u)` (Python requires
/// them at the start; they apply to every alternative).
fn split_leading_flags(pattern: &str) -> (String, &str) {
    let mut flags = String::new();
    let mut rest = pattern;
    while let Some(after) = rest.strip_prefix("(?") {
        let n = after
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        if n == 0 || !after[n..].starts_with(')') {
            break;
        }
        flags.push_str(&rest[..2 + n + 1]);
        rest = &after[n + 1..];
    }
    (flags, rest)
}

/// Top-level alternatives of a Python pattern (split on `|` outside groups
/// and character classes).
fn split_alternatives(pattern: &str) -> Vec<&str> {
    let mut alts = Vec::new();
    let mut depth = 0usize;
    let mut in_class = false;
    let mut class_start = 0;
    let mut start = 0;
    let mut chars = pattern.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => {
                in_class = true;
                class_start = i;
            }
            ']' if in_class => {
                // `[]` and `[^]` open a class whose first member is `]`.
                let prefix = &pattern[class_start..i];
                if prefix != "[" && prefix != "[^" {
                    in_class = false;
                }
            }
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth = depth.saturating_sub(1),
            '|' if !in_class && depth == 0 => {
                alts.push(&pattern[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    alts.push(&pattern[start..]);
    alts
}

/// If `alt` is `(?<=X)Y` with X a sequence of single-character items
/// (literals, escapes, classes), returns `(X, number of items, Y)`.
fn leading_lookbehind(alt: &str) -> Option<(&str, usize, &str)> {
    let body = alt.strip_prefix("(?<=")?;
    let mut items = 0;
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            ')' => return Some((&body[..i], items, &body[i + 1..])),
            '\\' => {
                let e = chars.next()?.1;
                if matches!(e, 'u' | 'U' | 'x') {
                    let n = match e {
                        'u' => 4,
                        'U' => 8,
                        _ => 2,
                    };
                    for _ in 0..n {
                        chars.next()?;
                    }
                } else if e.is_ascii_digit() || matches!(e, 'b' | 'B' | 'A' | 'Z' | 'N') {
                    return None;
                }
                items += 1;
            }
            '[' => {
                let mut first = true;
                loop {
                    let (_, c) = chars.next()?;
                    match c {
                        '\\' => {
                            chars.next()?;
                        }
                        '^' if first => continue,
                        ']' if !first => break,
                        _ => {}
                    }
                    first = false;
                }
                items += 1;
            }
            '(' | '|' | '*' | '+' | '?' | '{' | '^' | '$' => return None,
            _ => items += 1,
        }
    }
    None
}

/// A Python pattern translated to `regex`/`fancy-regex` syntax.
#[derive(Debug)]
struct Translated {
    /// The same language as the Python pattern.
    strict: String,
    /// The pattern with every look-around group removed (a superset).
    relaxed: String,
    has_lookaround: bool,
}

/// Python's `\w` (`str.isalnum()` or `_`; equal to `[\p{L}\p{N}_]` in
/// Unicode 14, verified against Python 3.11), class-body form.
const PY_WORD: &str = r"\p{L}\p{N}_";
/// Python's `\s` (`str.isspace()`), class-body form; Rust's `\s` lacks
/// `\x1c`..`\x1f`.
const PY_SPACE: &str = r"\x{9}-\x{d}\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}";

/// Translates Python `re` syntax to the `regex` crate's syntax (which
/// fancy-regex extends with look-around): `\uXXXX`/`\UXXXXXXXX` become
/// `\x{...}`, Python's `\w`/`\s` become explicit classes, every ASCII
/// punctuation literal is written as `\x{..}` so that characters special only
/// to the `regex` crate (`&`, `~`, `-` and `[` inside classes) stay literal,
/// `{,n}` becomes `{0,n}`, and the flag `u` (always on) is dropped.
fn translate(py: &str) -> Result<Translated, String> {
    let mut t = Translator {
        chars: py.chars().collect(),
        i: 0,
        strict: String::with_capacity(py.len() * 2),
        relaxed: String::with_capacity(py.len() * 2),
        suppress: 0,
        groups: Vec::new(),
        has_lookaround: false,
    };
    t.run()?;
    Ok(Translated {
        strict: t.strict,
        relaxed: t.relaxed,
        has_lookaround: t.has_lookaround,
    })
}

struct Translator {
    chars: Vec<char>,
    i: usize,
    strict: String,
    relaxed: String,
    /// > 0 while inside a look-around group: output goes to `strict` only.
    suppress: usize,
    /// For each open group: whether it is a look-around.
    groups: Vec<bool>,
    has_lookaround: bool,
}

impl Translator {
    fn peek(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.i += 1;
        Some(c)
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars().enumerate().all(|(k, c)| self.peek(k) == Some(c))
    }

    fn emit(&mut self, s: &str) {
        self.strict.push_str(s);
        if self.suppress == 0 {
            self.relaxed.push_str(s);
        }
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.next() {
            match c {
                '\\' => {
                    let e = self.escape(false)?;
                    self.emit(&e);
                }
                '[' => {
                    let class = self.class()?;
                    self.emit(&class);
                }
                '(' => self.open_group()?,
                ')' => {
                    let look = self.groups.pop().ok_or("unbalanced ')'")?;
                    self.emit(")");
                    if look {
                        self.suppress -= 1;
                    }
                }
                '{' => {
                    let q = self.quantifier();
                    self.emit(&q);
                }
                '^' | '$' | '.' | '|' | '*' | '+' | '?' => self.emit(c.encode_utf8(&mut [0; 4])),
                other => self.emit(&literal(other)),
            }
        }
        if !self.groups.is_empty() {
            return Err("unbalanced '('".into());
        }
        Ok(())
    }

    fn open_group(&mut self) -> Result<(), String> {
        if self.peek(0) != Some('?') {
            self.groups.push(false);
            self.emit("(");
            return Ok(());
        }
        for look in ["?=", "?!", "?<=", "?<!"] {
            if self.starts_with(look) {
                self.i += look.len();
                self.has_lookaround = true;
                self.suppress += 1;
                self.groups.push(true);
                self.emit(&format!("({look}"));
                return Ok(());
            }
        }
        if self.starts_with("?:") {
            self.i += 2;
            self.groups.push(false);
            self.emit("(?:");
            return Ok(());
        }
        if self.starts_with("?P<") {
            let close = (self.i..self.chars.len())
                .find(|&k| self.chars[k] == '>')
                .ok_or("unterminated group name")?;
            let name: String = self.chars[self.i + 3..close].iter().collect();
            self.i = close + 1;
            self.groups.push(false);
            self.emit(&format!("(?P<{name}>"));
            return Ok(());
        }
        if self.starts_with("?#") {
            while let Some(c) = self.next() {
                if c == ')' {
                    return Ok(());
                }
            }
            return Err("unterminated comment".into());
        }
        // Inline flags: `(?aiLmsux)` or scoped `(?i:...)`.
        self.i += 1;
        let mut flags = String::new();
        loop {
            match self.next() {
                Some('u') => {}
                Some(f @ ('i' | 'm' | 's' | 'x')) => flags.push(f),
                Some(')') => {
                    if !flags.is_empty() {
                        self.emit(&format!("(?{flags})"));
                    }
                    return Ok(());
                }
                Some(':') => {
                    self.groups.push(false);
                    if flags.is_empty() {
                        self.emit("(?:");
                    } else {
                        self.emit(&format!("(?{flags}:"));
                    }
                    return Ok(());
                }
                other => return Err(format!("unsupported group syntax (?{flags}{other:?}")),
            }
        }
    }

    /// `{m,n}` quantifiers pass through (`{,n}` becomes `{0,n}`); any other
    /// `{` is a literal in Python.
    fn quantifier(&mut self) -> String {
        let start = self.i;
        let mut k = start;
        let digits = |k: &mut usize, chars: &[char]| {
            let s = *k;
            while chars.get(*k).is_some_and(char::is_ascii_digit) {
                *k += 1;
            }
            chars[s..*k].iter().collect::<String>()
        };
        let lo = digits(&mut k, &self.chars);
        let comma = self.chars.get(k) == Some(&',');
        if comma {
            k += 1;
        }
        let hi = digits(&mut k, &self.chars);
        if self.chars.get(k) != Some(&'}') || (lo.is_empty() && hi.is_empty()) {
            return literal('{');
        }
        self.i = k + 1;
        let lo = if lo.is_empty() { "0".to_string() } else { lo };
        if comma {
            format!("{{{lo},{hi}}}")
        } else {
            format!("{{{lo}}}")
        }
    }

    fn hex(&mut self, n: usize) -> Result<char, String> {
        let digits: String = (0..n).filter_map(|_| self.next()).collect();
        if digits.len() != n {
            return Err(format!("truncated escape \\{digits}"));
        }
        u32::from_str_radix(&digits, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| format!("bad escape value {digits}"))
    }

    /// One escape sequence (after the backslash).
    fn escape(&mut self, in_class: bool) -> Result<String, String> {
        let c = self.next().ok_or("pattern ends with a backslash")?;
        Ok(match c {
            'u' => literal(self.hex(4)?),
            'U' => literal(self.hex(8)?),
            'x' => literal(self.hex(2)?),
            'n' => literal('\n'),
            't' => literal('\t'),
            'r' => literal('\r'),
            'f' => literal('\x0c'),
            'v' => literal('\x0b'),
            'a' => literal('\x07'),
            '0' => literal('\0'),
            'w' if in_class => PY_WORD.to_string(),
            'w' => format!("[{PY_WORD}]"),
            'W' => format!("[^{PY_WORD}]"),
            's' if in_class => PY_SPACE.to_string(),
            's' => format!("[{PY_SPACE}]"),
            'S' => format!("[^{PY_SPACE}]"),
            'd' => r"\d".to_string(),
            'D' => r"\D".to_string(),
            'b' if in_class => literal('\x08'),
            'b' => r"\b".to_string(),
            'B' => r"\B".to_string(),
            'A' => r"\A".to_string(),
            'Z' => r"\z".to_string(),
            c if c.is_ascii_alphanumeric() => return Err(format!("unsupported escape \\{c}")),
            c => literal(c),
        })
    }

    /// A character class, from after `[` to its closing `]`.
    fn class(&mut self) -> Result<String, String> {
        let mut out = String::from("[");
        if self.peek(0) == Some('^') {
            self.i += 1;
            out.push('^');
        }
        let mut first = true;
        loop {
            let c = self.next().ok_or("unterminated character class")?;
            if c == ']' && !first {
                break;
            }
            first = false;
            let item = if c == '\\' {
                self.escape(true)?
            } else {
                literal(c)
            };
            out.push_str(&item);
            if self.peek(0) == Some('-') && self.peek(1).is_some_and(|n| n != ']') {
                self.i += 1;
                let c2 = self.next().ok_or("unterminated character class")?;
                let hi = if c2 == '\\' {
                    self.escape(true)?
                } else {
                    literal(c2)
                };
                out.push('-');
                out.push_str(&hi);
            }
        }
        out.push(']');
        Ok(out)
    }
}

/// A literal character in `regex` syntax, safe inside and outside classes.
fn literal(c: char) -> String {
    if c.is_ascii_alphanumeric() || !c.is_ascii() {
        c.to_string()
    } else {
        format!("\\x{{{:x}}}", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_python_escapes_and_classes() {
        let t = translate(r"^\u00A6|[\U0001F600-\U0001F64F&~\-a]|\'s$|x{,3}|\w+").unwrap();
        assert_eq!(
            t.strict,
            r"^¦|[😀-🙏\x{26}\x{7e}\x{2d}a]|\x{27}s$|x{0,3}|[\p{L}\p{N}_]+"
        );
        assert!(!t.has_lookaround);
        let t = translate(r"(?<=[0-9])[+\-](?=[0-9-])").unwrap();
        assert!(t.has_lookaround);
        assert_eq!(t.relaxed, r"[\x{2b}\x{2d}]");
    }

    #[test]
    fn splits_alternatives_outside_groups_and_classes() {
        assert_eq!(
            split_alternatives(r"a|(b|c)|[|]|\||[]|]"),
            vec!["a", "(b|c)", "[|]", r"\|", "[]|]"]
        );
        assert_eq!(
            leading_lookbehind(r"(?<=°[FfCcKk])\.$"),
            Some(("°[FfCcKk]", 2, r"\.$"))
        );
        assert_eq!(leading_lookbehind(r"(?<=[0-9]+)x"), None);
    }

    #[test]
    fn searcher_matches_python_semantics() {
        // Leftmost start wins, then the first alternative in pattern order.
        let s = Searcher::new(r"b$|(?<=[0-9])(?:km|m)$|ab$").unwrap();
        assert_eq!(s.search("xab"), Some((1, 3)));
        assert_eq!(s.search("5km"), Some((1, 3)));
        assert_eq!(s.search("km"), None);
        let p = Searcher::new(r"^\.\.+|^\+(?![0-9])|^\+").unwrap();
        assert_eq!(p.search("+5"), Some((0, 1)));
        assert_eq!(p.search("...a"), Some((0, 3)));
        let i = Searcher::new(r"(?<=[0-9])[+\-](?=[0-9-])|--").unwrap();
        assert_eq!(i.find_all("1-2--3+x"), vec![(1, 2), (3, 4)]);
    }
}
