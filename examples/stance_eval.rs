//! Scores the stance engine on an annotated set with the real pipeline
//! (tokenizer, parser, NER, lexicon stance), the annotated targets given as
//! explicit targets.
//!
//! ```sh
//! cargo run --release --example stance_eval -- [FILE...] [--all] [--components ner|parser|full] [--verbose]
//! ```
//!
//! Without FILE it scores the development set `eval/stance/real.jsonl` and
//! the held-out set `eval/stance/heldout.jsonl`, each on its own; `--all`
//! adds the synthetic `eval/stance/dev.jsonl`. The model is read from
//! `ARTICLE_ANALYZER_MODELS` (default `models/`).

use std::path::PathBuf;

use anyhow::Context;
use article_analyzer::backend::load_pipeline;
use article_analyzer::config::{ComponentSet, ModelConfig};
use article_analyzer::stance::eval::{evaluate, load_set, Scores};

fn main() -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut all = false;
    let mut components = ComponentSet::Parser;
    let mut verbose = false;
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
            _ if !arg.starts_with('-') => files.push(PathBuf::from(arg)),
            _ => anyhow::bail!(
                "usage: stance_eval [FILE...] [--all] [--components ner|parser|full] [--verbose]"
            ),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if files.is_empty() || all {
        for set in ["real.jsonl", "heldout.jsonl"] {
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
    let config = ModelConfig {
        models_dir: Some(models),
        model: "en_core_web_sm-3.8.0".into(),
        components,
    };
    let pipeline = load_pipeline(&config).context("loading the pipeline")?;
    for file in &files {
        report(&pipeline, file, components, verbose)?;
    }
    Ok(())
}

fn report(
    pipeline: &article_analyzer::pipeline::Pipeline,
    file: &std::path::Path,
    components: ComponentSet,
    verbose: bool,
) -> anyhow::Result<()> {
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
    print!("{}", Scores::from_predictions(&predictions).report());
    println!();
    Ok(())
}
