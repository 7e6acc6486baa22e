//! Scores the holder-to-target relations on `eval/relations/` with the real
//! pipeline, beside the verb-pattern baseline.
//!
//! ```sh
//! cargo run --release --example relations_eval -- [--set dev|test|both] [--verbose] [--sweep]
//! ```
//!
//! `--sweep` prints the development set's scores over a range of
//! thresholds (how the default was chosen); it never reads the test set.
//! Models come from `ARTICLE_ANALYZER_MODELS` (default `models/`).

use std::path::{Path, PathBuf};

use article_analyzer::backend::load_pipeline;
use article_analyzer::config::ModelConfig;
use article_analyzer::pipeline::Pipeline;
use article_analyzer::relations::eval::{evaluate, EvalSet, Report};
use article_analyzer::relations::{RelationConfig, RelationExtractor};

fn texts(dir: &Path, prefix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(prefix) && f.ends_with(".txt"))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn with(pipeline: &Pipeline, config: RelationConfig) -> anyhow::Result<Pipeline> {
    Ok(pipeline
        .clone()
        .with_relations(RelationExtractor::embedded(config)?))
}

fn row(set: &str, system: &str, r: &Report) {
    let t = &r.triples;
    let h = &r.holders;
    println!(
        "| {set:<5} | {system:<28} | {:>4} | {:>4} | {:.3} | {:.3} | **{:.3}** | {:.3} | {:.3} | {:.3} | {:.3} ({}/{}) |",
        t.gold,
        t.predicted,
        t.precision(),
        t.recall(),
        t.f1(),
        h.precision(),
        h.recall(),
        h.f1(),
        if r.named.1 == 0 { 0.0 } else { r.named.0 as f64 / r.named.1 as f64 },
        r.named.0,
        r.named.1,
    );
}

fn main() -> anyhow::Result<()> {
    let mut sets = vec!["dev", "test"];
    let mut verbose = false;
    let mut sweep = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--verbose" | "-v" => verbose = true,
            "--sweep" => sweep = true,
            "--set" => {
                sets = match args.next().as_deref() {
                    Some("dev") => vec!["dev"],
                    Some("test") => vec!["test"],
                    Some("both") => vec!["dev", "test"],
                    other => anyhow::bail!("--set takes dev, test or both, not {other:?}"),
                }
            }
            _ => anyhow::bail!("usage: relations_eval [--set dev|test|both] [--verbose] [--sweep]"),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let texts_dir = root.join("eval/stance/texts");
    let models = std::env::var_os("ARTICLE_ANALYZER_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models"));
    let pipeline = load_pipeline(&ModelConfig {
        models_dir: Some(models),
        ..ModelConfig::default()
    })?;

    if sweep {
        let mut dev_texts = texts(&texts_dir, "r")?;
        dev_texts.push(root.join("../shared/samples/china-russia-friendship.txt"));
        let dev = EvalSet::load("dev", &root.join("eval/relations/dev.jsonl"), &dev_texts)?;
        println!("| threshold | said weight | P | R | F1 |");
        for t in [0.1f32, 0.3, 0.5, 0.7] {
            for w in [0.0f32, 0.25, 0.5, 0.75, 1.0] {
                let config = RelationConfig {
                    threshold: t,
                    said_weight: w,
                    ..RelationConfig::default()
                };
                let r = evaluate(&with(&pipeline, config)?, &dev)?;
                println!(
                    "| {t:.1} | {w:.2} | {:.3} | {:.3} | {:.3} |",
                    r.triples.precision(),
                    r.triples.recall(),
                    r.triples.f1()
                );
            }
        }
        return Ok(());
    }

    println!("| set | system | gold | predicted | P | R | F1 | holder P | holder R | holder F1 | R, named holders |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for set in sets {
        let files = if set == "dev" {
            let mut t = texts(&texts_dir, "r")?;
            t.push(root.join("../shared/samples/china-russia-friendship.txt"));
            t
        } else {
            texts(&texts_dir, "h")?
        };
        let eval = EvalSet::load(
            set,
            &root.join(format!("eval/relations/{set}.jsonl")),
            &files,
        )?;
        let ours = with(&pipeline, RelationConfig::default())?;
        let baseline = with(
            &pipeline,
            RelationConfig {
                verb_patterns: true,
                ..RelationConfig::default()
            },
        )?;
        let r = evaluate(&ours, &eval)?;
        row(set, "ours (predicates + model)", &r);
        if verbose {
            for l in &r.lines {
                eprintln!("{l}");
            }
        }
        let b = evaluate(&baseline, &eval)?;
        row(set, "verb patterns (baseline)", &b);
    }
    Ok(())
}
