//! What spaCy's two transition-based components share (`TransitionBasedParser.v2`
//! with `use_upper = true`, greedy decoding): the move table read from
//! `<component>/moves`, and the state network — a "precomputable affine"
//! lower layer evaluated once for every token and feature slot, max over
//! pieces, and an upper linear layer scoring every class of a state.
//!
//! The transition systems themselves (BILUO in [`super::ner`], arc-eager in
//! [`super::parser`]) only decide which tokens fill the `nF` feature slots
//! of a state, which classes are valid, and what a class does; the best
//! valid class is picked with [`arg_max_if_valid`], as spaCy does.

use std::path::Path;

use super::error::ModelError;
use super::thinc::{Node, ThincModel};
use super::tok2vec::{gemm_abt, Linear};

/// Reads a `moves` file: msgpack `{"moves": <JSON {type: {label: freq}}>, ...}`.
/// Returns `(move code, label)` in spaCy's class order — move types in
/// ascending code, labels of one type by (frequency, label) descending —
/// before any system-specific filtering (e.g. NER drops MISSING).
pub fn load_moves(path: &Path) -> Result<Vec<(u32, String)>, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    moves_from_bytes(&bytes).map_err(|what| ModelError::format(path, what))
}

/// As [`load_moves`], on the bytes of the file.
pub fn moves_from_bytes(bytes: &[u8]) -> Result<Vec<(u32, String)>, String> {
    /// The file: a msgpack map whose `moves` is a JSON string.
    #[derive(serde::Deserialize)]
    struct MovesFile {
        moves: String,
    }
    let file: MovesFile = rmp_serde::from_slice(bytes)
        .map_err(|e| format!("not a moves file (a map with a `moves` JSON string): {e}"))?;
    let moves: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&file.moves)
        .map_err(|e| format!("`moves` is not a JSON object: {e}"))?;
    let mut types: Vec<(u32, &serde_json::Map<String, serde_json::Value>)> = Vec::new();
    for (k, v) in &moves {
        let code: u32 = k
            .parse()
            .map_err(|_| format!("move type {k:?} is not an integer"))?;
        let labels = v
            .as_object()
            .ok_or_else(|| format!("labels of move type {k} are not an object"))?;
        types.push((code, labels));
    }
    types.sort_by_key(|(c, _)| *c);
    let mut out = Vec::new();
    for (code, labels) in types {
        let mut sorted: Vec<(i64, &str)> = labels
            .iter()
            .map(|(l, f)| (f.as_i64().unwrap_or(0), l.as_str()))
            .collect();
        sorted.sort();
        sorted.reverse();
        out.extend(sorted.into_iter().map(|(_, l)| (code, l.to_owned())));
    }
    Ok(out)
}

/// The lower (`precomputable_affine`) and upper (`linear`) layers.
#[derive(Debug, Clone)]
pub struct StateNet {
    /// Feature slots per state (`nF`: 3 for NER, 8 for the parser).
    pub n_feats: usize,
    pub n_hidden: usize,
    pub n_pieces: usize,
    /// Width of the token vectors the lower layer reads (`nI`).
    pub n_in: usize,
    /// W (nF·nH·nP × nI), row `f·nH·nP + o·nP + p`.
    lower_w: Vec<f32>,
    /// b (nH·nP).
    lower_b: Vec<f32>,
    /// pad (nF·nH·nP): the vector used for a missing feature (id −1).
    lower_pad: Vec<f32>,
    /// Upper weights transposed to (nH × nClasses) so the per-state product
    /// is a sequence of contiguous axpys that vectorise without reordering.
    upper_wt: Vec<f32>,
    upper_b: Vec<f32>,
    pub n_classes: usize,
}

/// Reusable buffers for the per-state loop, so decoding allocates nothing
/// per step. After [`StateNet::score_state`], `hidden` and `scores` hold the
/// state's hidden layer and class scores.
#[derive(Debug, Clone)]
pub struct Scratch {
    unmaxed: Vec<f32>,
    pub hidden: Vec<f32>,
    pub scores: Vec<f32>,
}

impl StateNet {
    /// Loads the `lower` and `upper` refs of the `parser_model` root node,
    /// checking `nF` and the number of classes.
    pub fn from_thinc(
        model: &ThincModel,
        n_feats: usize,
        n_classes: usize,
    ) -> Result<StateNet, ModelError> {
        let root = model.node(0)?;
        if root.name != "parser_model" {
            return Err(model.error(format!(
                "node 0 is {:?}, expected parser_model (TransitionBasedParser.v2)",
                root.name
            )));
        }
        let lower = model.get_ref(root, "lower")?;
        let upper = model.get_ref(root, "upper")?;
        let dim = |n: &Node, d: &str| -> Result<usize, ModelError> {
            n.dim(d)
                .map(|v| v as usize)
                .ok_or_else(|| model.error(format!("node {} ({}) has no dim {d}", n.index, n.name)))
        };
        let n_f = dim(lower, "nF")?;
        let n_hidden = dim(lower, "nO")?;
        let n_pieces = dim(lower, "nP")?;
        let n_in = dim(lower, "nI")?;
        if n_f != n_feats {
            return Err(model.error(format!(
                "lower layer has nF {n_f}, the state needs {n_feats}"
            )));
        }
        let lower_w = model.param(lower, "W", &[n_f, n_hidden, n_pieces, n_in])?;
        let lower_b = model.param(lower, "b", &[n_hidden, n_pieces])?;
        let lower_pad = model.param(lower, "pad", &[1, n_f, n_hidden, n_pieces])?;
        let got_classes = dim(upper, "nO")?;
        if got_classes != n_classes {
            return Err(model.error(format!(
                "upper layer scores {got_classes} classes but the moves file defines {n_classes}"
            )));
        }
        let up = Linear::load(model, upper, n_hidden, n_classes)?;
        let mut upper_wt = vec![0.0f32; n_hidden * n_classes];
        for c in 0..n_classes {
            for i in 0..n_hidden {
                upper_wt[i * n_classes + c] = up.w[c * n_hidden + i];
            }
        }
        Ok(StateNet {
            n_feats,
            n_hidden,
            n_pieces,
            n_in,
            lower_w,
            lower_b,
            lower_pad,
            upper_wt,
            upper_b: up.b,
            n_classes,
        })
    }

    /// Width of one token's precomputed row (nF·nH·nP).
    pub fn cached_width(&self) -> usize {
        self.n_feats * self.n_hidden * self.n_pieces
    }

    /// The lower layer applied to every token vector for every feature slot
    /// (`rows × nI` → `rows × nF·nH·nP`), one matrix product.
    pub fn precompute(&self, rows: usize, tokvecs: &[f32]) -> Vec<f32> {
        let width = self.cached_width();
        let mut cached = vec![0.0f32; rows * width];
        gemm_abt(rows, self.n_in, width, tokvecs, &self.lower_w, &mut cached);
        cached
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            unmaxed: vec![0.0; self.n_hidden * self.n_pieces],
            hidden: vec![0.0; self.n_hidden],
            scores: vec![0.0; self.n_classes],
        }
    }

    /// Scores of all classes for the state whose feature slots hold `ids`
    /// (token index within `cached`, or −1), written into `s.scores`.
    pub fn score_state(&self, cached: &[f32], ids: &[isize], s: &mut Scratch) {
        let hp = self.n_hidden * self.n_pieces;
        let width = self.n_feats * hp;
        // spaCy: memset 0, add the feature vectors in slot order, add bias.
        s.unmaxed.fill(0.0);
        for (f, &id) in ids.iter().enumerate().take(self.n_feats) {
            let src = if id >= 0 {
                let base = id as usize * width + f * hp;
                &cached[base..base + hp]
            } else {
                &self.lower_pad[f * hp..(f + 1) * hp]
            };
            for (u, v) in s.unmaxed.iter_mut().zip(src) {
                *u += v;
            }
        }
        for (u, b) in s.unmaxed.iter_mut().zip(&self.lower_b) {
            *u += b;
        }
        for (h, pieces) in s
            .hidden
            .iter_mut()
            .zip(s.unmaxed.chunks_exact(self.n_pieces))
        {
            let mut best = pieces[0];
            for &p in &pieces[1..] {
                if p > best {
                    best = p;
                }
            }
            *h = best;
        }
        s.scores.fill(0.0);
        for (&h, w) in s
            .hidden
            .iter()
            .zip(self.upper_wt.chunks_exact(self.n_classes))
        {
            for (sc, &w) in s.scores.iter_mut().zip(w) {
                *sc += h * w;
            }
        }
        for (sc, b) in s.scores.iter_mut().zip(&self.upper_b) {
            *sc += b;
        }
    }
}

/// spaCy's `arg_max_if_valid`: the highest-scoring class among those for
/// which `valid(class)` holds; ties go to the lowest index. `None` when no
/// class is valid.
#[inline]
pub fn arg_max_if_valid(scores: &[f32], mut valid: impl FnMut(usize) -> bool) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (c, &sc) in scores.iter().enumerate() {
        if best.map_or(true, |b| sc > scores[b]) && valid(c) {
            best = Some(c);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg_max_skips_invalid_and_prefers_first() {
        let s = [1.0, 3.0, 3.0, 5.0];
        assert_eq!(arg_max_if_valid(&s, |c| c != 3), Some(1));
        assert_eq!(arg_max_if_valid(&s, |_| false), None);
    }
}
