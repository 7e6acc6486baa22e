//! Evaluation of stance decisions against hand-annotated sets.
//!
//! A set is a JSON-lines file (`eval/stance/real.jsonl`), one item a line:
//! `id`, the text inline as `text` or as `text_path` (relative to the set
//! file), and `targets`, a list of `{name, stance}` with stance `FAVOR`,
//! `AGAINST` or `NEUTRAL`. Other fields (source, licence, annotator) are
//! carried for people, not read here.
//!
//! [`evaluate`] runs a whole [`Pipeline`] (tokenizer, parser sentences, NER,
//! stance) with the annotated targets as explicit targets; [`Scores`] holds
//! the confusion table and computes the figures the issue asks for.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::pipeline::{AnalyzeOptions, Pipeline, StanceLabel, StanceMode};

pub mod newsmtsc;

/// The labels in table order.
pub const LABELS: [StanceLabel; 3] = [
    StanceLabel::Favor,
    StanceLabel::Against,
    StanceLabel::Neutral,
];

fn index(label: StanceLabel) -> usize {
    match label {
        StanceLabel::Favor => 0,
        StanceLabel::Against => 1,
        StanceLabel::Neutral => 2,
    }
}

fn parse_label(s: &str) -> Option<StanceLabel> {
    match s.trim().to_ascii_uppercase().as_str() {
        "FAVOR" => Some(StanceLabel::Favor),
        "AGAINST" => Some(StanceLabel::Against),
        "NEUTRAL" => Some(StanceLabel::Neutral),
        _ => None,
    }
}

/// One annotated text.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    pub id: String,
    pub text: String,
    /// Target names with their gold labels.
    pub targets: Vec<(String, StanceLabel)>,
}

#[derive(Deserialize)]
struct RawTarget {
    name: String,
    stance: String,
}

#[derive(Deserialize)]
struct RawItem {
    id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    text_path: Option<String>,
    targets: Vec<RawTarget>,
}

/// Reads an annotated set.
pub fn load_set(path: &Path) -> anyhow::Result<Vec<EvalItem>> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    for (n, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let where_ = || format!("{} line {}", path.display(), n + 1);
        let raw: RawItem = serde_json::from_str(line).with_context(where_)?;
        let text = match (raw.text, raw.text_path) {
            (Some(t), None) => t,
            (None, Some(p)) => {
                let file = base.join(&p);
                std::fs::read_to_string(&file)
                    .with_context(|| format!("{}: reading {}", where_(), file.display()))?
            }
            _ => bail!("{}: give exactly one of text and text_path", where_()),
        };
        let mut targets = Vec::new();
        for t in raw.targets {
            let Some(label) = parse_label(&t.stance) else {
                bail!("{}: unknown stance {:?}", where_(), t.stance);
            };
            targets.push((t.name, label));
        }
        if targets.is_empty() {
            bail!("{}: no targets", where_());
        }
        items.push(EvalItem {
            id: raw.id,
            text,
            targets,
        });
    }
    Ok(items)
}

/// The decision on one target of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub item: String,
    pub target: String,
    pub gold: StanceLabel,
    /// `None` when the pipeline returned no stance for the target.
    pub predicted: Option<StanceLabel>,
    pub score: f32,
    /// The reasons of the evidence, strongest first.
    pub reasons: Vec<String>,
}

/// Runs the pipeline over every item with its targets as explicit targets.
pub fn evaluate(pipeline: &Pipeline, items: &[EvalItem]) -> anyhow::Result<Vec<Prediction>> {
    let mut out = Vec::new();
    for item in items {
        let options = AnalyzeOptions {
            entity_labels: Vec::new(),
            stance: StanceMode::Explicit(item.targets.iter().map(|t| t.0.clone()).collect()),
        };
        let analysis = pipeline
            .analyze_collect(&item.text, &options)
            .with_context(|| format!("analyzing item {}", item.id))?;
        for (name, gold) in &item.targets {
            let stance = analysis.stances.iter().find(|s| &s.target == name);
            out.push(Prediction {
                item: item.id.clone(),
                target: name.clone(),
                gold: *gold,
                predicted: stance.map(|s| s.label),
                score: stance.map_or(0.0, |s| s.score),
                reasons: stance
                    .map(|s| s.evidence.iter().map(|e| e.reason.clone()).collect())
                    .unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// Precision, recall and F1 of one label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold items with this label.
    pub support: usize,
}

/// A confusion table, gold by predicted (rows and columns in [`LABELS`]
/// order); a missing prediction counts as NEUTRAL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scores {
    pub confusion: [[usize; 3]; 3],
}

impl Scores {
    pub fn from_predictions(predictions: &[Prediction]) -> Scores {
        Scores::from_pairs(
            predictions
                .iter()
                .map(|p| (p.gold, p.predicted.unwrap_or(StanceLabel::Neutral))),
        )
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (StanceLabel, StanceLabel)>) -> Scores {
        let mut s = Scores::default();
        for (gold, pred) in pairs {
            s.confusion[index(gold)][index(pred)] += 1;
        }
        s
    }

    pub fn total(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let correct: usize = (0..3).map(|i| self.confusion[i][i]).sum();
        ratio(correct, self.total())
    }

    pub fn prf(&self, label: StanceLabel) -> Prf {
        let k = index(label);
        let tp = self.confusion[k][k];
        let predicted: usize = (0..3).map(|g| self.confusion[g][k]).sum();
        let support: usize = self.confusion[k].iter().sum();
        let precision = ratio(tp, predicted);
        let recall = ratio(tp, support);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Prf {
            precision,
            recall,
            f1,
            support,
        }
    }

    /// Macro-F1 over all three labels (NewsMTSC's F1m).
    pub fn macro_f1(&self) -> f64 {
        LABELS.iter().map(|&l| self.prf(l).f1).sum::<f64>() / LABELS.len() as f64
    }

    /// Mean F1 of FAVOR and AGAINST (the usual stance-detection figure).
    pub fn macro_f1_favor_against(&self) -> f64 {
        (self.prf(StanceLabel::Favor).f1 + self.prf(StanceLabel::Against).f1) / 2.0
    }

    /// The most frequent gold label (ties: NEUTRAL, then FAVOR).
    pub fn majority_label(&self) -> StanceLabel {
        let support = |l: StanceLabel| self.confusion[index(l)].iter().sum::<usize>();
        let mut best = StanceLabel::Neutral;
        for l in [StanceLabel::Favor, StanceLabel::Against] {
            if support(l) > support(best) {
                best = l;
            }
        }
        best
    }

    /// The scores of always predicting the majority label.
    pub fn majority_baseline(&self) -> Scores {
        let m = index(self.majority_label());
        let mut s = Scores::default();
        for g in 0..3 {
            s.confusion[g][m] = self.confusion[g].iter().sum();
        }
        s
    }

    /// A plain-text report: the figures beside the majority baseline, the
    /// per-label table and the confusion table.
    pub fn report(&self) -> String {
        let base = self.majority_baseline();
        let mut out = String::new();
        let _ = writeln!(out, "targets: {}", self.total());
        let _ = writeln!(
            out,
            "{:<26} {:>8} {:>10}",
            "",
            "engine",
            format!("majority ({})", self.majority_label().as_str())
        );
        let _ = writeln!(
            out,
            "{:<26} {:>8.3} {:>10.3}",
            "macro-F1 (FAVOR, AGAINST)",
            self.macro_f1_favor_against(),
            base.macro_f1_favor_against()
        );
        let _ = writeln!(
            out,
            "{:<26} {:>8.3} {:>10.3}",
            "accuracy",
            self.accuracy(),
            base.accuracy()
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<8} {:>9} {:>7} {:>6} {:>5}",
            "label", "precision", "recall", "F1", "gold"
        );
        for l in LABELS {
            let p = self.prf(l);
            let _ = writeln!(
                out,
                "{:<8} {:>9.3} {:>7.3} {:>6.3} {:>5}",
                l.as_str(),
                p.precision,
                p.recall,
                p.f1,
                p.support
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "confusion (rows gold, columns predicted)");
        let _ = writeln!(
            out,
            "{:<8} {:>7} {:>7} {:>7}",
            "", "FAVOR", "AGAINST", "NEUTRAL"
        );
        for l in LABELS {
            let row = self.confusion[index(l)];
            let _ = writeln!(
                out,
                "{:<8} {:>7} {:>7} {:>7}",
                l.as_str(),
                row[0],
                row[1],
                row[2]
            );
        }
        out
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StanceLabel::*;

    #[test]
    fn scores_and_baseline() {
        let s = Scores::from_pairs([
            (Favor, Favor),
            (Favor, Neutral),
            (Against, Against),
            (Against, Favor),
            (Neutral, Neutral),
            (Neutral, Neutral),
            (Neutral, Against),
        ]);
        assert_eq!(s.total(), 7);
        assert!((s.accuracy() - 4.0 / 7.0).abs() < 1e-9);
        let f = s.prf(Favor);
        assert!((f.precision - 0.5).abs() < 1e-9 && (f.recall - 0.5).abs() < 1e-9);
        assert_eq!(s.majority_label(), Neutral);
        let b = s.majority_baseline();
        assert!((b.accuracy() - 3.0 / 7.0).abs() < 1e-9);
        assert_eq!(b.macro_f1_favor_against(), 0.0);
        assert!(s.report().contains("confusion"));
    }
}
