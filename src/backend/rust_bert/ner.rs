//! A Hugging Face token-classification model as an [`EntityRecognizer`].

use std::path::Path;
use std::sync::Mutex;

use rust_bert::pipelines::common::TokenizerOption;
use rust_bert::pipelines::token_classification::{
    LabelAggregationOption, TokenClassificationConfig, TokenClassificationOption,
};
use rust_tokenizers::{Mask, TokenIdsWithOffsets};
use tch::{Kind, Tensor};

use super::aggregation::{aggregate_words, group_entities, EntityGroup, PieceScores};
use super::model_dir::{pipeline_config, ModelDir, Pieces, TransformerError};
use super::softmax;
use super::whitespace::FoldedText;
use super::windows::plan_windows;
use crate::backend::spacy::SpacyRecognizer;
use crate::config::{Aggregation, TransformerConfig};
use crate::pipeline::{AnalysisError, EntityRecognizer, Mention, ModelInfo, Recognized, Sentence};
use crate::text::OffsetMap;

/// Windows per forward pass: enough to keep the cores busy on a long
/// article, few enough to bound the activations' memory.
const WINDOWS_PER_BATCH: usize = 8;

/// The word pieces of a text and the model's logits for each (special
/// tokens left out), every piece predicted in the window that gives it the
/// most context.
#[derive(Debug, Clone, PartialEq)]
pub struct PieceLogits {
    pub ids: Vec<i64>,
    /// Code-point range of each piece in the text.
    pub offsets: Vec<(usize, usize)>,
    /// Whether each piece continues the previous piece's word.
    pub is_subword: Vec<bool>,
    pub logits: Vec<Vec<f32>>,
}

/// A loaded token classifier and its tokenizer.
pub struct TokenClassifier {
    dir: ModelDir,
    tokenizer: TokenizerOption,
    /// libtorch modules are `Send` but not `Sync`: one forward pass at a
    /// time (each pass uses every libtorch thread).
    model: Mutex<TokenClassificationOption>,
    /// Word pieces per window, special tokens left out.
    capacity: usize,
    overlap: usize,
    unk_id: i64,
    pad_id: i64,
}

impl TokenClassifier {
    /// Loads the model in `dir` on the CPU. `window_tokens` 0 means the
    /// model's own limit (at most 512).
    pub fn load(
        dir: &Path,
        window_tokens: usize,
        overlap: usize,
    ) -> Result<TokenClassifier, TransformerError> {
        let dir = ModelDir::open(dir)?;
        if dir.labels.is_empty() {
            return Err(TransformerError::Config {
                path: dir.config.clone(),
                message: "no id2label: a token classifier needs its labels".into(),
            });
        }
        let tokenizer = dir.tokenizer()?;
        let config_file = dir.rust_bert_config()?;
        let config = pipeline_config!(
            &dir,
            &config_file,
            TokenClassificationConfig {
                label_aggregation_function: LabelAggregationOption::First,
                batch_size: WINDOWS_PER_BATCH,
            }
        );
        let model = TokenClassificationOption::new(&config).map_err(|e| dir.rust_bert_error(e))?;
        if !matches!(
            model,
            TokenClassificationOption::Bert(_)
                | TokenClassificationOption::Roberta(_)
                | TokenClassificationOption::XLMRoberta(_)
                | TokenClassificationOption::DistilBert(_)
                | TokenClassificationOption::Deberta(_)
                | TokenClassificationOption::DebertaV2(_)
                | TokenClassificationOption::Electra(_)
        ) {
            return Err(TransformerError::Unsupported {
                dir: dir.path.clone(),
                model_type: dir.model_type_name.clone(),
                task: "token classification",
                supported: "bert, roberta, xlm-roberta, distilbert, deberta, deberta-v2, electra",
            });
        }
        let limit = if window_tokens == 0 {
            dir.max_positions.min(512)
        } else {
            window_tokens.min(dir.max_positions)
        };
        let specials = tokenizer
            .build_input_with_special_tokens(empty_ids(), None)
            .token_ids
            .len();
        let capacity = limit.saturating_sub(specials).max(1);
        let unk_id = tokenizer.get_unk_id();
        let pad_id = tokenizer.get_pad_id().unwrap_or(0);
        Ok(TokenClassifier {
            dir,
            tokenizer,
            model: Mutex::new(model),
            capacity,
            overlap: overlap.min(capacity / 2),
            unk_id,
            pad_id,
        })
    }

    pub fn model_dir(&self) -> &ModelDir {
        &self.dir
    }

    /// Entity types (labels without `B-`/`I-`, `O` left out).
    pub fn entity_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .dir
            .labels
            .iter()
            .map(|l| {
                l.strip_prefix("B-")
                    .or_else(|| l.strip_prefix("I-"))
                    .unwrap_or(l)
                    .to_string()
            })
            .filter(|l| l != "O")
            .collect();
        types.sort();
        types.dedup();
        types
    }

    /// Tokenizes `text` and runs the model over it in windows.
    pub fn piece_logits(&self, text: &str) -> Result<PieceLogits, AnalysisError> {
        let pieces_kind = self.dir.pieces();
        let folded = (pieces_kind == Pieces::SentencePiece).then(|| FoldedText::new(text));
        let tokenized = folded.as_ref().map_or(text, |f| f.text.as_str());
        let tokens = self.tokenizer.tokenize_with_offsets(tokenized);
        let ids = self.tokenizer.convert_tokens_to_ids(&tokens.tokens);
        let chars: Vec<char> = text.chars().collect();
        let mut kept = PieceLogits {
            ids: Vec::new(),
            offsets: Vec::new(),
            is_subword: Vec::new(),
            logits: Vec::new(),
        };
        // Pieces that map to no text (none for the supported tokenizers)
        // cannot be placed, so they are left out.
        let mut pieces = Vec::new();
        let trim = pieces_kind == Pieces::ByteLevelBpe;
        let add_prefix_space = self.dir.add_prefix_space.unwrap_or(false);
        for (i, offset) in tokens.offsets.iter().enumerate() {
            let Some(offset) = offset else { continue };
            let (mut start, mut end) = (offset.begin as usize, offset.end as usize);
            if let Some(folded) = &folded {
                (start, end) = folded.original_range(start, end);
            }
            if trim {
                (start, end) =
                    trim_space_offsets(&tokens.tokens[i], start, end, i == 0, add_prefix_space);
            }
            let is_subword = if ids[i] == self.unk_id {
                // An unknown piece is a word of its own, whatever it covers.
                false
            } else if pieces_kind == Pieces::WordPiece {
                tokens.tokens[i].chars().count() != end - start
            } else {
                start > 0 && chars.get(start - 1) != Some(&' ') && chars.get(start) != Some(&' ')
            };
            pieces.push(i);
            kept.ids.push(ids[i]);
            kept.offsets.push((start, end));
            kept.is_subword.push(is_subword);
        }
        let windows = plan_windows(pieces.len(), self.capacity, self.overlap);
        // Windows of one length share a forward pass; padding a short last
        // window up to the others' length would cost as much as a full one.
        let batches = windows.chunk_by(|a, b| a.run.len() == b.run.len());
        for batch in batches.flat_map(|same| same.chunks(WINDOWS_PER_BATCH)) {
            let inputs: Vec<_> = batch
                .iter()
                .map(|w| {
                    let slice = &pieces[w.run.clone()];
                    self.tokenizer.build_input_with_special_tokens(
                        TokenIdsWithOffsets {
                            ids: slice.iter().map(|&i| ids[i]).collect(),
                            offsets: slice.iter().map(|&i| tokens.offsets[i]).collect(),
                            reference_offsets: slice
                                .iter()
                                .map(|&i| tokens.reference_offsets[i].clone())
                                .collect(),
                            masks: slice.iter().map(|&i| tokens.masks[i]).collect(),
                        },
                        None,
                    )
                })
                .collect();
            let rows: Vec<(Vec<i64>, Vec<i8>)> = inputs
                .iter()
                .map(|t| (t.token_ids.clone(), t.segment_ids.clone()))
                .collect();
            let logits = self.forward(&rows)?;
            for ((w, input), window_logits) in batch.iter().zip(&inputs).zip(logits) {
                // Row positions of the window's own pieces, in order.
                let positions: Vec<usize> = input
                    .special_tokens_mask
                    .iter()
                    .enumerate()
                    .filter(|(_, &m)| m == 0)
                    .map(|(p, _)| p)
                    .collect();
                if positions.len() != w.run.len() {
                    return Err(AnalysisError::Model(format!(
                        "window of {} pieces came back with {} positions",
                        w.run.len(),
                        positions.len()
                    )));
                }
                for k in w.keep.clone() {
                    kept.logits
                        .push(window_logits[positions[k - w.run.start]].clone());
                }
            }
        }
        Ok(kept)
    }

    /// Entities in `text`, aggregated by `strategy`.
    pub fn entities(
        &self,
        text: &str,
        strategy: Aggregation,
    ) -> Result<Vec<EntityGroup>, AnalysisError> {
        let pieces = self.piece_logits(text)?;
        let scores: Vec<PieceScores> = pieces
            .offsets
            .iter()
            .zip(&pieces.is_subword)
            .zip(&pieces.logits)
            .map(|(((start, end), &is_subword), logits)| PieceScores {
                start_char: *start,
                end_char: *end,
                is_subword,
                probs: softmax(logits),
            })
            .collect();
        let words = aggregate_words(&scores, strategy);
        Ok(group_entities(&words, &self.dir.labels))
    }

    /// Logits for each row of ids: `[row][position][label]`.
    fn forward(&self, rows: &[(Vec<i64>, Vec<i8>)]) -> Result<Vec<Vec<Vec<f32>>>, AnalysisError> {
        let (ids, mask, types) = pad_rows(rows, self.pad_id);
        let model = self
            .model
            .lock()
            // The weights are never written: a call that panicked while
            // holding the lock (answered INTERNAL) leaves nothing half-done.
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let token_types = self.dir.uses_token_types().then_some(&types);
        let logits = tch::no_grad(|| -> Result<Tensor, AnalysisError> {
            let ids = Some(&ids);
            let mask = Some(&mask);
            let failed = |e: rust_bert::RustBertError| AnalysisError::Model(e.to_string());
            Ok(match &*model {
                TokenClassificationOption::Bert(m) => {
                    m.forward_t(ids, mask, token_types, None, None, false)
                        .logits
                }
                TokenClassificationOption::Roberta(m)
                | TokenClassificationOption::XLMRoberta(m) => {
                    m.forward_t(ids, mask, token_types, None, None, false)
                        .logits
                }
                TokenClassificationOption::Electra(m) => {
                    m.forward_t(ids, mask, token_types, None, None, false)
                        .logits
                }
                TokenClassificationOption::DistilBert(m) => {
                    m.forward_t(ids, mask, None, false).map_err(failed)?.logits
                }
                TokenClassificationOption::Deberta(m) => {
                    m.forward_t(ids, mask, token_types, None, None, false)
                        .map_err(failed)?
                        .logits
                }
                TokenClassificationOption::DebertaV2(m) => {
                    m.forward_t(ids, mask, token_types, None, None, false)
                        .map_err(failed)?
                        .logits
                }
                _ => return Err(AnalysisError::Model("unsupported architecture".into())),
            })
        })?;
        drop(model);
        tensor_rows3(&logits)
    }
}

/// Puts each entity, as a mention with char and byte offsets, into the
/// sentence it starts in (else the last one before it), replacing the
/// spaCy mentions there. Whitespace at either end of an entity is left out
/// of its span, and an entity of whitespace only (byte-level BPE models have
/// pieces that are only a space, `Ġ`, which the pipeline's grouping can turn
/// into an entity) is dropped: nothing a caller could use.
fn place_entities(text: &str, entities: Vec<EntityGroup>, sentences: &mut [Sentence]) {
    let map = OffsetMap::new(text);
    // Byte offset of every code point, and of the end.
    let bytes: Vec<usize> = text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .collect();
    for sentence in sentences.iter_mut() {
        sentence.mentions.clear();
    }
    for entity in entities {
        let (Some(&start), Some(&end)) = (bytes.get(entity.start_char), bytes.get(entity.end_char))
        else {
            continue;
        };
        // SentencePiece pieces (XLM-R) carry the space before them, so the
        // pipeline's entities can start on one; a caller wants the name.
        let slice = &text[start..end];
        let start = start + (slice.len() - slice.trim_start().len());
        let end = end - (slice.len() - slice.trim_end().len());
        if start >= end {
            continue;
        }
        let mention = Mention {
            text: text[start..end].to_string(),
            label: entity.label,
            span: map.span(start, end),
        };
        let index = sentences
            .iter()
            .rposition(|s| s.span.start_byte <= start)
            .unwrap_or(0);
        if let Some(sentence) = sentences.get_mut(index) {
            sentence.mentions.push(mention);
        }
    }
}

/// The offsets of a byte-level BPE piece without the spaces it carries, as
/// the Hugging Face fast tokenizers report them (`trim_offsets`): rust
/// tokenizers counts the space a `Ġ` stands for as part of the piece, so
/// `ĠSmith` covers " Smith" there and "Smith" in `transformers`. A piece of
/// spaces only ends up empty, at its end; the first piece keeps its start
/// when the tokenizer adds a prefix space (that space is not in the text).
fn trim_space_offsets(
    piece: &str,
    start: usize,
    end: usize,
    first: bool,
    add_prefix_space: bool,
) -> (usize, usize) {
    const SPACE: char = '\u{120}'; // 'Ġ', the byte-level symbol for b' '
    let is_space = |c: &char| *c == SPACE || c.is_whitespace();
    let leading = piece.chars().take_while(is_space).count();
    let trailing = piece.chars().rev().take_while(is_space).count();
    let (mut start, mut end) = (start, end);
    if leading > 0 && !(add_prefix_space && (first || start == 0)) {
        start = (start + leading).min(end);
    }
    if trailing > 0 && end >= trailing {
        end = (end - trailing).max(start);
    }
    (start, end)
}

/// Pads rows of ids to one length: ids, attention mask and segment ids.
pub(crate) fn pad_rows(rows: &[(Vec<i64>, Vec<i8>)], pad_id: i64) -> (Tensor, Tensor, Tensor) {
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows.len() * width);
    let mut mask = Vec::with_capacity(rows.len() * width);
    let mut types = Vec::with_capacity(rows.len() * width);
    for (row, segments) in rows {
        for p in 0..width {
            ids.push(row.get(p).copied().unwrap_or(pad_id));
            mask.push(i64::from(p < row.len()));
            types.push(segments.get(p).map_or(0, |&s| i64::from(s)));
        }
    }
    let shape = [rows.len() as i64, width as i64];
    (
        Tensor::from_slice(&ids).view(shape),
        Tensor::from_slice(&mask).view(shape),
        Tensor::from_slice(&types).view(shape),
    )
}

/// A `[batch, seq, labels]` tensor as nested vectors.
fn tensor_rows3(t: &Tensor) -> Result<Vec<Vec<Vec<f32>>>, AnalysisError> {
    let size = t.size();
    let [b, s, l] = size[..] else {
        return Err(AnalysisError::Model(format!("logits of shape {size:?}")));
    };
    let flat = flat_f32(t)?;
    let (s, l) = (s as usize, l as usize);
    Ok((0..b as usize)
        .map(|i| {
            (0..s)
                .map(|j| flat[(i * s + j) * l..(i * s + j + 1) * l].to_vec())
                .collect()
        })
        .collect())
}

/// Every element of `t` as f32, in row-major order.
pub(crate) fn flat_f32(t: &Tensor) -> Result<Vec<f32>, AnalysisError> {
    let flat = t.to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&flat).map_err(|e| AnalysisError::Model(e.to_string()))
}

fn empty_ids() -> TokenIdsWithOffsets {
    TokenIdsWithOffsets {
        ids: Vec::new(),
        offsets: Vec::new(),
        reference_offsets: Vec::new(),
        masks: Vec::<Mask>::new(),
    }
}

/// Entities from a transformer token classifier; tokens, sentences and (when
/// the parser runs) syntax from the native spaCy pipeline, which the stance
/// engine reads.
pub struct TransformerRecognizer {
    spacy: SpacyRecognizer,
    classifier: TokenClassifier,
    aggregation: Aggregation,
}

impl TransformerRecognizer {
    pub fn load(
        dir: &Path,
        spacy: SpacyRecognizer,
        config: &TransformerConfig,
    ) -> Result<TransformerRecognizer, TransformerError> {
        let classifier = TokenClassifier::load(dir, config.window_tokens, config.window_overlap)?;
        Ok(TransformerRecognizer {
            spacy,
            classifier,
            aggregation: config.aggregation,
        })
    }
}

impl EntityRecognizer for TransformerRecognizer {
    fn model_info(&self) -> ModelInfo {
        let spacy = self.spacy.model_info();
        let dir = self.classifier.model_dir();
        let mut components = spacy.components;
        components.push(format!("transformer-ner:{}", dir.model_type_name));
        ModelInfo {
            task: "ner".into(),
            name: dir.name.clone(),
            version: String::new(),
            backend: "rust-bert".into(),
            labels: self.classifier.entity_types(),
            components,
            sha256: None,
            training_data: None,
        }
    }

    fn recognize(&self, text: &str) -> Result<Recognized, AnalysisError> {
        let mut doc = self.spacy.recognize(text)?;
        let entities = self.classifier.entities(text, self.aggregation)?;
        place_entities(text, entities, &mut doc.sentences);
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_pieces_lose_the_spaces_they_carry() {
        // "Paris  is": `ĠSmith`-like pieces start after their space.
        assert_eq!(trim_space_offsets("\u{120}is", 6, 9, false, false), (7, 9));
        // A piece of one space is empty, at its end.
        assert_eq!(trim_space_offsets("\u{120}", 5, 6, false, false), (6, 6));
        // A newline (`Ċ`) is not trimmed, nor a piece without spaces.
        assert_eq!(
            trim_space_offsets("\u{10a}", 16, 17, false, false),
            (16, 17)
        );
        assert_eq!(trim_space_offsets("aris", 1, 5, false, false), (1, 5));
        // With an added prefix space, the first piece's space is not in the
        // text, so its start stays.
        assert_eq!(trim_space_offsets("\u{120}John", 0, 4, true, true), (0, 4));
    }

    fn group(label: &str, start_char: usize, end_char: usize) -> EntityGroup {
        EntityGroup {
            label: label.into(),
            start_char,
            end_char,
            score: 0.9,
        }
    }

    #[test]
    fn entities_go_to_their_sentence_and_empty_ones_are_left_out() {
        let text = "Zürich is big. Anna  met Bob.";
        let map = OffsetMap::new(text);
        let sentence = |index: usize, start: usize, end: usize| Sentence {
            index,
            span: map.span(start, end),
            text: text[start..end].to_string(),
            first_token: 0,
            tokens: Vec::new(),
            mentions: vec![Mention {
                text: "spaCy".into(),
                label: "ORG".into(),
                span: map.span(0, 1),
            }],
        };
        let second = text.find("Anna").unwrap();
        let mut sentences = vec![sentence(0, 0, second - 1), sentence(1, second, text.len())];
        let entities = vec![
            group("LOC", 0, 6),
            group("PER", 15, 19),
            group("MISC", 20, 20), // nothing
            group("MISC", 19, 21), // two spaces
            group("PER", 24, 28),  // " Bob": XLM-R pieces carry their space
            group("ORG", 40, 44),  // past the end
        ];
        place_entities(text, entities, &mut sentences);
        let got: Vec<Vec<(&str, &str, usize, usize)>> = sentences
            .iter()
            .map(|s| {
                s.mentions
                    .iter()
                    .map(|m| {
                        (
                            m.label.as_str(),
                            m.text.as_str(),
                            m.span.start_char,
                            m.span.start_byte,
                        )
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            got,
            [
                vec![("LOC", "Zürich", 0, 0)],
                vec![("PER", "Anna", 15, 16), ("PER", "Bob", 25, 26)],
            ]
        );
    }
}
