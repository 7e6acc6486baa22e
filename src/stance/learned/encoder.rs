//! The learned model's sentence encoder: all-MiniLM-L6-v2 (BERT) with the
//! trained adapter merged in, run natively on the CPU ([`super::bert`]),
//! and its head.
//!
//! It knows sentences and character ranges in them, nothing of targets,
//! articles or stance decisions: [`SentenceEncoder::classify`] takes
//! sentences with the mention ranges to read off each, encodes each
//! sentence once (packed with others into passes, see [`super::bert`]), and
//! returns three logits per mention
//! (negative, neutral, positive), exactly as `training/stance/common.py`
//! computes them.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use super::adapter::{Adapter, AdapterError};
use super::bert::{Bert, BertConfig};
use super::head::{mean, Head};

/// One sentence and the byte ranges (within it) of the mentions to
/// classify: the pipeline's [`MentionQuery`](crate::pipeline::MentionQuery).
pub type SentenceInput<'a> = crate::pipeline::MentionQuery<'a>;

/// Settings of the encoder that do not change what it computes for a
/// sentence that fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderLimits {
    /// Word pieces per encoder row, `[CLS]` and `[SEP]` included. A longer
    /// sentence is read through windows of this size around its mentions.
    pub max_pieces: usize,
    /// Word pieces per forward pass: rows are packed whole, one after the
    /// other, until the next would pass this (a longer row goes alone).
    pub batch_pieces: usize,
    /// Windows read from one sentence longer than `max_pieces`; mentions
    /// past them get no probabilities.
    pub max_windows: usize,
}

impl Default for EncoderLimits {
    fn default() -> Self {
        EncoderLimits {
            max_pieces: 256,
            batch_pieces: 1024,
            max_windows: 4,
        }
    }
}

/// The base encoder with the adapter merged into it, plus the head.
pub struct SentenceEncoder {
    bert: Bert,
    tokenizer: Tokenizer,
    head: Head,
    cls: u32,
    sep: u32,
    limits: EncoderLimits,
}

/// Word pieces a memo keeps the hidden states of, at most: with hidden 384,
/// about 25 MB. The articles this service is for fit several times over.
const MEMO_PIECES: usize = 16_384;

/// Hidden states of the rows the encoder already ran for one document,
/// keyed by the row's word pieces, so that a later call on the same
/// document (the relations after the stance) reads them instead of running
/// them again. A row attends only to itself, so a read gives what running
/// it again would compute (up to the rounding of a pass packed with other
/// rows, about 1e-6; `tests/learned_stance.rs`). Bounded by
/// [`MEMO_PIECES`]: past that, rows are run and not kept.
#[derive(Debug, Default)]
pub struct EncodedRows {
    states: HashMap<Vec<u32>, Vec<f32>>,
    pieces: usize,
}

impl EncodedRows {
    fn keep(&mut self, ids: &[u32], states: Vec<f32>) {
        if self.pieces + ids.len() <= MEMO_PIECES && !self.states.contains_key(ids) {
            self.pieces += ids.len();
            self.states.insert(ids.to_vec(), states);
        }
    }

    /// Rows kept.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
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
        let config: BertConfig = serde_json::from_str(&config_text)
            .map_err(|e| AdapterError::invalid(&config_path, format!("not a BERT config: {e}")))?;
        let weights = base.join("model.safetensors");
        let mut tensors: HashMap<String, Tensor> =
            candle_core::safetensors::load(&weights, &device)
                .map_err(|e| AdapterError::invalid(&weights, e.to_string()))?;
        adapter.merge_into(&mut tensors)?;
        let bert = Bert::load(&config, tensors)
            .map_err(|e| AdapterError::invalid(&weights, format!("cannot build BERT: {e}")))?;
        let head = adapter.head(bert.hidden())?;

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
            max_pieces: limits.max_pieces.clamp(8, bert.max_positions()),
            batch_pieces: limits.batch_pieces.max(1),
            max_windows: limits.max_windows.max(1),
        };
        Ok(SentenceEncoder {
            bert,
            tokenizer,
            head,
            cls,
            sep,
            limits,
        })
    }

    /// Logits (negative, neutral, positive) for every mention of every
    /// sentence, in input order. A mention that covers no word piece
    /// (punctuation only) gets `None`.
    pub fn classify(
        &self,
        sentences: &[SentenceInput],
    ) -> Result<Vec<Vec<Option<[f32; 3]>>>, String> {
        self.classify_with(sentences, &mut EncodedRows::default())
    }

    /// [`SentenceEncoder::classify`], reading the rows `memo` holds instead
    /// of running them again and keeping the ones it runs (within the
    /// memo's bound).
    pub fn classify_with(
        &self,
        sentences: &[SentenceInput],
        memo: &mut EncodedRows,
    ) -> Result<Vec<Vec<Option<[f32; 3]>>>, String> {
        let mut out: Vec<Vec<Option<[f32; 3]>>> = sentences
            .iter()
            .map(|s| vec![None; s.mentions.len()])
            .collect();
        let mut rows = Vec::new();
        for (si, sentence) in sentences.iter().enumerate() {
            self.rows_for(si, sentence, &mut rows)?;
        }
        // The rows to run: not in the memo, each distinct row once.
        let mut seen = HashSet::new();
        let missing: Vec<&[u32]> = rows
            .iter()
            .map(|r| r.ids.as_slice())
            .filter(|ids| !memo.states.contains_key(*ids) && seen.insert(*ids))
            .collect();
        let threads = candle_core::utils::get_num_threads();
        let mut fresh: HashMap<&[u32], Vec<f32>> = HashMap::new();
        let mut start = 0;
        while start < missing.len() {
            let mut end = start + 1;
            let mut pieces = missing[start].len();
            while end < missing.len() && pieces + missing[end].len() <= self.limits.batch_pieces {
                pieces += missing[end].len();
                end += 1;
            }
            let pass = &missing[start..end];
            let states = self.bert.forward(pass, threads)?;
            let d = self.bert.hidden();
            let mut at = 0;
            for ids in pass {
                let n = ids.len() * d;
                fresh.insert(*ids, states[at..at + n].to_vec());
                at += n;
            }
            start = end;
        }
        for row in &rows {
            let states = match memo.states.get(&row.ids) {
                Some(states) => states,
                None => fresh
                    .get(row.ids.as_slice())
                    .ok_or("a row was neither run nor kept")?,
            };
            for (si, mi, logits) in self.read_row(row, states) {
                out[si][mi] = Some(logits);
            }
        }
        for (ids, states) in fresh {
            memo.keep(ids, states);
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

    /// Logits of a row's mentions from its hidden states (pieces × hidden).
    fn read_row(&self, row: &Row, states: &[f32]) -> Vec<(usize, usize, [f32; 3])> {
        let d = self.bert.hidden();
        let sentence = mean(states.chunks_exact(d), d);
        row.mentions
            .iter()
            .map(|(si, mi, pieces)| (*si, *mi, self.head.logits(states, pieces, &sentence)))
            .collect()
    }
}
