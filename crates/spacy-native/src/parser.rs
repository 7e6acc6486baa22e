//! spaCy's `DependencyParser` at inference: TransitionBasedParser.v2 with
//! `state_type = "parser"` (8 feature slots), the arc-eager transition system
//! (`arc_eager.pyx`, `_state.pxd`), greedy decoding, then the annotation
//! steps spaCy runs on the finished state: heads and labels from the arcs,
//! `ROOT` for unattached tokens, `set_children_from_heads` (edges and
//! sentence starts), and `nonproj.deprojectivize` for labels `X||Y`.
//!
//! The network reads the shared `tok2vec` output through a listener, then a
//! `linear` 96→64 layer, then the state network shared with NER
//! ([`super::transition::StateNet`]).

use std::path::Path;
use std::sync::Arc;

use super::error::ModelError;
use super::thinc::ThincModel;
use super::tok2vec::Linear;
use super::transition::{arg_max_if_valid, load_moves, Scratch, StateNet};

/// Feature slots of the parser state: B0, B1, S0, S1, S2, L(B0,1), L(S0,1),
/// R(S0,1) (`set_context_tokens` with n = 8).
pub const N_FEATURES: usize = 8;

/// Separator of projectivisation-decorated labels (`pobj||prep`).
pub const DELIMITER: &str = "||";

/// Arc-eager move types, numbered as in `arc_eager.pyx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Shift = 0,
    Reduce = 1,
    Left = 2,
    Right = 3,
    Break = 4,
}

impl Move {
    fn from_code(code: u32) -> Option<Move> {
        match code {
            0 => Some(Move::Shift),
            1 => Some(Move::Reduce),
            2 => Some(Move::Left),
            3 => Some(Move::Right),
            4 => Some(Move::Break),
            _ => None,
        }
    }

    fn letter(self) -> &'static str {
        match self {
            Move::Shift => "S",
            Move::Reduce => "D",
            Move::Left => "L",
            Move::Right => "R",
            Move::Break => "B",
        }
    }
}

/// One class of the parser: a move and its label (index into the label
/// table; labels are only meaningful for LEFT/RIGHT/BREAK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub mv: Move,
    pub label: Arc<str>,
}

impl Action {
    /// spaCy's class name, e.g. `S`, `L-det`, `B-ROOT`.
    pub fn name(&self) -> String {
        if self.label.is_empty() {
            self.mv.letter().to_owned()
        } else {
            format!("{}-{}", self.mv.letter(), self.label)
        }
    }
}

/// The parse of one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parse {
    /// Absolute head index of every token (a root is its own head).
    pub heads: Vec<usize>,
    /// Dependency label of every token (`ROOT` for roots).
    pub deps: Vec<Arc<str>>,
    /// Whether each token starts a sentence (`token.is_sent_start`).
    pub sent_starts: Vec<bool>,
}

/// One document for the parser.
#[derive(Debug, Clone, Copy)]
pub struct ParserInput<'a> {
    /// Output of the shared tok2vec for the doc's tokens (`n × 96`).
    pub tokvecs: &'a [f32],
    /// Whether each token is whitespace (`IS_SPACE`), used by
    /// deprojectivisation.
    pub is_space: &'a [bool],
}

/// The parser component.
#[derive(Debug, Clone)]
pub struct Parser {
    /// The `list2array >> linear` projection after the listener.
    proj: Linear,
    net: StateNet,
    actions: Vec<Action>,
    root: Arc<str>,
    labels: Vec<Arc<str>>,
}

/// An arc of the state (`ArcC`); a deleted arc in the middle of a list has
/// child −1, as in spaCy.
#[derive(Debug, Clone, Copy)]
struct ArcC {
    child: isize,
    label: u32,
}

/// The arc-eager state (`StateC`) of one document.
struct State {
    n: usize,
    stack: Vec<usize>,
    rebuffer: Vec<usize>,
    b_i: usize,
    heads: Vec<isize>,
    labels: Vec<u32>,
    left_arcs: Vec<Vec<ArcC>>,
    right_arcs: Vec<Vec<ArcC>>,
    unshiftable: Vec<bool>,
    sent_start: Vec<bool>,
}

impl State {
    fn new(n: usize) -> State {
        State {
            n,
            stack: Vec::new(),
            rebuffer: Vec::new(),
            b_i: 0,
            heads: vec![-1; n],
            labels: vec![0; n],
            left_arcs: vec![Vec::new(); n],
            right_arcs: vec![Vec::new(); n],
            unshiftable: vec![false; n],
            sent_start: vec![false; n],
        }
    }

    fn s(&self, i: usize) -> isize {
        if i >= self.stack.len() {
            -1
        } else {
            self.stack[self.stack.len() - 1 - i] as isize
        }
    }

    fn b(&self, i: usize) -> isize {
        if i < self.rebuffer.len() {
            return self.rebuffer[self.rebuffer.len() - 1 - i] as isize;
        }
        let b_i = self.b_i + (i - self.rebuffer.len());
        if b_i >= self.n {
            -1
        } else {
            b_i as isize
        }
    }

    fn nth_child(arcs: &[Vec<ArcC>], head: isize, idx: usize) -> isize {
        if head < 0 {
            return -1;
        }
        let mut k = 0;
        for arc in arcs[head as usize].iter().rev() {
            if arc.child != -1 {
                k += 1;
                if k == idx {
                    return arc.child;
                }
            }
        }
        -1
    }

    fn l(&self, head: isize, idx: usize) -> isize {
        Self::nth_child(&self.left_arcs, head, idx)
    }

    fn r(&self, head: isize, idx: usize) -> isize {
        Self::nth_child(&self.right_arcs, head, idx)
    }

    fn buffer_length(&self) -> usize {
        (self.n - self.b_i) + self.rebuffer.len()
    }

    fn is_final(&self) -> bool {
        self.stack.is_empty() && self.buffer_length() == 0
    }

    fn is_sent_start(&self, word: isize) -> bool {
        word >= 0 && (word as usize) < self.n && self.sent_start[word as usize]
    }

    fn is_unshiftable(&self, word: isize) -> bool {
        word >= 0 && (word as usize) < self.n && self.unshiftable[word as usize]
    }

    fn features(&self) -> [isize; N_FEATURES] {
        let b0 = self.b(0);
        let s0 = self.s(0);
        [
            b0,
            self.b(1),
            s0,
            self.s(1),
            self.s(2),
            self.l(b0, 1),
            self.l(s0, 1),
            self.r(s0, 1),
        ]
    }

    fn push(&mut self) {
        let b0 = match self.rebuffer.pop() {
            Some(b) => b,
            None => {
                self.b_i += 1;
                self.b_i - 1
            }
        };
        self.stack.push(b0);
    }

    fn unshift(&mut self) {
        if let Some(s0) = self.stack.pop() {
            self.unshiftable[s0] = true;
            self.rebuffer.push(s0);
        }
    }

    fn del_arc(&mut self, head: usize, child: usize) {
        let arcs = if head > child {
            &mut self.left_arcs[head]
        } else {
            &mut self.right_arcs[head]
        };
        let Some(last) = arcs.last() else { return };
        if last.child == child as isize {
            arcs.pop();
        } else {
            let len = arcs.len();
            if let Some(a) = arcs[..len - 1]
                .iter_mut()
                .find(|a| a.child == child as isize)
            {
                a.child = -1;
                a.label = 0;
            }
        }
    }

    fn add_arc(&mut self, head: usize, child: usize, label: u32) {
        if self.heads[child] >= 0 {
            self.del_arc(self.heads[child] as usize, child);
        }
        let arc = ArcC {
            child: child as isize,
            label,
        };
        if head > child {
            self.left_arcs[head].push(arc);
        } else {
            self.right_arcs[head].push(arc);
        }
        self.heads[child] = head as isize;
        self.labels[child] = label;
    }

    /// Validity of each move type (`ArcEager.set_valid`, no preset sentence
    /// boundaries: `cannot_sent_start` is always false).
    fn valid_moves(&self) -> [bool; 5] {
        let depth = self.stack.len();
        let blen = self.buffer_length();
        let b0 = self.b(0);
        let b1 = self.b(1);
        let shift = if depth == 0 {
            true
        } else {
            blen >= 2 && !self.is_sent_start(b0) && !self.is_unshiftable(b0)
        };
        let reduce = depth != 0;
        let arc = depth != 0 && blen != 0 && !self.is_sent_start(b0);
        let brk = blen >= 2 && b1 == b0 + 1 && !self.is_sent_start(b1);
        [shift, reduce, arc, arc, brk]
    }

    fn apply(&mut self, mv: Move, label: u32) {
        match mv {
            Move::Shift => self.push(),
            Move::Reduce => {
                let s0 = self.s(0);
                if (s0 >= 0 && self.heads[s0 as usize] >= 0) || self.stack.len() == 1 {
                    self.stack.pop();
                } else {
                    self.unshift();
                }
            }
            Move::Left => {
                let (b0, s0) = (self.b(0), self.s(0));
                self.add_arc(b0 as usize, s0 as usize, label);
                // set_reshiftable(B0)
                self.unshiftable[b0 as usize] = false;
                self.stack.pop();
            }
            Move::Right => {
                let (b0, s0) = (self.b(0), self.s(0));
                self.add_arc(s0 as usize, b0 as usize, label);
                self.push();
            }
            Move::Break => {
                let b1 = self.b(1);
                if b1 >= 0 {
                    self.sent_start[b1 as usize] = true;
                }
            }
        }
    }

    fn force_final(&mut self) {
        self.stack.clear();
        self.rebuffer.clear();
        self.b_i = self.n;
    }
}

/// `set_children_from_heads` of `doc.pyx` on absolute heads: fills the
/// left/right edges (iterating as spaCy does for non-projective trees) and
/// returns the sentence starts (the left edge of every root).
fn set_children_from_heads(
    heads: &[usize],
    l_edge: &mut Vec<usize>,
    r_edge: &mut Vec<usize>,
) -> Vec<bool> {
    let n = heads.len();
    *l_edge = (0..n).collect();
    *r_edge = (0..n).collect();
    let mut loop_count = 0;
    loop {
        let ok = lr_edges_pass(heads, l_edge, r_edge);
        if ok || loop_count > 10 {
            break;
        }
        loop_count += 1;
    }
    let mut starts = vec![false; n];
    for i in 0..n {
        if heads[i] == i {
            starts[l_edge[i]] = true;
        }
    }
    starts
}

/// One pass of `_set_lr_kids_and_edges`; true when every head lies within
/// its sentence.
fn lr_edges_pass(heads: &[usize], l_edge: &mut [usize], r_edge: &mut [usize]) -> bool {
    let n = heads.len();
    for i in 0..n {
        let h = heads[i];
        if l_edge[i] < l_edge[h] {
            l_edge[h] = l_edge[i];
        }
        if r_edge[i] > r_edge[h] {
            r_edge[h] = r_edge[i];
        }
    }
    for i in (0..n).rev() {
        let h = heads[i];
        if r_edge[i] > r_edge[h] {
            r_edge[h] = r_edge[i];
        }
        if l_edge[i] < l_edge[h] {
            l_edge[h] = l_edge[i];
        }
    }
    let mut is_start = vec![false; n];
    for i in 0..n {
        if heads[i] == i {
            is_start[l_edge[i]] = true;
        }
    }
    let mut cur_start = 0;
    for (i, &starts) in is_start.iter().enumerate() {
        if (i > 0 && starts) || i == n - 1 {
            let cur_end = i;
            if heads[cur_start..cur_end]
                .iter()
                .any(|&h| h < cur_start || h > cur_end)
            {
                return false;
            }
            cur_start = i;
        }
    }
    true
}

impl Parser {
    /// Loads `<parser_dir>/model` and `<parser_dir>/moves`; `width` is the
    /// width of the listened-to tok2vec.
    pub fn load(parser_dir: &Path, width: usize) -> Result<Parser, ModelError> {
        let moves_path = parser_dir.join("moves");
        let mut actions = Vec::new();
        for (code, label) in load_moves(&moves_path)? {
            let mv = Move::from_code(code).ok_or_else(|| {
                ModelError::format(&moves_path, format!("unknown arc-eager move type {code}"))
            })?;
            actions.push(Action {
                mv,
                label: label.into(),
            });
        }
        let model = ThincModel::load(&parser_dir.join("model"))?;
        let net = StateNet::from_thinc(&model, N_FEATURES, actions.len())?;
        let proj_node = model
            .nodes_named("linear")
            .find(|n| n.dim("nI") == Some(width as i64) && n.dim("nO") == Some(net.n_in as i64))
            .ok_or_else(|| {
                model.error(format!(
                    "no linear layer {width}→{} after the tok2vec listener",
                    net.n_in
                ))
            })?;
        let proj = Linear::load(&model, proj_node, width, net.n_in)?;
        let mut labels: Vec<Arc<str>> = actions
            .iter()
            .filter(|a| !a.label.is_empty())
            .map(|a| a.label.clone())
            .collect();
        labels.sort();
        labels.dedup();
        Ok(Parser {
            proj,
            net,
            actions,
            root: Arc::from("ROOT"),
            labels,
        })
    }

    /// The classes in model order (106 for en_core_web_sm).
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The labels of the moves (including decorated `X||Y` ones), sorted.
    pub fn labels(&self) -> &[Arc<str>] {
        &self.labels
    }

    /// Parses a batch of documents.
    pub fn predict(&self, docs: &[ParserInput<'_>]) -> Vec<Parse> {
        let width = self.proj.n_in;
        let total: usize = docs.iter().map(|d| d.tokvecs.len() / width).sum();
        let mut flat = Vec::with_capacity(total * width);
        for d in docs {
            flat.extend_from_slice(&d.tokvecs[..d.tokvecs.len() / width * width]);
        }
        let mut projected = vec![0.0f32; total * self.proj.n_out];
        self.proj.forward(total, &flat, &mut projected);
        drop(flat);
        let cached = self.net.precompute(total, &projected);
        drop(projected);
        let cw = self.net.cached_width();
        let mut scratch = self.net.scratch();
        let mut out = Vec::with_capacity(docs.len());
        let mut offset = 0;
        for d in docs {
            let n = d.tokvecs.len() / width;
            out.push(self.parse_doc(
                &cached[offset * cw..(offset + n) * cw],
                n,
                d.is_space,
                &mut scratch,
            ));
            offset += n;
        }
        out
    }

    fn parse_doc(&self, cached: &[f32], n: usize, is_space: &[bool], s: &mut Scratch) -> Parse {
        if n == 0 {
            return Parse::default();
        }
        let mut st = State::new(n);
        // Every step either consumes a buffer token or pops the stack; the
        // bound only guards against a logic error looping forever.
        let mut steps = 0usize;
        while !st.is_final() {
            steps += 1;
            if steps > 4 * n + 16 {
                st.force_final();
                break;
            }
            self.net.score_state(cached, &st.features(), s);
            let valid = st.valid_moves();
            match arg_max_if_valid(&s.scores, |c| valid[self.actions[c].mv as usize]) {
                Some(c) => st.apply(self.actions[c].mv, c as u32),
                None => st.force_final(),
            }
        }
        self.annotate(&st, is_space)
    }

    /// `ArcEager.set_annotations` + `set_children_from_heads` +
    /// `deprojectivize` (+ its `set_children_from_heads`).
    fn annotate(&self, st: &State, is_space: &[bool]) -> Parse {
        let n = st.n;
        let mut heads: Vec<usize> = (0..n).collect();
        let mut deps: Vec<Arc<str>> = vec![self.root.clone(); n];
        for i in 0..n {
            if st.heads[i] >= 0 && st.heads[i] as usize != i {
                heads[i] = st.heads[i] as usize;
                deps[i] = self.actions[st.labels[i] as usize].label.clone();
            }
        }
        let mut l_edge = Vec::new();
        let mut r_edge = Vec::new();
        let mut sent_starts = set_children_from_heads(&heads, &mut l_edge, &mut r_edge);
        let mut changed = false;
        for i in 0..n {
            let label = deps[i].clone();
            let Some((new_label, head_label)) = label.split_once(DELIMITER) else {
                continue;
            };
            let head_label = head_label.split(DELIMITER).next().unwrap_or("");
            let new_head = find_new_head(i, head_label, &heads, &deps, &l_edge, &r_edge, is_space);
            let new_label: Arc<str> = Arc::from(new_label);
            heads[i] = new_head;
            deps[i] = new_label;
            changed = true;
        }
        if changed {
            sent_starts = set_children_from_heads(&heads, &mut l_edge, &mut r_edge);
        }
        Parse {
            heads,
            deps,
            sent_starts,
        }
    }
}

/// `nonproj._find_new_head`: breadth-first search below the token's head for
/// the first child labelled `head_label` (skipping whitespace tokens and the
/// token itself); the current head if none. Children are listed as spaCy's
/// `Token.children` does, from the edges of the last
/// `set_children_from_heads` and the current heads.
fn find_new_head(
    token: usize,
    head_label: &str,
    heads: &[usize],
    deps: &[Arc<str>],
    l_edge: &[usize],
    r_edge: &[usize],
    is_space: &[bool],
) -> usize {
    let mut queue = vec![heads[token]];
    let mut visited = 0usize;
    while !queue.is_empty() {
        let mut next = Vec::new();
        for &q in &queue {
            visited += 1;
            if visited > 4 * heads.len() + 16 {
                return heads[token];
            }
            let lefts = (l_edge[q]..q).filter(|&j| heads[j] == q);
            let rights = (q + 1..=r_edge[q].min(heads.len() - 1)).filter(|&j| heads[j] == q);
            for child in lefts.chain(rights) {
                if is_space.get(child).copied().unwrap_or(false) || child == token {
                    continue;
                }
                if &*deps[child] == head_label {
                    return child;
                }
                next.push(child);
            }
        }
        queue = next;
    }
    heads[token]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_and_sentence_starts() {
        // "A b . C d": two sentences, roots 1 and 4.
        let heads = [1, 1, 1, 4, 4];
        let (mut l, mut r) = (Vec::new(), Vec::new());
        let starts = set_children_from_heads(&heads, &mut l, &mut r);
        assert_eq!(starts, [true, false, false, true, false]);
        assert_eq!(l, [0, 0, 2, 3, 3]);
        assert_eq!(r, [0, 2, 2, 3, 4]);
    }

    #[test]
    fn arcs_replace_and_children_order() {
        let mut st = State::new(4);
        st.add_arc(3, 0, 1);
        st.add_arc(3, 1, 2);
        assert_eq!(st.l(3, 1), 1);
        assert_eq!(st.l(3, 2), 0);
        st.add_arc(2, 0, 3); // re-attach 0: the older arc is marked deleted
        assert_eq!(st.l(3, 1), 1);
        assert_eq!(st.l(3, 2), -1);
        assert_eq!(st.l(2, 1), 0);
    }
}
