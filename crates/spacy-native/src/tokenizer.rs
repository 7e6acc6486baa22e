//! spaCy's rule-based tokenizer, reimplemented natively with exact parity.
//!
//! The rules come from the pipeline's `tokenizer` file (msgpack): the
//! prefix, suffix and infix regular expressions, the URL matcher and the
//! special cases ("exceptions"). The algorithm follows spaCy 3.8's
//! `tokenizer.pyx` step by step, because parity is the whole point: the NER
//! features are computed per token, so one token boundary that differs from
//! Python changes the entities.
//!
//! 1. Split the text on Python `str.isspace()` transitions. One `' '` after a
//!    token is folded into that token's `whitespace` flag; any other
//!    whitespace becomes tokens of its own.
//! 2. A chunk that is a special case is emitted from the exceptions table.
//! 3. Otherwise prefixes and suffixes are peeled off in a loop, the middle is
//!    checked against the special cases and the URL matcher, and finally
//!    split on infixes.
//! 4. A phrase-matcher pass over the token texts applies the special cases
//!    that contain affixes or spaces (spaCy's `faster_heuristics`).
//!
//! The patterns are Python `re` syntax, run on Rust's regex engines by
//! [`super::pyre`].
//!
//! Known, documented differences from Python `re` (none occurs in spaCy's
//! English rules on real text): `$` matches only at the very end (Python also
//! matches before a final `\n`, but a chunk that ends in `\n` is all
//! whitespace, which no English affix rule matches); `\w` is `[\p{L}\p{N}_]`
//! (identical to Python for Unicode 14, the crate's Unicode tables are
//! newer); a look-around pattern that exceeds fancy-regex's backtracking
//! limit counts as "no match" instead of running for a very long time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use super::doc::Token;
use super::error::ModelError;
use super::pyre::{AnchoredMatcher, Searcher};
use super::unicode::py_isspace;

/// spaCy's attribute id of `ORTH` in the exceptions table.
const ATTR_ORTH: u64 = 65;
/// spaCy's attribute id of `NORM` in the exceptions table.
const ATTR_NORM: u64 = 67;
/// Chunk results kept across calls; beyond this the cache stops growing.
const MAX_CACHE_ENTRIES: usize = 200_000;
/// Chunks longer than this (bytes) are not cached: they are rare, and a
/// single huge chunk must not pin megabytes of memory.
const MAX_CACHED_CHUNK_BYTES: usize = 128;

/// One token of a tokenized chunk: its length in bytes and the NORM a special
/// case gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    len: usize,
    norm: Option<Box<str>>,
}

impl Piece {
    fn plain(len: usize) -> Piece {
        Piece { len, norm: None }
    }
}

/// spaCy's tokenizer for one pipeline. Cheap to share between threads: all
/// state is immutable except the chunk cache, which sits behind a lock.
pub struct Tokenizer {
    prefix: Option<Searcher>,
    suffix: Option<Searcher>,
    infix: Option<Searcher>,
    token_match: Option<AnchoredMatcher>,
    url_match: Option<AnchoredMatcher>,
    specials: HashMap<Box<str>, Box<[Piece]>>,
    /// Longest special-case key in bytes: longer strings skip the lookup,
    /// which keeps the affix loop linear on huge chunks.
    max_special_len: usize,
    matcher: SpecialMatcher,
    /// chunk text -> its tokens, like spaCy's `_cache` (output-neutral).
    cache: RwLock<HashMap<Box<str>, Box<[Piece]>>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("special_cases", &self.specials.len())
            .field("matcher_patterns", &self.matcher.len)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Loads the msgpack file `<model>/tokenizer` (the `path` is the file
    /// itself). Every error names the file.
    pub fn load(path: &Path) -> Result<Tokenizer, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_msgpack(&bytes).map_err(|what| ModelError::format(path, what))
    }

    /// Builds the tokenizer from the bytes of a `tokenizer` file.
    fn from_msgpack(bytes: &[u8]) -> Result<Tokenizer, String> {
        /// The fields of spaCy's `Tokenizer.to_bytes` that tokenizing
        /// needs; patterns are nil when the pipeline has none.
        #[derive(serde::Deserialize)]
        struct File {
            prefix_search: Option<String>,
            suffix_search: Option<String>,
            infix_finditer: Option<String>,
            token_match: Option<String>,
            url_match: Option<String>,
            faster_heuristics: Option<bool>,
            exceptions: Option<HashMap<String, Vec<HashMap<AttrKey, String>>>>,
        }
        let file: File =
            rmp_serde::from_slice(bytes).map_err(|e| format!("not a spaCy tokenizer file: {e}"))?;
        let searcher = |name: &str, p: Option<String>| -> Result<Option<Searcher>, String> {
            p.map(|p| Searcher::new(&p).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        let anchored = |name: &str, p: Option<String>| -> Result<Option<AnchoredMatcher>, String> {
            p.map(|p| AnchoredMatcher::new(&p).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        let faster_heuristics = file.faster_heuristics.unwrap_or(true);

        let mut tokenizer = Tokenizer {
            prefix: searcher("prefix_search", file.prefix_search)?,
            suffix: searcher("suffix_search", file.suffix_search)?,
            infix: searcher("infix_finditer", file.infix_finditer)?,
            token_match: anchored("token_match", file.token_match)?,
            url_match: anchored("url_match", file.url_match)?,
            specials: HashMap::new(),
            max_special_len: 0,
            matcher: SpecialMatcher::default(),
            cache: RwLock::new(HashMap::new()),
        };
        if let Some(exceptions) = file.exceptions {
            tokenizer.specials = parse_exceptions(exceptions)?;
        }
        tokenizer.max_special_len = tokenizer
            .specials
            .keys()
            .map(|k| k.len())
            .max()
            .unwrap_or(0);
        tokenizer.matcher = tokenizer.build_matcher(faster_heuristics);
        Ok(tokenizer)
    }

    /// Tokenizes `text` exactly like spaCy 3.8's `Tokenizer.__call__`.
    ///
    /// The tokens tile the text: their texts, each followed by one space
    /// where `whitespace` is set, concatenate to `text`. Never panics.
    pub fn tokenize(&self, text: &str) -> Vec<Token> {
        let mut tokens = Vec::with_capacity(text.len() / 5 + 1);
        let mut ctx = CallCache::default();
        self.tokenize_affixes(text, true, &mut tokens, Some(&mut ctx));
        self.flush_cache(ctx);
        self.apply_special_cases(text, &mut tokens);
        tokens
    }

    /// spaCy's `_tokenize_affixes`: whitespace split, then each chunk through
    /// special cases, cache and the affix rules.
    fn tokenize_affixes(
        &self,
        text: &str,
        with_special_cases: bool,
        out: &mut Vec<Token>,
        mut cache: Option<&mut CallCache>,
    ) {
        let Some(first) = text.chars().next() else {
            return;
        };
        let mut in_ws = py_isspace(first);
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if py_isspace(c) == in_ws {
                continue;
            }
            if start < i {
                self.tokenize_chunk(
                    text,
                    start,
                    i,
                    with_special_cases,
                    out,
                    cache.as_deref_mut(),
                );
            }
            if c == ' ' {
                // The single space after a token is its trailing whitespace.
                if let Some(last) = out.last_mut() {
                    last.whitespace = true;
                }
                start = i + 1;
            } else {
                start = i;
            }
            in_ws = !in_ws;
        }
        if start < text.len() {
            self.tokenize_chunk(text, start, text.len(), with_special_cases, out, cache);
            if let Some(last) = out.last_mut() {
                // spaCy: `string[-1] == " " and not in_ws`, always false here.
                last.whitespace = false;
            }
        }
    }

    /// Tokenizes `text[start..end]` (one whitespace-delimited chunk) and
    /// appends its tokens.
    fn tokenize_chunk(
        &self,
        text: &str,
        start: usize,
        end: usize,
        with_special_cases: bool,
        out: &mut Vec<Token>,
        cache: Option<&mut CallCache>,
    ) {
        let chunk = &text[start..end];
        if with_special_cases {
            if let Some(pieces) = self.special(chunk) {
                push_pieces(out, start, pieces);
                return;
            }
        }
        let Some(cache) = cache else {
            let pieces = self.split_chunk(chunk, with_special_cases);
            push_pieces(out, start, &pieces);
            return;
        };
        if let Some(pieces) = cache.local.get(chunk) {
            push_pieces(out, start, pieces);
            return;
        }
        {
            let shared = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let Some(pieces) = shared.get(chunk) {
                push_pieces(out, start, pieces);
                return;
            }
        }
        let pieces = self.split_chunk(chunk, with_special_cases);
        push_pieces(out, start, &pieces);
        if chunk.len() <= MAX_CACHED_CHUNK_BYTES {
            cache.local.insert(chunk.into(), pieces.into_boxed_slice());
        }
    }

    /// Moves this call's new chunk results into the shared cache.
    fn flush_cache(&self, ctx: CallCache) {
        if ctx.local.is_empty() {
            return;
        }
        let mut shared = self.cache.write().unwrap_or_else(|e| e.into_inner());
        for (chunk, pieces) in ctx.local {
            if shared.len() >= MAX_CACHE_ENTRIES {
                break;
            }
            shared.insert(chunk, pieces);
        }
    }

    /// The special-case tokens of `s`, if `s` is a special case.
    fn special(&self, s: &str) -> Option<&[Piece]> {
        if s.len() > self.max_special_len {
            return None;
        }
        self.specials.get(s).map(|p| &p[..])
    }

    fn is_special(&self, s: &str) -> bool {
        self.special(s).is_some()
    }

    /// spaCy's `_split_affixes` + `_attach_tokens` for one chunk that is not
    /// itself a special case: the pieces in text order.
    fn split_chunk(&self, chunk: &str, with_special_cases: bool) -> Vec<Piece> {
        let mut prefixes: Vec<Piece> = Vec::new();
        let mut suffixes: Vec<Piece> = Vec::new();
        let (mut lo, mut hi) = (0, chunk.len());
        let mut last_size = None;
        while lo < hi && last_size != Some(hi - lo) {
            let s = &chunk[lo..hi];
            if self.token_match.as_ref().is_some_and(|m| m.is_match(s)) {
                break;
            }
            if with_special_cases && self.is_special(s) {
                break;
            }
            last_size = Some(hi - lo);
            let pre = self.find_prefix(s);
            if pre != 0 {
                let minus_pre = &s[pre..];
                if !minus_pre.is_empty() && with_special_cases && self.is_special(minus_pre) {
                    prefixes.push(Piece::plain(pre));
                    lo += pre;
                    break;
                }
            }
            let suf = self.find_suffix(s, pre);
            if suf != 0 {
                let minus_suf = &s[..s.len() - suf];
                if !minus_suf.is_empty() && with_special_cases && self.is_special(minus_suf) {
                    suffixes.push(Piece::plain(suf));
                    hi -= suf;
                    break;
                }
            }
            if pre != 0 && suf != 0 && pre + suf <= s.len() {
                prefixes.push(Piece::plain(pre));
                suffixes.push(Piece::plain(suf));
                lo += pre;
                hi -= suf;
            } else if pre != 0 {
                prefixes.push(Piece::plain(pre));
                lo += pre;
            } else if suf != 0 {
                suffixes.push(Piece::plain(suf));
                hi -= suf;
            }
        }

        let mut pieces = prefixes;
        let middle = &chunk[lo..hi];
        if !middle.is_empty() {
            if let Some(special) = with_special_cases.then(|| self.special(middle)).flatten() {
                pieces.extend_from_slice(special);
            } else if self
                .token_match
                .as_ref()
                .is_some_and(|m| m.is_match(middle))
                || self.url_match.as_ref().is_some_and(|m| m.is_match(middle))
            {
                pieces.push(Piece::plain(middle.len()));
            } else {
                self.split_infixes(middle, &mut pieces);
            }
        }
        pieces.extend(suffixes.into_iter().rev());
        pieces
    }

    /// Splits `s` on the infix matches, as `_attach_tokens` does: a match at
    /// position 0 is ignored, text between matches and non-empty matches
    /// become tokens.
    fn split_infixes(&self, s: &str, pieces: &mut Vec<Piece>) {
        let matches = match &self.infix {
            Some(infix) => infix.find_all(s),
            None => Vec::new(),
        };
        let mut start = 0;
        for (m_start, m_end) in matches {
            if m_start == 0 {
                continue;
            }
            if m_start != start {
                pieces.push(Piece::plain(m_start.saturating_sub(start)));
            }
            if m_start != m_end {
                pieces.push(Piece::plain(m_end - m_start));
            }
            start = m_end;
        }
        if start < s.len() {
            pieces.push(Piece::plain(s.len() - start));
        }
    }

    /// spaCy's `find_prefix`: the prefix length, as the number of bytes of
    /// the first *n* characters of `s`, where *n* is the match length in
    /// characters (spaCy slices `string[:n]`).
    fn find_prefix(&self, s: &str) -> usize {
        let Some((a, b)) = self.prefix.as_ref().and_then(|p| p.search(s)) else {
            return 0;
        };
        if a == 0 {
            return b;
        }
        let n = s[a..b].chars().count();
        s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
    }

    /// spaCy's `find_suffix` on `s[pre..]`, returned as the number of bytes
    /// of the last *n* characters of `s` (spaCy slices `string[-n:]`).
    fn find_suffix(&self, s: &str, pre: usize) -> usize {
        let rest = &s[pre..];
        let Some((a, b)) = self.suffix.as_ref().and_then(|p| p.search(rest)) else {
            return 0;
        };
        if b == rest.len() {
            return b - a;
        }
        let n = rest[a..b].chars().count();
        if n == 0 {
            return 0;
        }
        s.char_indices()
            .rev()
            .nth(n - 1)
            .map_or(s.len(), |(i, _)| s.len() - i)
    }

    /// Whether spaCy would put the special case `key` into its phrase
    /// matcher, and with which token texts.
    fn build_matcher(&self, faster_heuristics: bool) -> SpecialMatcher {
        let mut matcher = SpecialMatcher::default();
        let mut keys: Vec<&str> = self.specials.keys().map(|k| &**k).collect();
        keys.sort_unstable();
        for key in keys {
            let wanted = !faster_heuristics
                || self.find_prefix(key) != 0
                || self
                    .infix
                    .as_ref()
                    .is_some_and(|i| i.find_first(key).is_some())
                || self.find_suffix(key, 0) != 0
                || key.contains(' ');
            if !wanted {
                continue;
            }
            let mut tokens = Vec::new();
            self.tokenize_affixes(key, false, &mut tokens, None);
            let texts: Pattern = tokens.iter().map(|t| key[t.start..t.end].into()).collect();
            matcher.add(texts);
        }
        matcher
    }

    /// spaCy's `_apply_special_cases`: find the matcher's spans, keep the
    /// longest non-overlapping ones and replace each by its special case.
    fn apply_special_cases(&self, text: &str, tokens: &mut Vec<Token>) {
        if self.matcher.len == 0 {
            return;
        }
        let mut spans = self.matcher.find(text, tokens);
        if spans.is_empty() {
            return;
        }
        // spaCy sorts by (length, start descending) and walks from the back:
        // longest first, then leftmost. A span is kept if its first and last
        // tokens are unseen; every walked span marks its tokens as seen.
        spans.sort_unstable_by(|a, b| {
            let (la, lb) = (a.1 - a.0, b.1 - b.0);
            la.cmp(&lb).then(b.0.cmp(&a.0))
        });
        let mut seen = vec![false; tokens.len()];
        let mut kept = Vec::new();
        for &(s, e) in spans.iter().rev() {
            if !seen[s] && !seen[e - 1] {
                kept.push((s, e));
            }
            seen[s..e].iter_mut().for_each(|x| *x = true);
        }
        kept.sort_unstable();

        let mut result = Vec::with_capacity(tokens.len() + kept.len());
        let mut i = 0;
        for (s, e) in kept {
            if s < i {
                continue; // cannot happen: kept spans never overlap
            }
            result.extend_from_slice(&tokens[i..s]);
            i = e;
            let start = tokens[s].start;
            let span_text = &text[start..tokens[e - 1].end];
            match self.special(span_text) {
                None => result.extend_from_slice(&tokens[s..e]),
                Some(pieces) => {
                    push_pieces(&mut result, start, pieces);
                    if let Some(last) = result.last_mut() {
                        last.whitespace = tokens[e - 1].whitespace;
                    }
                }
            }
        }
        result.extend_from_slice(&tokens[i..]);
        *tokens = result;
    }
}

/// Appends `pieces` as tokens starting at byte `start` of the text.
fn push_pieces(out: &mut Vec<Token>, mut start: usize, pieces: &[Piece]) {
    for piece in pieces {
        out.push(Token {
            start,
            end: start + piece.len,
            whitespace: false,
            norm: piece.norm.clone(),
        });
        start += piece.len;
    }
}

/// New chunk results of one `tokenize` call, merged into the shared cache at
/// the end so that the write lock is taken once per call.
#[derive(Default)]
struct CallCache {
    local: HashMap<Box<str>, Box<[Piece]>>,
}

/// A key of a special case's token: a spaCy attribute id (65, 67) or its
/// name (`"ORTH"`, `"NORM"`); both spellings occur in the files.
#[derive(Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(untagged)]
enum AttrKey {
    Id(u64),
    Name(String),
}

impl AttrKey {
    fn id(&self) -> Option<u64> {
        match self {
            AttrKey::Id(id) => Some(*id),
            AttrKey::Name(name) => match name.as_str() {
                "ORTH" => Some(ATTR_ORTH),
                "NORM" => Some(ATTR_NORM),
                _ => None,
            },
        }
    }
}

/// Checks the `exceptions` map (chunk -> list of `{ORTH, NORM}` maps) and
/// turns it into the special-case table: the ORTH strings must spell the
/// chunk.
fn parse_exceptions(
    map: HashMap<String, Vec<HashMap<AttrKey, String>>>,
) -> Result<HashMap<Box<str>, Box<[Piece]>>, String> {
    let mut specials = HashMap::with_capacity(map.len());
    for (key, tokens) in map {
        let mut pieces = Vec::with_capacity(tokens.len());
        let mut total = 0;
        for attrs in &tokens {
            let get = |want: u64| {
                attrs
                    .iter()
                    .find(|(k, _)| k.id() == Some(want))
                    .map(|(_, v)| v.as_str())
            };
            let orth = get(ATTR_ORTH)
                .ok_or_else(|| format!("exceptions[{key:?}] has a token without ORTH"))?;
            total += orth.len();
            pieces.push(Piece {
                len: orth.len(),
                norm: get(ATTR_NORM).map(Into::into),
            });
        }
        if total != key.len() || pieces.iter().any(|p| p.len == 0) {
            return Err(format!(
                "exceptions[{key:?}]: the ORTH strings do not spell the key"
            ));
        }
        specials.insert(key.into(), pieces.into_boxed_slice());
    }
    Ok(specials)
}

/// The phrase matcher spaCy builds from the special cases that its chunk
/// lookup can miss (they contain affixes or spaces): token-text sequences,
/// indexed by their first token.
/// The token texts of one special case, as the matcher compares them.
type Pattern = Box<[Box<str>]>;

#[derive(Debug, Default)]
struct SpecialMatcher {
    by_first: HashMap<Box<str>, Vec<Pattern>>,
    len: usize,
}

impl SpecialMatcher {
    fn add(&mut self, texts: Pattern) {
        let Some(first) = texts.first().cloned() else {
            return;
        };
        let entry = self.by_first.entry(first).or_default();
        if !entry.contains(&texts) {
            entry.push(texts);
            self.len += 1;
        }
    }

    /// All `(start, end)` token spans whose texts equal a pattern.
    fn find(&self, text: &str, tokens: &[Token]) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        for (i, token) in tokens.iter().enumerate() {
            let Some(patterns) = self.by_first.get(token.text(text)) else {
                continue;
            };
            for pattern in patterns {
                let end = i + pattern.len();
                if end <= tokens.len()
                    && pattern[1..]
                        .iter()
                        .zip(&tokens[i + 1..end])
                        .all(|(p, t)| **p == *t.text(text))
                {
                    spans.push((i, end));
                }
            }
        }
        spans
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// The sm model's tokenizer ([`crate::sm_model_dir`]). Fails (never
    /// skips) when it is missing.
    fn model_tokenizer() -> &'static Tokenizer {
        static TOK: OnceLock<Tokenizer> = OnceLock::new();
        TOK.get_or_init(|| {
            let path = crate::sm_model_dir().join("tokenizer");
            Tokenizer::load(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run scripts/fetch-models first)", path.display())
            })
        })
    }

    /// `(texts joined by '|', trailing-space flags as 0/1)`.
    fn tok(text: &str) -> (String, String) {
        let tokenizer = model_tokenizer();
        let tokens = tokenizer.tokenize(text);
        let texts: Vec<&str> = tokens.iter().map(|t| t.text(text)).collect();
        let flags: String = tokens
            .iter()
            .map(|t| if t.whitespace { '1' } else { '0' })
            .collect();
        (texts.join("|"), flags)
    }

    #[test]
    fn notes_table_section_7() {
        let cases = [
            (
                "Let's go to N.Y.C. (today)!!",
                "Let|'s|go|to|N.Y.C.|(|today|)|!|!",
                "0111100000",
            ),
            (
                "e-mail me at jane.doe@example.com or https://spacy.io/usage?x=1.",
                "e|-|mail|me|at|jane.doe@example.com|or|https://spacy.io/usage?x=1|.",
                "001111100",
            ),
            (
                "I can't, won't... U.S.-based $3.5bn/yr :-) ...",
                "I|ca|n't|,|wo|n't|...|U.S.-based|$|3.5bn|/|yr|:-)|...",
                "10010011000110",
            ),
            (
                "  leading\ttab\n\nnew  double",
                "  |leading|\t|tab|\n\n|new| |double",
                "00000100",
            ),
            (
                "Prices rose 38.5%—again—to €26.4m in mid-2022.",
                "Prices|rose|38.5%—again|—|to|€|26.4|m|in|mid-2022|.",
                "11001001100",
            ),
            (
                "He's 5'10\" tall; 3x4=12 and 10km.",
                "He|'s|5'10|\"|tall|;|3x4=12|and|10|km|.",
                "01010111000",
            ),
            ("10a.m.", "10|a.m.", "00"),
            ("ain't?", "ai|n't|?", "000"),
            ("(a.m.)", "(|a.m.|)", "000"),
        ];
        for (text, want, flags) in cases {
            assert_eq!(tok(text), (want.to_string(), flags.to_string()), "{text:?}");
        }
    }

    #[test]
    fn special_case_norms() {
        let tokenizer = model_tokenizer();
        let text = "I can't. She’s gonna go";
        let tokens = tokenizer.tokenize(text);
        let norms: Vec<(&str, Option<&str>)> = tokens
            .iter()
            .map(|t| (t.text(text), t.norm.as_deref()))
            .collect();
        assert_eq!(
            norms,
            vec![
                ("I", None),
                ("ca", Some("can")),
                ("n't", Some("not")),
                (".", None),
                ("She", Some("she")),
                ("’s", Some("'s")),
                ("gon", Some("going")),
                ("na", Some("to")),
                ("go", None),
            ]
        );
    }

    #[test]
    fn edge_inputs_do_not_panic() {
        let tokenizer = model_tokenizer();
        for text in [
            "",
            " ",
            "  ",
            "\n",
            "\0",
            "a\u{301}",
            "\u{200f}x",
            "👍🏽!",
            "\u{10ffff}",
        ] {
            let tokens = tokenizer.tokenize(text);
            let mut rebuilt = String::new();
            for t in &tokens {
                rebuilt.push_str(t.text(text));
                if t.whitespace {
                    rebuilt.push(' ');
                }
            }
            assert_eq!(rebuilt, text);
        }
        assert!(tokenizer.tokenize("").is_empty());
    }
}
