//! Scores the stance engines on the annotated sets with the real pipeline
//! (tokenizer, parser, NER, stance), the annotated targets given as explicit
//! targets.
//!
//! ```sh
//! cargo run --release --example stance_eval -- [FILE...] [--all] [--stance ENGINE] [--components ner|parser|full] [--verbose]
//! ```
//!
//! Without FILE it scores the development set `eval/stance/real.jsonl`, the
//! held-out set `eval/stance/heldout.jsonl` and the opinion set
//! `eval/stance/opinion.jsonl`, each on its own; `--all` adds the synthetic
//! `eval/stance/dev.jsonl`. ENGINE is `lexicon`, `learned` (the model with
//! the lexicon's cues, the default engine), `learned-only`, or `compare`
//! (the default here: all three, then a summary table). The models are read
//! from `ARTICLE_ANALYZER_MODELS` (default `models/`).

use std::path::PathBuf;

use anyhow::Context;
use article_analyzer::backend::load_pipeline;
use article_analyzer::config::{ComponentSet, ModelConfig, StanceEngine};
use article_analyzer::stance::eval::{evaluate, load_set, Scores};

fn main() -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut all = false;
    let mut components = ComponentSet::Parser;
    let mut verbose = false;
    let mut engines = vec![
        StanceEngine::Lexicon,
        StanceEngine::LearnedOnly,
        StanceEngine::Learned,
    ];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--verbose" | "-v" => verbose = true,
            "--all" => all = true,
            "--components" => {
                components = match args.next().as_deref() {
                    Some("ner") => ComponentSet::Ner,
                    Some("parser") => ComponentSet::Parser,
                    Some("full") => ComponentSet::Full,
                    other => anyhow::bail!("--components takes ner, parser or full, not {other:?}"),
                }
            }
            "--stance" => {
                engines = match args.next().as_deref() {
                    Some("compare") => engines,
                    Some("lexicon") => vec![StanceEngine::Lexicon],
                    Some("learned") => vec![StanceEngine::Learned],
                    Some("learned-only") => vec![StanceEngine::LearnedOnly],
                    other => anyhow::bail!(
                        "--stance takes lexicon, learned, learned-only or compare, not {other:?}"
                    ),
                }
            }
            _ if !arg.starts_with('-') => files.push(PathBuf::from(arg)),
            _ => anyhow::bail!(
                "usage: stance_eval [FILE...] [--all] [--stance ENGINE] [--components ner|parser|full] [--verbose]"
            ),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if files.is_empty() || all {
        for set in [
            "real.jsonl",
            "opinion_dev.jsonl",
            "heldout.jsonl",
            "opinion.jsonl",
            "sample.jsonl",
        ] {
            let path = root.join("eval/stance").join(set);
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }
    if all {
        files.push(root.join("eval/stance/dev.jsonl"));
    }
    let models = std::env::var_os("ARTICLE_ANALYZER_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models"));
    let mut summary = Vec::new();
    for engine in &engines {
        let config = ModelConfig {
            models_dir: Some(models.clone()),
            components,
            stance: *engine,
            ..ModelConfig::default()
        };
        let pipeline = load_pipeline(&config).context("loading the pipeline")?;
        for file in &files {
            println!("== engine {engine:?}");
            let scores = report(&pipeline, file, components, verbose)?;
            summary.push((file.clone(), *engine, scores));
        }
    }
    println!("| set | engine | macro-F1 (FAVOR, AGAINST) | accuracy | targets | majority baseline (macro-F1 / accuracy) |");
    println!("|---|---|---|---|---|---|");
    for file in &files {
        for (f, engine, s) in &summary {
            if f == file {
                let base = s.majority_baseline();
                println!(
                    "| `{}` | {engine:?} | {:.3} | {:.3} | {} | {:.3} / {:.3} ({}) |",
                    file.file_name().unwrap_or_default().to_string_lossy(),
                    s.macro_f1_favor_against(),
                    s.accuracy(),
                    s.total(),
                    base.macro_f1_favor_against(),
                    base.accuracy(),
                    s.majority_label().as_str()
                );
            }
        }
    }
    Ok(())
}

fn report(
    pipeline: &article_analyzer::pipeline::Pipeline,
    file: &std::path::Path,
    components: ComponentSet,
    verbose: bool,
) -> anyhow::Result<Scores> {
    let items = load_set(file)?;
    let predictions = evaluate(pipeline, &items)?;
    if verbose {
        for p in &predictions {
            let pred = p.predicted.map_or("-", |l| l.as_str());
            let mark = if Some(p.gold) == p.predicted {
                " "
            } else {
                "x"
            };
            println!(
                "{mark} {:<4} {:<32} gold {:<7} pred {:<7} {:.2}",
                p.item,
                p.target,
                p.gold.as_str(),
                pred,
                p.score
            );
            for r in p.reasons.iter().take(3) {
                println!("      {r}");
            }
        }
        println!();
    }
    println!(
        "{}: {} items, components {components:?}",
        file.display(),
        items.len()
    );
    let scores = Scores::from_predictions(&predictions);
    print!("{}", scores.report());
    println!();
    Ok(scores)
}
