//! spaCy's `Tok2Vec.v2`: MultiHashEmbed.v2 (with or without static vectors)
//! and MaxoutWindowEncoder.v2, optionally followed by the `list2array >>
//! linear` projection of TransitionBasedParser.v2.
//!
//! Two instances exist in `en_core_web_sm`: the NER's own tok2vec (columns
//! NORM, PREFIX, SUFFIX, SHAPE, with the 96→64 projection in the same file)
//! and the shared `tok2vec` component (columns NORM, PREFIX, SUFFIX, SHAPE,
//! SPACY, IS_SPACE; no projection) that the tagger and the parser listen to.
//! The number of columns and the table sizes are read from the model.
//!
//! `en_core_web_md` has the same two instances with
//! `include_static_vectors = true`: thinc's `StaticVectors` looks every
//! token's ORTH up in the pipeline's vector table (a missing key gives the
//! zero vector), projects it with `W` (96×300, no bias) and concatenates the
//! result after the hash embeddings, before the mixing Maxout.
//!
//! All arithmetic is f32 with the operation order of thinc where it matters
//! (bias added after the matrix product, four hash rows summed in order),
//! and every matrix product is one `sgemm` over all tokens of a batch.

use std::sync::Arc;

use super::error::ModelError;
use super::hash::murmurhash3_u64;
use super::thinc::{Node, ThincModel};
use super::vectors::Vectors;

/// `C (m×n) = A (m×k) · Bᵀ` where `B` is stored row-major as (n×k), i.e. the
/// thinc weight layout `W[nO, nI]`. `C` is overwritten.
pub(crate) fn gemm_abt(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n);
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    // SAFETY: the slices hold at least m*k, n*k and m*n elements (checked by
    // the callers' shape invariants and the debug assertion) and the strides
    // describe row-major A, transposed row-major B and row-major C.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            1,
            k as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// thinc `HashEmbed`: each id picks 4 rows of its table via MurmurHash3; the
/// embedding is their sum.
///
/// The embedding is only ever used through the mixing Maxout, which is
/// linear before its max: `W·[e_0|e_1|e_2|e_3] = Σ_c W_c·Σ_j E_c[row_j]`.
/// So instead of the 96-wide table we keep `proj[r] = W_c·E_c[r]` (288 wide)
/// for every row, computed once at load, and a token costs 16 row additions
/// instead of a 384×288 matrix-vector product (a quarter of all FLOPs).
/// Rounding differs from thinc by float32 noise only (scores stay within
/// 1e-5 of Python's, see tests/parity_ner.rs).
#[derive(Debug, Clone)]
pub struct HashEmbed {
    seed: u32,
    n_rows: usize,
    /// (n_rows × n_out·n_pieces of the mixer): the table through `W_c`.
    proj: Vec<f32>,
}

/// thinc `StaticVectors` (spaCy's, mode `default`) feeding the mixer.
///
/// Unlike the hash tables, the 20000×300 vector table is not folded into the
/// mixer at load (that would cost a 20000-row product per tok2vec and 23 MB
/// each); per batch chunk the looked-up rows go through `W` and the mixer's
/// static block as two matrix products.
#[derive(Debug, Clone)]
struct StaticEmbed {
    vectors: Arc<Vectors>,
    /// `W` (WIDTH × n_m), thinc layout.
    w: Vec<f32>,
    /// Vector width (`nM`, 300).
    n_m: usize,
    /// The mixer's input columns of the static block (mix width × WIDTH).
    mix_w: Vec<f32>,
}

impl StaticEmbed {
    /// Writes the mixer pre-activation of the static block into `z`
    /// (rows × mix width) for the ORTH keys `keys`.
    fn forward(&self, keys: impl Iterator<Item = u64>, rows: usize, z: &mut [f32]) {
        let mut v = vec![0.0f32; rows * self.n_m];
        for (dst, key) in v.chunks_exact_mut(self.n_m).zip(keys) {
            if let Some(vec) = self.vectors.get(key) {
                dst.copy_from_slice(vec);
            }
        }
        let mut s = vec![0.0f32; rows * WIDTH];
        gemm_abt(rows, self.n_m, WIDTH, &v, &self.w, &mut s);
        let mix_width = self.mix_w.len() / WIDTH;
        gemm_abt(rows, WIDTH, mix_width, &s, &self.mix_w, z);
    }
}

/// thinc `Maxout`: `max_p (W[o,p,:]·x + b[o,p])`.
#[derive(Debug, Clone)]
pub struct Maxout {
    n_out: usize,
    n_pieces: usize,
    n_in: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

/// Σ f(x) with 8 independent accumulators (vectorisable without fast-math).
#[inline]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            acc[i] += f(c[i]);
        }
    }
    let mut total =
        ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for &v in chunks.remainder() {
        total += f(v);
    }
    total
}

/// thinc `LayerNorm` (variance + 1e-8, then scale `G` and shift `b`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    g: Vec<f32>,
    b: Vec<f32>,
}

/// thinc `Linear`: `W x + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub(crate) n_out: usize,
    pub(crate) n_in: usize,
    pub(crate) w: Vec<f32>,
    pub(crate) b: Vec<f32>,
}

impl Maxout {
    fn load(
        model: &ThincModel,
        node: &Node,
        n_in: usize,
        n_out: usize,
    ) -> Result<Self, ModelError> {
        let n_pieces = node
            .dim("nP")
            .ok_or_else(|| model.error(format!("maxout node {} has no nP", node.index)))?
            as usize;
        Ok(Maxout {
            n_out,
            n_pieces,
            n_in,
            w: model.param(node, "W", &[n_out, n_pieces, n_in])?,
            b: model.param(node, "b", &[n_out, n_pieces])?,
        })
    }

    /// `x` is (rows × n_in); writes (rows × n_out) into `out`, using
    /// `scratch` for the pre-activation (rows × n_out·n_pieces).
    fn forward(&self, rows: usize, x: &[f32], scratch: &mut Vec<f32>, out: &mut [f32]) {
        let width = self.n_out * self.n_pieces;
        scratch.clear();
        scratch.resize(rows * width, 0.0);
        gemm_abt(rows, self.n_in, width, x, &self.w, scratch);
        for (z, y) in scratch
            .chunks_exact(width)
            .zip(out.chunks_exact_mut(self.n_out))
        {
            self.max_pieces(z, y);
        }
    }

    /// `y[o] = max_p (z[o·nP + p] + b[o·nP + p])` for one row.
    #[inline]
    fn max_pieces(&self, z: &[f32], y: &mut [f32]) {
        if self.n_pieces == 3 {
            for ((y, z), b) in y
                .iter_mut()
                .zip(z.chunks_exact(3))
                .zip(self.b.chunks_exact(3))
            {
                let (a, bb, c) = (z[0] + b[0], z[1] + b[1], z[2] + b[2]);
                let m = if bb > a { bb } else { a };
                *y = if c > m { c } else { m };
            }
            return;
        }
        for (o, y) in y.iter_mut().enumerate() {
            let base = o * self.n_pieces;
            let mut best = z[base] + self.b[base];
            for p in 1..self.n_pieces {
                let v = z[base + p] + self.b[base + p];
                if v > best {
                    best = v;
                }
            }
            *y = best;
        }
    }
}

impl LayerNorm {
    fn load(model: &ThincModel, node: &Node, n: usize) -> Result<Self, ModelError> {
        Ok(LayerNorm {
            g: model.param(node, "G", &[n])?,
            b: model.param(node, "b", &[n])?,
        })
    }

    /// Normalises every row of `x` in place. Sums use 8 interleaved f32
    /// accumulators, like numpy's unrolled pairwise float32 summation, which
    /// also lets the compiler vectorise them.
    fn forward(&self, x: &mut [f32]) {
        let n = self.g.len();
        for row in x.chunks_exact_mut(n) {
            let mean = lane_sum(row, |v| v) / n as f32;
            let var = lane_sum(row, |v| (v - mean) * (v - mean)) / n as f32;
            let inv = 1.0 / (var + 1e-8).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.g).zip(&self.b) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

impl Linear {
    pub(crate) fn load(
        model: &ThincModel,
        node: &Node,
        n_in: usize,
        n_out: usize,
    ) -> Result<Self, ModelError> {
        Ok(Linear {
            n_out,
            n_in,
            w: model.param(node, "W", &[n_out, n_in])?,
            b: model.param(node, "b", &[n_out])?,
        })
    }

    /// `x` (rows × n_in) → `out` (rows × n_out).
    pub(crate) fn forward(&self, rows: usize, x: &[f32], out: &mut [f32]) {
        gemm_abt(rows, self.n_in, self.n_out, x, &self.w, out);
        for y in out.chunks_exact_mut(self.n_out) {
            for (v, b) in y.iter_mut().zip(&self.b) {
                *v += b;
            }
        }
    }
}

/// Rows of the hash tables, hidden widths etc. that the loader checks.
pub const EMBED_ROWS: [usize; 4] = [5000, 1000, 2500, 2500];
/// Width of the NER tok2vec (`width = 96` in config.cfg).
pub const WIDTH: usize = 96;
/// Encoder depth (`depth = 4`).
pub const DEPTH: usize = 4;

/// Intermediate results for one document, for tests and debugging.
#[derive(Debug, Clone)]
pub struct Stages {
    /// MultiHashEmbed output after its LayerNorm (n × 96).
    pub embed: Vec<f32>,
    /// Encoder output (n × 96).
    pub encoded: Vec<f32>,
    /// After the 96→64 linear projection (n × 64); empty without one.
    pub projected: Vec<f32>,
}

/// A complete tok2vec (embedding + encoder), plus the projection layer when
/// the model file holds one (the NER model).
#[derive(Debug, Clone)]
pub struct Tok2Vec {
    embeds: Vec<HashEmbed>,
    /// With `include_static_vectors`: the ORTH vectors, after the hash
    /// columns in the mixer input.
    static_embed: Option<StaticEmbed>,
    mix: Maxout,
    mix_ln: LayerNorm,
    blocks: Vec<(Maxout, LayerNorm)>,
    proj: Option<Linear>,
    /// Zero rows before/after each document in the encoder (`with_array(pad)`).
    pad: usize,
}

impl Tok2Vec {
    /// Collects the layers from a thinc tree that holds exactly one tok2vec:
    /// hash embeddings ordered by their `column` attr (their count gives the
    /// number of feature columns, their `nV` the table sizes), then the
    /// maxout/layernorm nodes in breadth-first order (embed mixer first, then
    /// the encoder blocks), and, if present, the `linear` 96→N projection.
    /// A model with a `static_vectors` layer fails here: use
    /// [`Tok2Vec::from_thinc_with_vectors`].
    pub fn from_thinc(model: &ThincModel) -> Result<Tok2Vec, ModelError> {
        Self::from_thinc_with_vectors(model, None)
    }

    /// As [`Tok2Vec::from_thinc`]; a `static_vectors` layer reads `vectors`
    /// (the pipeline's `vocab/vectors`), which must then be given.
    pub fn from_thinc_with_vectors(
        model: &ThincModel,
        vectors: Option<&Arc<Vectors>>,
    ) -> Result<Tok2Vec, ModelError> {
        // Layers are selected by name (in thinc's breadth-first order) and
        // checked by shape, instead of interpreting every combinator node.
        let mut hashembeds: Vec<&Node> = model.nodes_named("hashembed").collect();
        let n_cols = hashembeds.len();
        if n_cols == 0 {
            return Err(model.error("no hashembed layers (not a Tok2Vec.v2 model)"));
        }
        let mut cols = Vec::with_capacity(n_cols);
        for n in &hashembeds {
            cols.push(model.attr_u64(n, "column")?);
        }
        let mut order: Vec<usize> = (0..n_cols).collect();
        order.sort_by_key(|&i| cols[i]);
        hashembeds = order.iter().map(|&i| hashembeds[i]).collect();
        let mut tables = Vec::with_capacity(n_cols);
        for (c, node) in hashembeds.iter().enumerate() {
            if model.attr_u64(node, "column")? != c as u64 {
                return Err(model.error(format!(
                    "hashembed columns are not 0..{}: {cols:?}",
                    n_cols - 1
                )));
            }
            let n_rows =
                node.dim("nV").filter(|&v| v > 0).ok_or_else(|| {
                    model.error(format!("hashembed node {} has no nV", node.index))
                })? as usize;
            let seed = model.attr_u64(node, "seed")?;
            let seed = u32::try_from(seed)
                .map_err(|_| model.error(format!("hashembed seed {seed} does not fit u32")))?;
            tables.push((seed, n_rows, model.param(node, "E", &[n_rows, WIDTH])?));
        }
        let maxouts: Vec<&Node> = model.nodes_named("maxout").collect();
        let lns: Vec<&Node> = model.nodes_named("layernorm").collect();
        if maxouts.len() != DEPTH + 1 || lns.len() != DEPTH + 1 {
            return Err(model.error(format!(
                "expected {} maxout and layernorm layers, found {} and {}",
                DEPTH + 1,
                maxouts.len(),
                lns.len()
            )));
        }
        let static_node = match model.nodes_named("static_vectors").collect::<Vec<_>>()[..] {
            [] => None,
            [node] => Some(node),
            _ => return Err(model.error("more than one static_vectors layer")),
        };
        let n_blocks = n_cols + usize::from(static_node.is_some());
        let mix = Maxout::load(model, maxouts[0], n_blocks * WIDTH, WIDTH)?;
        // proj_c = E_c · W_cᵀ, W_c = the mixer's input columns of column c.
        let mix_width = mix.n_out * mix.n_pieces;
        let mut embeds = Vec::with_capacity(n_cols);
        for (c, (seed, n_rows, table)) in tables.into_iter().enumerate() {
            let mut w_c = Vec::with_capacity(mix_width * WIDTH);
            for row in mix.w.chunks_exact(mix.n_in) {
                w_c.extend_from_slice(&row[c * WIDTH..(c + 1) * WIDTH]);
            }
            let mut proj = vec![0.0f32; n_rows * mix_width];
            gemm_abt(n_rows, WIDTH, mix_width, &table, &w_c, &mut proj);
            embeds.push(HashEmbed { seed, n_rows, proj });
        }
        let static_embed = match static_node {
            None => None,
            Some(node) => {
                let vectors = vectors.ok_or_else(|| {
                    model.error(
                        "the tok2vec has static vectors but the pipeline's vocab/vectors were not loaded",
                    )
                })?;
                let n_m = vectors.width();
                if node.dim("nM").is_some_and(|m| m != n_m as i64) {
                    return Err(model.error(format!(
                        "static_vectors nM {:?} does not match the vector width {n_m}",
                        node.dim("nM")
                    )));
                }
                let mut mix_w = Vec::with_capacity(mix_width * WIDTH);
                for row in mix.w.chunks_exact(mix.n_in) {
                    mix_w.extend_from_slice(&row[n_cols * WIDTH..(n_cols + 1) * WIDTH]);
                }
                Some(StaticEmbed {
                    vectors: Arc::clone(vectors),
                    w: model.param(node, "W", &[WIDTH, n_m])?,
                    n_m,
                    mix_w,
                })
            }
        };
        let mix_ln = LayerNorm::load(model, lns[0], WIDTH)?;
        let mut blocks = Vec::with_capacity(DEPTH);
        for d in 1..=DEPTH {
            blocks.push((
                Maxout::load(model, maxouts[d], 3 * WIDTH, WIDTH)?,
                LayerNorm::load(model, lns[d], WIDTH)?,
            ));
        }
        let proj = match model
            .nodes_named("linear")
            .find(|n| n.dim("nI") == Some(WIDTH as i64))
        {
            Some(node) => {
                let n_out = node
                    .dim("nO")
                    .ok_or_else(|| model.error("tok2vec projection has no nO"))?
                    as usize;
                Some(Linear::load(model, node, WIDTH, n_out)?)
            }
            None => None,
        };
        let pad = model
            .nodes
            .iter()
            .find(|n| n.name.starts_with("with_array(residual("))
            .map(|n| model.attr_u64(n, "pad"))
            .transpose()?
            .unwrap_or(0) as usize;
        Ok(Tok2Vec {
            embeds,
            static_embed,
            mix,
            mix_ln,
            blocks,
            proj,
            pad,
        })
    }

    /// Number of feature columns per token (4 for the NER's tok2vec, 6 for
    /// the shared one).
    pub fn n_columns(&self) -> usize {
        self.embeds.len()
    }

    /// Whether the embedding includes static vectors (then every token needs
    /// its ORTH id after the hash columns, see [`Tok2Vec::ids_per_token`]).
    pub fn has_static_vectors(&self) -> bool {
        self.static_embed.is_some()
    }

    /// Ids per token in the input of [`Tok2Vec::forward_batch`]: the
    /// `n_columns()` hash features, then the ORTH id with static vectors.
    pub fn ids_per_token(&self) -> usize {
        self.embeds.len() + usize::from(self.static_embed.is_some())
    }

    /// Whether the model ends in a projection layer.
    pub fn has_projection(&self) -> bool {
        self.proj.is_some()
    }

    /// Width of the output vectors: the projection's (64 for NER) or the
    /// encoder's (96).
    pub fn output_width(&self) -> usize {
        self.proj.as_ref().map_or(WIDTH, |p| p.n_out)
    }

    /// MultiHashEmbed: per token the 4 projected hash rows of every column
    /// (plus, with static vectors, the projected ORTH vector) are summed into
    /// the mixer's pre-activation, then bias, max over pieces, LayerNorm.
    /// `ids` holds `ids_per_token()` ids per token; writes (n × 96) into
    /// `out`.
    fn embed_into(&self, ids: &[u64], out: &mut [f32]) {
        let width = self.mix.n_out * self.mix.n_pieces;
        let stride = self.ids_per_token();
        let Some(st) = &self.static_embed else {
            // Hash columns only: one pre-activation row, reused per token.
            let mut z = vec![0.0f32; width];
            for (row, y) in ids.chunks_exact(stride).zip(out.chunks_exact_mut(WIDTH)) {
                z.fill(0.0);
                self.add_hash_rows(row, &mut z);
                self.mix.max_pieces(&z, y);
            }
            self.mix_ln.forward(out);
            return;
        };
        // With static vectors the pre-activation starts from their block,
        // computed CHUNK tokens at a time by two matrix products.
        const CHUNK: usize = 256;
        let n_cols = self.embeds.len();
        let mut z = Vec::new();
        for (ids, out) in ids
            .chunks(CHUNK * stride)
            .zip(out.chunks_mut(CHUNK * WIDTH))
        {
            let rows = ids.len() / stride;
            z.clear();
            z.resize(rows * width, 0.0);
            st.forward(ids.chunks_exact(stride).map(|r| r[n_cols]), rows, &mut z);
            for ((row, z), y) in ids
                .chunks_exact(stride)
                .zip(z.chunks_exact_mut(width))
                .zip(out.chunks_exact_mut(WIDTH))
            {
                self.add_hash_rows(row, z);
                self.mix.max_pieces(z, y);
            }
        }
        self.mix_ln.forward(out);
    }

    /// Adds the 4 projected rows of every hash column of one token to `z`.
    #[inline]
    fn add_hash_rows(&self, row: &[u64], z: &mut [f32]) {
        let width = z.len();
        for (c, emb) in self.embeds.iter().enumerate() {
            for w in murmurhash3_u64(row[c], emb.seed) {
                let r = (w as usize) % emb.n_rows * width;
                for (acc, v) in z.iter_mut().zip(&emb.proj[r..r + width]) {
                    *acc += v;
                }
            }
        }
    }

    /// Runs the tok2vec over a batch of documents and returns the output
    /// vectors of all tokens, concatenated in doc order (Σn × output_width).
    /// Each doc is given as its feature ids, `ids_per_token()` per token
    /// (without static vectors, `FeatureRow` slices flatten to this with
    /// `as_flattened`). With `stages`, also the intermediate (embed,
    /// encoder) rows.
    pub fn forward_batch(&self, docs: &[&[u64]], mut stages: Option<&mut Stages>) -> Vec<f32> {
        let n_cols = self.ids_per_token();
        let docs: Vec<&[u64]> = docs
            .iter()
            .map(|d| &d[..d.len() / n_cols * n_cols])
            .collect();
        let n_tokens = |d: &[u64]| d.len() / n_cols;
        let total: usize = docs.iter().map(|d| n_tokens(d)).sum();
        let mut scratch = Vec::new();
        let mut embedded = vec![0.0f32; total * WIDTH];
        let mut done = 0;
        for d in &docs {
            let n = n_tokens(d);
            self.embed_into(d, &mut embedded[done * WIDTH..(done + n) * WIDTH]);
            done += n;
        }
        if let Some(s) = stages.as_deref_mut() {
            s.embed = embedded.clone();
        }

        // Lay the docs out as thinc's `flatten(pad=4)` does: pad rows before
        // every non-empty doc and after the last one, shared between docs.
        let non_empty = docs.iter().filter(|d| !d.is_empty()).count();
        let padded_rows = total + self.pad * (non_empty + 1);
        let mut h = vec![0.0f32; padded_rows * WIDTH];
        let mut offsets = Vec::with_capacity(docs.len());
        let mut pos = self.pad;
        let mut src = 0;
        for d in &docs {
            offsets.push(pos);
            let n = n_tokens(d);
            if n == 0 {
                continue;
            }
            h[pos * WIDTH..(pos + n) * WIDTH]
                .copy_from_slice(&embedded[src * WIDTH..(src + n) * WIDTH]);
            src += n;
            pos += n + self.pad;
        }
        drop(embedded);

        // Each block reads all of `h` and writes `block_out`; the window and
        // pre-activation buffers only cover CHUNK rows at a time, so a huge
        // document needs ~0.8 KB per token instead of ~3.5 KB, and the
        // buffers stay in cache.
        const CHUNK: usize = 512;
        let mut window = vec![0.0f32; CHUNK.min(padded_rows) * 3 * WIDTH];
        let mut block_out = vec![0.0f32; padded_rows * WIDTH];
        for (maxout, ln) in &self.blocks {
            for first in (0..padded_rows).step_by(CHUNK) {
                let rows = CHUNK.min(padded_rows - first);
                // expand_window(1): [x[t-1] | x[t] | x[t+1]], zeros outside.
                for (i, dst) in window.chunks_exact_mut(3 * WIDTH).take(rows).enumerate() {
                    let t = first + i;
                    let (prev, rest) = dst.split_at_mut(WIDTH);
                    let (mid, next) = rest.split_at_mut(WIDTH);
                    if t > 0 {
                        prev.copy_from_slice(&h[(t - 1) * WIDTH..t * WIDTH]);
                    } else {
                        prev.fill(0.0);
                    }
                    mid.copy_from_slice(&h[t * WIDTH..(t + 1) * WIDTH]);
                    if t + 1 < padded_rows {
                        next.copy_from_slice(&h[(t + 1) * WIDTH..(t + 2) * WIDTH]);
                    } else {
                        next.fill(0.0);
                    }
                }
                let out = &mut block_out[first * WIDTH..(first + rows) * WIDTH];
                maxout.forward(rows, &window[..rows * 3 * WIDTH], &mut scratch, out);
                ln.forward(out);
            }
            for (x, y) in h.iter_mut().zip(&block_out) {
                *x += y;
            }
        }
        drop(window);
        drop(block_out);

        let mut encoded = Vec::with_capacity(total * WIDTH);
        for (d, &off) in docs.iter().zip(&offsets) {
            encoded.extend_from_slice(&h[off * WIDTH..(off + n_tokens(d)) * WIDTH]);
        }
        let Some(proj) = &self.proj else {
            if let Some(s) = stages {
                s.encoded = encoded.clone();
            }
            return encoded;
        };
        let mut out = vec![0.0f32; total * proj.n_out];
        proj.forward(total, &encoded, &mut out);
        if let Some(s) = stages {
            s.encoded = encoded;
            s.projected = out.clone();
        }
        out
    }

    /// All stages for one document (tests, debugging); `rows` as in
    /// [`Tok2Vec::forward_batch`].
    pub fn stages(&self, rows: &[u64]) -> Stages {
        let mut s = Stages {
            embed: Vec::new(),
            encoded: Vec::new(),
            projected: Vec::new(),
        };
        self.forward_batch(&[rows], Some(&mut s));
        s
    }
}
