//! Dependency-parse scoping: which target a cue is about.
//!
//! When the recognizer ran spaCy's parser, every token of a [`Sentence`]
//! carries its dependency label and head. The engine's tokens are those
//! same tokens (less whitespace; see [`super::tokens`]), so each lies in
//! exactly one parse token; the map is found by offsets (a binary search),
//! which serves the fallback tokenizer too. The module answers the questions the engine asks:
//! is the target the cue's object (inside its argument subtree: "condemned
//! Y", "sanctions on Y"), its subject or possessor ("X invaded", "X's
//! aggression", "aggression by X"), and how far apart in the tree are they.
//! Without a parse the engine keeps its token-distance rules.

use crate::pipeline::Sentence;

use super::tokens::Token;

/// Dependencies that attach the doer of a predicate to it.
const SUBJECT_DEPS: &[&str] = &["nsubj", "nsubjpass", "csubj", "csubjpass", "poss", "agent"];
/// Dependencies that begin a new clause or an aside: a cue's object scope
/// does not reach through them.
const CLAUSE_DEPS: &[&str] = &[
    "relcl",
    "advcl",
    "parataxis",
    "ccomp",
    "csubj",
    "mark",
    "punct",
    "cc",
    "meta",
    "dep",
];
/// Dependencies that, as the first step below a cue, lead to something other
/// than its object: a coordinated predicate, a conjunction, or a modifier
/// that names the doer ("US sanctions on X").
const NOT_OBJECT_FIRST: &[&str] = &["conj", "cc", "compound", "amod", "nummod", "det"];
/// Prepositions of place and time: a phrase they head is a circumstance,
/// not the object of a cue ("the attack on scholars in Kabul").
const CIRCUMSTANCE_PREPS: &[&str] = &[
    "in",
    "at",
    "near",
    "across",
    "throughout",
    "during",
    "within",
    "around",
    "since",
    "until",
    "after",
    "before",
    "amid",
    "despite",
];
/// Possessive pronouns: a deed they own may be the target's own ("its
/// response"), so they do not stop a cue's object scope.
const PRONOUN_POSSESSORS: &[&str] = &["my", "our", "your", "his", "her", "its", "their"];
/// Most tree edges between a cue and its object after the cue's own words:
/// two prepositional phrases deep ("support for the people of X").
const MAX_OBJECT_EDGES: usize = 4;

/// Dependencies of a word used as a name, modifier or argument rather than
/// as a predicate.
const NOMINAL_DEPS: &[&str] = &[
    "compound",
    "amod",
    "poss",
    "nsubj",
    "nsubjpass",
    "dobj",
    "pobj",
    "attr",
    "appos",
    "npadvmod",
];

/// The parse of one sentence, indexed by the sentence's spaCy tokens.
#[derive(Debug, Clone)]
pub(crate) struct Parse {
    head: Vec<usize>,
    dep: Vec<String>,
    /// Lowercased token texts.
    text: Vec<String>,
    /// For each engine token, the spaCy token it lies in.
    map: Vec<Option<usize>>,
}

impl Parse {
    /// The parse of `sentence` mapped onto `tokens` (offsets relative to the
    /// sentence start `offset` in the document); `None` when the sentence
    /// has no parse.
    pub fn new(sentence: &Sentence, offset: usize, tokens: &[Token]) -> Option<Parse> {
        let n = sentence.tokens.len();
        if n == 0 {
            return None;
        }
        let mut head = Vec::with_capacity(n);
        let mut dep = Vec::with_capacity(n);
        let mut text = Vec::with_capacity(n);
        for (i, t) in sentence.tokens.iter().enumerate() {
            let (Some(d), Some(h)) = (&t.dep, t.head) else {
                return None;
            };
            let local = h
                .checked_sub(sentence.first_token)
                .filter(|&l| l < n)
                .unwrap_or(i);
            head.push(local);
            dep.push(d.to_ascii_lowercase());
            text.push(t.text.to_lowercase());
        }
        // spaCy's tokens are in text order and do not overlap: the first one
        // an engine token overlaps is the first that ends after its start,
        // if that one begins before its end (a binary search, not a scan).
        let spacy = &sentence.tokens;
        let map = tokens
            .iter()
            .map(|t| {
                let (s, e) = (t.start + offset, t.end + offset);
                let first = spacy.partition_point(|st| st.span.end_byte <= s);
                spacy
                    .get(first)
                    .filter(|st| st.span.start_byte < e)
                    .map(|_| first)
            })
            .collect();
        Some(Parse {
            head,
            dep,
            text,
            map,
        })
    }

    pub fn dep(&self, node: usize) -> &str {
        self.dep.get(node).map_or("", String::as_str)
    }

    fn head(&self, node: usize) -> usize {
        self.head.get(node).copied().unwrap_or(node)
    }

    /// The spaCy tokens of engine tokens `start..end`.
    pub fn nodes(&self, start: usize, end: usize) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .map
            .get(start..end.min(self.map.len()))
            .unwrap_or(&[])
            .iter()
            .flatten()
            .copied()
            .collect();
        out.dedup();
        out
    }

    /// The node of `nodes` whose head lies outside them.
    pub fn top(&self, nodes: &[usize]) -> Option<usize> {
        nodes
            .iter()
            .copied()
            .find(|&n| !nodes.contains(&self.head(n)) || self.head(n) == n)
            .or_else(|| nodes.first().copied())
    }

    /// `node` and its ancestors up to the root, nearest first.
    fn chain(&self, node: usize) -> Vec<usize> {
        let mut out = vec![node];
        let mut cur = node;
        while self.head(cur) != cur && out.len() <= self.head.len() {
            cur = self.head(cur);
            out.push(cur);
        }
        out
    }

    /// Edges on the tree path between two nodes, not counting conjunct
    /// edges: the members of a coordination ("Qatar, Jordan and the
    /// Palestinian Authority") stand as near as its first member.
    pub fn distance(&self, a: usize, b: usize) -> usize {
        let ca = self.chain(a);
        let cb = self.chain(b);
        let weight = |chain: &[usize]| chain.iter().filter(|&&n| self.dep(n) != "conj").count();
        for (i, x) in ca.iter().enumerate() {
            if let Some(j) = cb.iter().position(|y| y == x) {
                return weight(&ca[..i]) + weight(&cb[..j]);
            }
        }
        ca.len() + cb.len()
    }

    /// The path from `top` down to `node` (excluding `top`), top-most
    /// first, or `None` if `node` is not below `top`.
    fn path_below(&self, top: usize, node: usize) -> Option<Vec<usize>> {
        let chain = self.chain(node);
        let k = chain.iter().position(|&x| x == top)?;
        if k == 0 {
            return None;
        }
        let mut path = chain[..k].to_vec();
        path.reverse();
        Some(path)
    }

    /// Whether `occ` lies in the argument subtree of the cue whose top node
    /// is `cue`: below it, not through its subject or possessor, and not
    /// across a clause boundary.
    pub fn is_object(&self, cue: usize, cue_nodes: &[usize], occ: &[usize]) -> bool {
        occ.iter().any(|&o| {
            if cue_nodes.contains(&o) {
                return false;
            }
            let Some(path) = self.path_below(cue, o) else {
                return false;
            };
            // Inside a multi-word cue ("sanctions on"), the path starts at
            // the cue's last word.
            let inside = cue_nodes.contains(&path[0]);
            let rest: Vec<usize> = path
                .iter()
                .copied()
                .skip_while(|n| cue_nodes.contains(n))
                .collect();
            let Some(&first) = rest.first() else {
                return false;
            };
            if !inside
                && (SUBJECT_DEPS.contains(&self.dep(first))
                    || NOT_OBJECT_FIRST.contains(&self.dep(first)))
            {
                return false;
            }
            // "support X's response to Y": what the cue is about is X's
            // deed; Y is an argument of X's, not of the cue.
            let owned_by_other = rest[..rest.len() - 1].iter().any(|&n| {
                !occ.contains(&n)
                    && (0..self.head.len()).any(|c| {
                        c != n
                            && self.head(c) == n
                            && self.dep(c) == "poss"
                            && !occ.contains(&c)
                            && !rest.contains(&c)
                            && !PRONOUN_POSSESSORS.contains(&self.text[c].as_str())
                    })
            });
            !owned_by_other
                && rest.iter().filter(|&&n| self.dep(n) != "conj").count() <= MAX_OBJECT_EDGES
                && rest.iter().all(|&n| {
                    let circumstance = self.dep(n) == "prep"
                        && CIRCUMSTANCE_PREPS.contains(&self.text[n].as_str());
                    !CLAUSE_DEPS.contains(&self.dep(n)) && !circumstance
                })
        })
    }

    /// Whether `occ` is the doer of the cue: its subject, possessor,
    /// modifier ("Russian aggression"), passive agent ("by X"), the noun a
    /// relative clause or participle describes, the subject of a copula
    /// whose complement is the cue, or the possessor of a noun the cue
    /// characterises ("X's war of aggression").
    pub fn is_subject(&self, cue: usize, occ: &[usize]) -> bool {
        self.is_subject_at(cue, occ, 0)
    }

    fn is_subject_at(&self, cue: usize, occ: &[usize], depth: usize) -> bool {
        if depth > 2 {
            return false;
        }
        let attached = |n: usize, deps: &[&str]| {
            occ.iter()
                .any(|&o| self.head(o) == n && o != n && deps.contains(&self.dep(o)))
        };
        if attached(
            cue,
            &["nsubj", "nsubjpass", "poss", "compound", "amod", "npadvmod"],
        ) {
            return true;
        }
        // "aggression by X", passive "was invaded by X".
        for child in (0..self.head.len()).filter(|&c| self.head(c) == cue && c != cue) {
            let is_by = self.dep(child) == "agent" || self.dep(child) == "prep";
            if is_by && attached(child, &["pobj"]) {
                // Only the agentive "by".
                if self.dep(child) == "agent" || self.is_by(child) {
                    return true;
                }
            }
        }
        let h = self.head(cue);
        if h == cue {
            return false;
        }
        match self.dep(cue) {
            // Shared subject of coordinated or controlled verbs.
            "conj" | "xcomp" => self.is_subject_at(h, occ, depth + 1),
            // "X, which invaded ...", "X invading ...", "the illegitimate
            // X", "Maduro, a dictator".
            "relcl" | "acl" | "appos" => occ.contains(&h),
            // "the illegitimate X"; "X's malign activities", "Russian
            // destabilizing operations": a trait of the target's deed.
            "amod" | "compound" => occ.contains(&h) || attached(h, &["poss", "compound", "amod"]),
            // "X is aggressive", "X is a dictatorship", "X's conduct is
            // unacceptable".
            "acomp" | "attr" | "oprd" => {
                attached(h, &["nsubj", "nsubjpass"])
                    || (0..self.head.len()).any(|sj| {
                        sj != h
                            && self.head(sj) == h
                            && self.dep(sj).starts_with("nsubj")
                            && attached(sj, &["poss"])
                    })
            }
            // "X's war of aggression".
            "pobj" => {
                let n = self.head(h);
                self.dep(h) == "prep" && n != h && attached(n, &["poss", "compound", "amod"])
            }
            _ => false,
        }
    }

    fn is_by(&self, node: usize) -> bool {
        self.text.get(node).is_some_and(|w| w == "by")
    }

    /// Whether a word at engine token `i` is used as a predicate (not as a
    /// name, modifier or argument): reporting verbs count only then.
    pub fn is_predicate(&self, i: usize) -> bool {
        match self.map.get(i).copied().flatten() {
            Some(n) => !NOMINAL_DEPS.contains(&self.dep(n)),
            None => true,
        }
    }

    /// The node of engine token `i`.
    pub fn node(&self, i: usize) -> Option<usize> {
        self.map.get(i).copied().flatten()
    }

    /// The nominal subject of `node`, if it has one.
    pub fn subject(&self, node: usize) -> Option<usize> {
        (0..self.head.len())
            .find(|&c| c != node && self.head(c) == node && self.dep(c).starts_with("nsubj"))
    }

    /// Whether `node` is `top` or below it.
    pub fn within(&self, top: usize, node: usize) -> bool {
        self.chain(node).contains(&top)
    }
}
