//! Sentence-level stance on NewsMTSC (Hamborg & Donnay, EACL 2021): the
//! learned sentence model at each labelled mention, and the lexicon engine
//! with the mention as an explicit target, on `devtest_rw` and `devtest_mt`.
//!
//! ```sh
//! cargo run --release --example newsmtsc_eval [-- FILE...]
//! ```
//!
//! Prints F1m (macro-F1 over negative, neutral, positive: the paper's
//! measure) and accuracy for both, beside the majority baseline.

use std::path::{Path, PathBuf};

use anyhow::Context;
use article_analyzer::backend::load_pipeline;
use article_analyzer::config::{ModelConfig, StanceEngine};
use article_analyzer::pipeline::{AnalyzeOptions, Pipeline, StanceLabel, StanceMode};
use article_analyzer::stance::learned::encoder::SentenceInput;
use article_analyzer::stance::learned::{LearnedStance, Mode, ModelPaths};
use article_analyzer::stance::LexiconStance;

struct Row {
    text: String,
    /// (code-point start, end, mention, gold class: 0 negative, 1 neutral, 2 positive)
    targets: Vec<(usize, usize, String, usize)>,
}

fn read(path: &Path) -> anyhow::Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let targets = v["targets"]
                .as_array()
                .context("targets")?
                .iter()
                .map(|t| {
                    let class = match t["polarity"].as_f64().unwrap_or(4.0) as i64 {
                        2 => 0,
                        4 => 1,
                        _ => 2,
                    };
                    (
                        t["from"].as_u64().unwrap_or(0) as usize,
                        t["to"].as_u64().unwrap_or(0) as usize,
                        t["mention"].as_str().unwrap_or("").to_string(),
                        class,
                    )
                })
                .collect();
            Ok(Row {
                text: v["sentence_normalized"]
                    .as_str()
                    .context("sentence")?
                    .to_string(),
                targets,
            })
        })
        .collect()
}

fn byte_at(s: &str, c: usize) -> usize {
    s.char_indices().nth(c).map_or(s.len(), |(b, _)| b)
}

/// F1m and accuracy.
fn scores(gold: &[usize], pred: &[usize]) -> (f64, f64) {
    let mut f1 = 0.0;
    for c in 0..3 {
        let count = |g: bool, p: bool| {
            gold.iter()
                .zip(pred)
                .filter(|(x, y)| (**x == c) == g && (**y == c) == p)
                .count() as f64
        };
        let (tp, fp, fneg) = (count(true, true), count(false, true), count(true, false));
        let (pr, re) = (tp / (tp + fp).max(1.0), tp / (tp + fneg).max(1.0));
        f1 += if pr + re > 0.0 {
            2.0 * pr * re / (pr + re)
        } else {
            0.0
        } / 3.0;
    }
    let acc = gold.iter().zip(pred).filter(|(g, p)| g == p).count() as f64 / gold.len() as f64;
    (f1, acc)
}

fn learned(model: &LearnedStance, rows: &[Row]) -> anyhow::Result<Vec<usize>> {
    let inputs: Vec<SentenceInput> = rows
        .iter()
        .map(|r| SentenceInput {
            text: &r.text,
            mentions: r
                .targets
                .iter()
                .map(|t| (byte_at(&r.text, t.0), byte_at(&r.text, t.1)))
                .collect(),
        })
        .collect();
    let logits = model
        .encoder()
        .classify(&inputs)
        .map_err(anyhow::Error::msg)?;
    Ok(logits
        .iter()
        .flatten()
        .map(|l| {
            let l = l.unwrap_or([0.0, 1.0, 0.0]);
            (0..3).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap_or(1)
        })
        .collect())
}

fn lexicon(pipeline: &Pipeline, rows: &[Row]) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for r in rows {
        for t in &r.targets {
            let options = AnalyzeOptions {
                entity_labels: Vec::new(),
                stance: StanceMode::Explicit(vec![t.2.clone()]),
            };
            let a = pipeline.analyze_collect(&r.text, &options)?;
            out.push(match a.stances.first().map(|s| s.label) {
                Some(StanceLabel::Against) => 0,
                Some(StanceLabel::Favor) => 2,
                _ => 1,
            });
        }
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        files = ["devtest_rw.jsonl", "devtest_mt.jsonl"]
            .iter()
            .map(|f| root.join("data/newsmtsc").join(f))
            .collect();
    }
    let config = ModelConfig {
        models_dir: std::env::var_os("ARTICLE_ANALYZER_MODELS").map(PathBuf::from),
        stance: StanceEngine::Lexicon,
        ..ModelConfig::default()
    };
    let pipeline = load_pipeline(&config)?;
    let model = LearnedStance::load(
        &ModelPaths::under(&config.models_root()),
        LexiconStance::embedded()?,
        Mode::LearnedOnly,
    )?;
    println!("| set | targets | learned F1m | learned accuracy | lexicon F1m | lexicon accuracy | majority F1m / accuracy |");
    println!("|---|---|---|---|---|---|---|");
    for file in &files {
        let rows = read(file)?;
        let gold: Vec<usize> = rows
            .iter()
            .flat_map(|r| r.targets.iter().map(|t| t.3))
            .collect();
        let (lf1, lacc) = scores(&gold, &learned(&model, &rows)?);
        let (xf1, xacc) = scores(&gold, &lexicon(&pipeline, &rows)?);
        let majority = (0..3)
            .max_by_key(|c| gold.iter().filter(|g| *g == c).count())
            .unwrap_or(1);
        let (mf1, macc) = scores(&gold, &vec![majority; gold.len()]);
        println!(
            "| `{}` | {} | {lf1:.3} | {lacc:.3} | {xf1:.3} | {xacc:.3} | {mf1:.3} / {macc:.3} |",
            file.file_name().unwrap_or_default().to_string_lossy(),
            gold.len()
        );
    }
    Ok(())
}
