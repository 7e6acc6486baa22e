//! The BERT forward pass of `transformers`' `BertModel` (absolute positions,
//! exact GELU, LayerNorm after each block), for sentences packed end to end.
//!
//! Why not `candle-transformers`' BERT, which this replaced: a batch there is
//! a padded rectangle with an attention mask, every step allocates a tensor,
//! and GELU runs a scalar `erf`. Here the rows of a pass are packed into one
//! `pieces × hidden` matrix, so the dense layers (nearly all of the work)
//! are a few large products with nothing wasted on padding and the bias
//! folded in; attention runs row by row and head by head on strided views of
//! the fused query/key/value product, so no row ever sees another's pieces
//! and no mask is needed; GELU and softmax are vectorised. The products use
//! the `gemm` crate, the kernels candle itself calls, with their AVX-512
//! variants on. What it computes is the same function: the logit parity test
//! (`tests/learned_stance.rs`) holds it to Python's within 1e-4.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use serde::Deserialize;

use super::simd;

/// The fields of a BERT `config.json` the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: String,
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

/// A dense layer, its weight stored `inputs × outputs` (the transpose of
/// torch's) so that the product reads it row by row.
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Linear {
    fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// `out = input · W + b` for `rows` rows.
    fn apply(&self, input: &[f32], rows: usize, out: &mut [f32], threads: usize) {
        let n = self.outputs();
        for row in out[..rows * n].chunks_exact_mut(n) {
            row.copy_from_slice(&self.bias);
        }
        matmul(
            MatMut::rows(out, rows, n, n),
            Mat::rows(input, rows, self.inputs, self.inputs),
            Mat::rows(&self.weight, self.inputs, n, n),
            1.0,
            true,
            threads,
        );
    }
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value in one product: outputs `[q | k | v]`.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    up: Linear,
    down: Linear,
    output_norm: Norm,
}

/// The encoder's weights and shape.
pub struct Bert {
    word: Vec<f32>,
    position: Vec<f32>,
    /// Token type 0's embedding: every piece is type 0 here.
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    vocab: usize,
    max_positions: usize,
    eps: f32,
}

/// Takes one named tensor of the expected shape out of a checkpoint, as
/// row-major `f32`s.
fn take(
    tensors: &mut HashMap<String, Tensor>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, String> {
    let t = tensors
        .remove(name)
        .ok_or_else(|| format!("no tensor {name}"))?;
    if t.dims() != shape {
        return Err(format!(
            "tensor {name} has shape {:?}, expected {shape:?}",
            t.dims()
        ));
    }
    t.to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| format!("tensor {name}: {e}"))
}

/// The first row of a matrix of `cols` columns and any number (at least
/// one) of rows, taken as [`take`] does.
fn take_first_row(
    tensors: &mut HashMap<String, Tensor>,
    name: &str,
    cols: usize,
) -> Result<Vec<f32>, String> {
    let rows = match tensors.get(name).map(|t| t.dims().to_vec()) {
        Some(dims) if dims.len() == 2 && dims[0] > 0 => dims[0],
        Some(dims) => return Err(format!("tensor {name} has shape {dims:?}")),
        None => return Err(format!("no tensor {name}")),
    };
    let mut all = take(tensors, name, &[rows, cols])?;
    all.truncate(cols);
    Ok(all)
}

/// torch's `[out, in]` weights, side by side as one `in × Σout` matrix.
fn transposed_side_by_side(parts: &[Vec<f32>], inputs: usize) -> Vec<f32> {
    let outs: Vec<usize> = parts.iter().map(|p| p.len() / inputs).collect();
    let total: usize = outs.iter().sum();
    let mut w = vec![0f32; inputs * total];
    let mut col = 0;
    for (part, &out) in parts.iter().zip(&outs) {
        for o in 0..out {
            for i in 0..inputs {
                w[i * total + col + o] = part[o * inputs + i];
            }
        }
        col += out;
    }
    w
}

fn linear(
    tensors: &mut HashMap<String, Tensor>,
    names: &[&str],
    inputs: usize,
    outputs: usize,
) -> Result<Linear, String> {
    let mut weights = Vec::with_capacity(names.len());
    let mut bias = Vec::with_capacity(names.len() * outputs);
    for name in names {
        weights.push(take(
            tensors,
            &format!("{name}.weight"),
            &[outputs, inputs],
        )?);
        bias.extend(take(tensors, &format!("{name}.bias"), &[outputs])?);
    }
    Ok(Linear {
        weight: transposed_side_by_side(&weights, inputs),
        bias,
        inputs,
    })
}

fn norm(tensors: &mut HashMap<String, Tensor>, name: &str, hidden: usize) -> Result<Norm, String> {
    Ok(Norm {
        gamma: take(tensors, &format!("{name}.weight"), &[hidden])?,
        beta: take(tensors, &format!("{name}.bias"), &[hidden])?,
    })
}

impl Bert {
    /// Builds the encoder from a `transformers` BERT checkpoint's tensors
    /// (names without the `bert.` prefix, as sentence-transformers saves
    /// them). Only what this forward pass computes is accepted.
    pub fn load(config: &BertConfig, mut tensors: HashMap<String, Tensor>) -> Result<Bert, String> {
        if config.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} (only the exact \"gelu\" is implemented)",
                config.hidden_act
            ));
        }
        if config.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type {:?} (only \"absolute\" is implemented)",
                config.position_embedding_type
            ));
        }
        let h = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || h % heads != 0 {
            return Err(format!(
                "hidden_size {h} is not a multiple of {heads} heads"
            ));
        }
        let t = &mut tensors;
        let word = take(
            t,
            "embeddings.word_embeddings.weight",
            &[config.vocab_size, h],
        )?;
        let position = take(
            t,
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let token_type = take_first_row(t, "embeddings.token_type_embeddings.weight", h)?;
        let embedding_norm = norm(t, "embeddings.LayerNorm", h)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let q = format!("{p}.attention.self.query");
            let k = format!("{p}.attention.self.key");
            let v = format!("{p}.attention.self.value");
            layers.push(Layer {
                qkv: linear(t, &[&q, &k, &v], h, h)?,
                attention_out: linear(t, &[&format!("{p}.attention.output.dense")], h, h)?,
                attention_norm: norm(t, &format!("{p}.attention.output.LayerNorm"), h)?,
                up: linear(
                    t,
                    &[&format!("{p}.intermediate.dense")],
                    h,
                    config.intermediate_size,
                )?,
                down: linear(
                    t,
                    &[&format!("{p}.output.dense")],
                    config.intermediate_size,
                    h,
                )?,
                output_norm: norm(t, &format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(Bert {
            word,
            position,
            token_type,
            embedding_norm,
            layers,
            hidden: h,
            heads,
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
            eps: config.layer_norm_eps as f32,
        })
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The last hidden states of every piece of every row, rows one after
    /// the other: `Σ len × hidden`. Each row is encoded on its own, exactly
    /// as if it were alone in the batch. `threads` goes to the dense
    /// products (1: this thread only).
    pub fn forward(&self, rows: &[&[u32]], threads: usize) -> Result<Vec<f32>, String> {
        let h = self.hidden;
        let mut spans = Vec::with_capacity(rows.len());
        let mut total = 0;
        for row in rows {
            if row.len() > self.max_positions {
                return Err(format!(
                    "a row of {} pieces (at most {})",
                    row.len(),
                    self.max_positions
                ));
            }
            if let Some(&id) = row.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(format!("piece id {id} outside the vocabulary"));
            }
            spans.push((total, row.len()));
            total += row.len();
        }
        let longest = rows.iter().map(|r| r.len()).max().unwrap_or(0);

        let mut x = vec![0f32; total * h];
        for (row, &(start, _)) in rows.iter().zip(&spans) {
            for (p, &id) in row.iter().enumerate() {
                let out = &mut x[(start + p) * h..(start + p + 1) * h];
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let position = &self.position[p * h..(p + 1) * h];
                for i in 0..h {
                    out[i] = word[i] + position[i] + self.token_type[i];
                }
            }
        }
        for v in x.chunks_exact_mut(h) {
            simd::layer_norm(
                v,
                &self.embedding_norm.gamma,
                &self.embedding_norm.beta,
                self.eps,
            );
        }

        let intermediate = self.layers.first().map_or(0, |l| l.up.outputs());
        let mut qkv = vec![0f32; total * 3 * h];
        let mut context = vec![0f32; total * h];
        let mut projected = vec![0f32; total * h];
        let mut up = vec![0f32; total * intermediate];
        let mut scores = vec![0f32; longest * longest];
        for layer in &self.layers {
            layer.qkv.apply(&x, total, &mut qkv, threads);
            self.attend(&qkv, &spans, &mut scores, &mut context);
            layer
                .attention_out
                .apply(&context, total, &mut projected, threads);
            add_and_norm(&mut x, &projected, &layer.attention_norm, self.eps);
            layer.up.apply(&x, total, &mut up, threads);
            simd::gelu(&mut up);
            layer.down.apply(&up, total, &mut projected, threads);
            add_and_norm(&mut x, &projected, &layer.output_norm, self.eps);
        }
        Ok(x)
    }

    /// Scaled dot-product attention of each row with itself, head by head,
    /// reading queries, keys and values in place from the fused product.
    fn attend(
        &self,
        qkv: &[f32],
        spans: &[(usize, usize)],
        scores: &mut [f32],
        context: &mut [f32],
    ) {
        let h = self.hidden;
        let d = h / self.heads;
        let stride = 3 * h;
        let scale = 1.0 / (d as f32).sqrt();
        for &(start, n) in spans {
            for head in 0..self.heads {
                let base = start * stride + head * d;
                let queries = Mat::rows(&qkv[base..], n, d, stride);
                // Keys transposed: element (i, j) is key j's component i.
                let keys = Mat {
                    data: &qkv[base + h..],
                    rows: d,
                    cols: n,
                    row_stride: 1,
                    col_stride: stride,
                };
                let values = Mat::rows(&qkv[base + 2 * h..], n, d, stride);
                let s = &mut scores[..n * n];
                matmul(MatMut::rows(s, n, n, n), queries, keys, scale, false, 1);
                for row in s.chunks_exact_mut(n) {
                    simd::softmax(row);
                }
                matmul(
                    MatMut::rows(&mut context[start * h + head * d..], n, d, h),
                    Mat::rows(s, n, n, n),
                    values,
                    1.0,
                    false,
                    1,
                );
            }
        }
    }
}

/// `x = LayerNorm(x + delta)`, row by row.
fn add_and_norm(x: &mut [f32], delta: &[f32], norm: &Norm, eps: f32) {
    let h = norm.gamma.len();
    for (v, d) in x.chunks_exact_mut(h).zip(delta.chunks_exact(h)) {
        simd::add_layer_norm(v, d, &norm.gamma, &norm.beta, eps);
    }
}

/// A strided matrix view: element `(i, j)` at `i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }
}

struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    fn rows(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            row_stride,
        }
    }
}

/// Whether every element of a `rows × cols` view lies inside `len`.
fn fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * row_stride + (cols - 1) * col_stride < len
}

/// `dst = (accumulate ? dst : 0) + scale · a · b`, with gemm's kernels.
fn matmul(dst: MatMut, a: Mat, b: Mat, scale: f32, accumulate: bool, threads: usize) {
    assert_eq!(a.cols, b.rows, "inner dimensions");
    assert_eq!((dst.rows, dst.cols), (a.rows, b.cols), "output shape");
    assert!(fits(dst.data.len(), dst.rows, dst.cols, dst.row_stride, 1));
    assert!(fits(
        a.data.len(),
        a.rows,
        a.cols,
        a.row_stride,
        a.col_stride
    ));
    assert!(fits(
        b.data.len(),
        b.rows,
        b.cols,
        b.row_stride,
        b.col_stride
    ));
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            for r in 0..dst.rows {
                dst.data[r * dst.row_stride..r * dst.row_stride + dst.cols].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element gemm reads or writes
    // inside its slice; `dst` is borrowed mutably, so it cannot overlap the
    // inputs.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            a.cols,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_match_the_definition_on_strided_views() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        // b read through its transpose's storage.
        let mut bt = vec![0f32; n * k];
        for p in 0..k {
            for j in 0..n {
                bt[j * k + p] = b[p * n + j];
            }
        }
        let mut got = vec![1f32; m * n];
        let view = Mat {
            data: &bt,
            rows: k,
            cols: n,
            row_stride: 1,
            col_stride: k,
        };
        matmul(
            MatMut::rows(&mut got, m, n, n),
            Mat::rows(&a, m, k, k),
            view,
            2.0,
            true,
            1,
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g - (1.0 + 2.0 * w)).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    #[should_panic(expected = "assertion failed")]
    fn a_view_past_its_slice_is_refused() {
        let a = vec![0f32; 10];
        let mut c = vec![0f32; 4];
        matmul(
            MatMut::rows(&mut c, 2, 2, 2),
            Mat::rows(&a, 2, 6, 6),
            Mat::rows(&a, 6, 2, 2),
            1.0,
            false,
            1,
        );
    }
}
