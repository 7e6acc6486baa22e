//! NewsMTSC (Hamborg & Donnay, EACL 2021; `data/newsmtsc/`): sentences with
//! target mentions labelled with the sentence's sentiment toward them.
//!
//! Polarity 2 is negative, 4 neutral, 6 positive; here they are read as
//! AGAINST, NEUTRAL and FAVOR so that [`Scores`](super::Scores) counts them,
//! and [`Scores::macro_f1`](super::Scores::macro_f1) gives the paper's F1m.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::pipeline::StanceLabel;
use crate::stance::learned::encoder::SentenceInput;

/// One sentence and its labelled mentions.
#[derive(Debug, Clone)]
pub struct Sentence {
    pub text: String,
    pub targets: Vec<Mention>,
}

/// One labelled mention, as a byte range of the sentence.
#[derive(Debug, Clone)]
pub struct Mention {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub gold: StanceLabel,
}

#[derive(Deserialize)]
struct RawTarget {
    from: usize,
    to: usize,
    mention: String,
    polarity: f64,
}

#[derive(Deserialize)]
struct RawSentence {
    sentence_normalized: String,
    targets: Vec<RawTarget>,
}

/// Byte offset of code point `c` in `s` (NewsMTSC counts code points).
fn byte_at(s: &str, c: usize) -> usize {
    s.char_indices().nth(c).map_or(s.len(), |(b, _)| b)
}

/// Reads a NewsMTSC JSON-lines file.
pub fn load(path: &Path) -> anyhow::Result<Vec<Sentence>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            let raw: RawSentence = serde_json::from_str(line)
                .with_context(|| format!("{}:{}", path.display(), n + 1))?;
            let targets = raw
                .targets
                .into_iter()
                .map(|t| {
                    let gold = match t.polarity as i64 {
                        2 => StanceLabel::Against,
                        4 => StanceLabel::Neutral,
                        6 => StanceLabel::Favor,
                        p => anyhow::bail!("{}:{}: polarity {p}", path.display(), n + 1),
                    };
                    Ok(Mention {
                        start: byte_at(&raw.sentence_normalized, t.from),
                        end: byte_at(&raw.sentence_normalized, t.to),
                        text: t.mention,
                        gold,
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            Ok(Sentence {
                text: raw.sentence_normalized,
                targets,
            })
        })
        .collect()
}

/// The learned encoder's inputs: every labelled mention of every sentence.
pub fn encoder_inputs(sentences: &[Sentence]) -> Vec<SentenceInput<'_>> {
    sentences
        .iter()
        .map(|s| SentenceInput {
            text: &s.text,
            mentions: s.targets.iter().map(|m| (m.start, m.end)).collect(),
        })
        .collect()
}

/// The label of a (negative, neutral, positive) logit triple.
pub fn label_of(logits: Option<[f32; 3]>) -> StanceLabel {
    let Some(l) = logits else {
        return StanceLabel::Neutral;
    };
    let best = (0..3).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap_or(1);
    [
        StanceLabel::Against,
        StanceLabel::Neutral,
        StanceLabel::Favor,
    ][best]
}
