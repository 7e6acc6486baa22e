//! The learned model's sentence encoder: all-MiniLM-L6-v2 (BERT) with the
//! trained adapter merged in, run by candle on the CPU, and its head.
//!
//! It knows sentences and character ranges in them, nothing of targets,
//! articles or stance decisions: [`SentenceEncoder::classify`] takes
//! sentences with the mention ranges to read off each, runs one encoder
//! pass per sentence (batched), and returns three logits per mention
//! (negative, neutral, positive), exactly as `training/stance/common.py`
//! computes them.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

use super::adapter::{Adapter, AdapterError};

/// One sentence and the byte ranges (within it) of the mentions to classify.
#[derive(Debug, Clone)]
pub struct SentenceInput<'a> {
    pub text: &'a str,
    pub mentions: Vec<(usize, usize)>,
}

/// Settings of the encoder that do not change what it computes for a
/// sentence that fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderLimits {
    /// Word pieces per encoder row, `[CLS]` and `[SEP]` included. A longer
    /// sentence is read through windows of this size around its mentions.
    pub max_pieces: usize,
    /// Rows per forward pass.
    pub batch_rows: usize,
    /// Windows read from one sentence longer than `max_pieces`; mentions
    /// past them get no probabilities.
    pub max_windows: usize,
}

impl Default for EncoderLimits {
    fn default() -> Self {
        EncoderLimits {
            max_pieces: 256,
            batch_rows: 16,
            max_windows: 4,
        }
    }
}

/// The base encoder with the adapter merged into it, plus the head.
pub struct SentenceEncoder {
    bert: BertModel,
    tokenizer: Tokenizer,
    /// `head[label][feature]`, 3 × (3 × hidden).
    head: Vec<Vec<f32>>,
    head_bias: Vec<f32>,
    hidden: usize,
    cls: u32,
    sep: u32,
    limits: EncoderLimits,
    device: Device,
}

/// One encoder row: word pieces and, per mention, the pieces it covers.
struct Row {
    ids: Vec<u32>,
    /// (sentence index, mention index, piece positions in `ids`).
    mentions: Vec<(usize, usize, Vec<usize>)>,
}

impl SentenceEncoder {
    /// Loads `base` (a BERT directory: `config.json`, `model.safetensors`,
    /// `tokenizer.json`) and merges `adapter` into it.
    pub fn load(
        base: &Path,
        adapter: &Adapter,
        limits: EncoderLimits,
    ) -> Result<Self, AdapterError> {
        let device = Device::Cpu;
        let config_path = base.join("config.json");
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|e| AdapterError::io(&config_path, e))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| AdapterError::invalid(&config_path, format!("not a BERT config: {e}")))?;
        let weights = base.join("model.safetensors");
        let mut tensors: HashMap<String, Tensor> =
            candle_core::safetensors::load(&weights, &device)
                .map_err(|e| AdapterError::invalid(&weights, e.to_string()))?;
        adapter.merge_into(&mut tensors)?;
        let hidden = tensors
            .get("embeddings.word_embeddings.weight")
            .and_then(|t| t.dims().get(1).copied())
            .ok_or_else(|| {
                AdapterError::invalid(&weights, "no embeddings.word_embeddings.weight")
            })?;
        let (head, head_bias) = adapter.head(hidden)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let bert = BertModel::load(vb, &config)
            .map_err(|e| AdapterError::invalid(&weights, format!("cannot build BERT: {e}")))?;

        let tok_path = base.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| AdapterError::invalid(&tok_path, e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| AdapterError::invalid(&tok_path, e.to_string()))?;
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| AdapterError::invalid(&tok_path, format!("no {t} token")))
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        let limits = EncoderLimits {
            max_pieces: limits.max_pieces.clamp(8, config.max_position_embeddings),
            batch_rows: limits.batch_rows.max(1),
            max_windows: limits.max_windows.max(1),
        };
        Ok(SentenceEncoder {
            bert,
            tokenizer,
            head,
            head_bias,
            hidden,
            cls,
            sep,
            limits,
            device,
        })
    }

    /// Logits (negative, neutral, positive) for every mention of every
    /// sentence, in input order. A mention that covers no word piece
    /// (punctuation only) gets `None`.
    pub fn classify(
        &self,
        sentences: &[SentenceInput],
    ) -> Result<Vec<Vec<Option<[f32; 3]>>>, String> {
        let mut out: Vec<Vec<Option<[f32; 3]>>> = sentences
            .iter()
            .map(|s| vec![None; s.mentions.len()])
            .collect();
        let mut rows = Vec::new();
        for (si, sentence) in sentences.iter().enumerate() {
            self.rows_for(si, sentence, &mut rows)?;
        }
        // Similar lengths together: less padding per pass.
        rows.sort_by_key(|r| r.ids.len());
        let mut start = 0;
        while start < rows.len() {
            // Rows are sorted by length: a batch ends at `batch_rows` rows or
            // where a row is over a quarter longer than the batch's first,
            // so that padding stays under a quarter of the work.
            let first = rows[start].ids.len();
            let mut end = start + 1;
            while end < rows.len()
                && end - start < self.limits.batch_rows
                && rows[end].ids.len() * 4 <= first * 5 + 32
            {
                end += 1;
            }
            for (si, mi, logits) in self.forward(&rows[start..end]).map_err(|e| e.to_string())? {
                out[si][mi] = Some(logits);
            }
            start = end;
        }
        Ok(out)
    }

    /// Word pieces the encoder runs for these sentences, `[CLS]` and `[SEP]`
    /// included, padding not (for throughput figures).
    pub fn count_pieces(&self, sentences: &[SentenceInput]) -> usize {
        let mut rows = Vec::new();
        for (si, s) in sentences.iter().enumerate() {
            let _ = self.rows_for(si, s, &mut rows);
        }
        rows.iter().map(|r| r.ids.len()).sum()
    }

    /// The rows that cover one sentence's mentions: the whole sentence when
    /// it fits, else a window of pieces centred on each mention.
    fn rows_for(&self, si: usize, s: &SentenceInput, rows: &mut Vec<Row>) -> Result<(), String> {
        let enc = self
            .tokenizer
            .encode(s.text, false)
            .map_err(|e| format!("tokenizing: {e}"))?;
        let ids = enc.get_ids();
        let offsets = enc.get_offsets();
        // Offsets are in text order: the pieces a mention covers are found by
        // binary search, so a sentence with thousands of mentions stays cheap.
        let pieces_of = |&(start, end): &(usize, usize)| -> Vec<usize> {
            let from = offsets.partition_point(|&(_, b)| b <= start);
            (from..offsets.len())
                .take_while(|&i| offsets[i].0 < end)
                .filter(|&i| offsets[i].1 > offsets[i].0)
                .collect()
        };
        let room = self.limits.max_pieces - 2;
        let wrap = |lo: usize, hi: usize| {
            let mut row = Vec::with_capacity(hi - lo + 2);
            row.push(self.cls);
            row.extend_from_slice(&ids[lo..hi]);
            row.push(self.sep);
            row
        };
        let mut mentions: Vec<(usize, Vec<usize>)> = s
            .mentions
            .iter()
            .enumerate()
            .map(|(mi, m)| (mi, pieces_of(m)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        if ids.len() <= room {
            rows.push(Row {
                ids: wrap(0, ids.len()),
                mentions: mentions
                    .into_iter()
                    .map(|(mi, p)| (si, mi, p.into_iter().map(|x| x + 1).collect()))
                    .collect(),
            });
            return Ok(());
        }
        // A sentence too long for one row: windows of `room` pieces, each
        // centred on the first mention the previous windows did not cover
        // and serving every mention inside it; at most `max_windows`, so the
        // cost of one sentence is bounded whatever its length.
        mentions.sort_by_key(|(_, p)| p[0]);
        let mut next = 0;
        let mut windows = 0;
        while next < mentions.len() && windows < self.limits.max_windows {
            let pieces = &mentions[next].1;
            let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
            let span = (last + 1 - first).min(room);
            let lo = first
                .saturating_sub((room - span) / 2)
                .min(ids.len() - room);
            let hi = lo + room;
            let mut served = Vec::new();
            while next < mentions.len() && mentions[next].1[0] < hi {
                let (mi, p) = &mentions[next];
                let inside: Vec<usize> = p
                    .iter()
                    .filter(|&&x| x >= lo && x < hi)
                    .map(|&x| x - lo + 1)
                    .collect();
                if !inside.is_empty() {
                    served.push((si, *mi, inside));
                }
                next += 1;
            }
            rows.push(Row {
                ids: wrap(lo, hi),
                mentions: served,
            });
            windows += 1;
        }
        Ok(())
    }

    fn forward(&self, batch: &[Row]) -> candle_core::Result<Vec<(usize, usize, [f32; 3])>> {
        let width = batch.iter().map(|r| r.ids.len()).max().unwrap_or(0);
        let mut ids = vec![0u32; batch.len() * width];
        let mut mask = vec![0u32; batch.len() * width];
        for (r, row) in batch.iter().enumerate() {
            ids[r * width..r * width + row.ids.len()].copy_from_slice(&row.ids);
            mask[r * width..r * width + row.ids.len()].fill(1);
        }
        let shape = (batch.len(), width);
        let input_ids = Tensor::from_vec(ids, shape, &self.device)?;
        let attention = Tensor::from_vec(mask, shape, &self.device)?;
        let types = input_ids.zeros_like()?;
        let h = self.bert.forward(&input_ids, &types, Some(&attention))?;
        let h: Vec<Vec<Vec<f32>>> = h.to_vec3()?;
        let d = self.hidden;
        let mut out = Vec::new();
        for (row, states) in batch.iter().zip(&h) {
            let n = row.ids.len();
            let sentence = mean(states[..n].iter(), d);
            for (si, mi, pieces) in &row.mentions {
                let target = mean(pieces.iter().map(|&p| &states[p]), d);
                out.push((*si, *mi, self.head_logits(&target, &sentence)));
            }
        }
        Ok(out)
    }

    /// `W [t ; s ; t * s] + b`.
    fn head_logits(&self, t: &[f32], s: &[f32]) -> [f32; 3] {
        let mut logits = [0f32; 3];
        for (k, w) in self.head.iter().enumerate() {
            let d = self.hidden;
            let mut acc = self.head_bias[k];
            for i in 0..d {
                acc += w[i] * t[i] + w[d + i] * s[i] + w[2 * d + i] * t[i] * s[i];
            }
            logits[k] = acc;
        }
        logits
    }
}

fn mean<'a>(rows: impl Iterator<Item = &'a Vec<f32>>, d: usize) -> Vec<f32> {
    let mut acc = vec![0f32; d];
    let mut n = 0usize;
    for row in rows {
        for (a, x) in acc.iter_mut().zip(row) {
            *a += x;
        }
        n += 1;
    }
    let n = n.max(1) as f32;
    acc.iter_mut().for_each(|a| *a /= n);
    acc
}
