//! Scores the stance engine on an annotated set with the real pipeline
//! (tokenizer, parser, NER, lexicon stance), the annotated targets given as
//! explicit targets.
//!
//! ```sh
//! cargo run --release --example stance_eval -- [FILE] [--components ner|parser|full] [--verbose]
//! ```
//!
//! FILE defaults to `eval/stance/real.jsonl`; the model is read from
//! `ARTICLE_ANALYZER_MODELS` (default `models/`).

use std::path::PathBuf;

use anyhow::Context;
use article_analyzer::backend::load_pipeline;
use article_analyzer::config::{ComponentSet, ModelConfig};
use article_analyzer::stance::eval::{evaluate, load_set, Scores};

fn main() -> anyhow::Result<()> {
    let mut file = None;
    let mut components = ComponentSet::Parser;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--verbose" | "-v" => verbose = true,
            "--components" => {
                components = match args.next().as_deref() {
                    Some("ner") => ComponentSet::Ner,
                    Some("parser") => ComponentSet::Parser,
                    Some("full") => ComponentSet::Full,
                    other => anyhow::bail!("--components takes ner, parser or full, not {other:?}"),
                }
            }
            _ if file.is_none() && !arg.starts_with('-') => file = Some(PathBuf::from(arg)),
            _ => anyhow::bail!(
                "usage: stance_eval [FILE] [--components ner|parser|full] [--verbose]"
            ),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let file = file.unwrap_or_else(|| root.join("eval/stance/real.jsonl"));
    let models = std::env::var_os("ARTICLE_ANALYZER_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models"));
    let config = ModelConfig {
        models_dir: Some(models),
        model: "en_core_web_sm-3.8.0".into(),
        components,
    };
    let pipeline = load_pipeline(&config).context("loading the pipeline")?;
    let items = load_set(&file)?;
    let predictions = evaluate(&pipeline, &items)?;
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
    Ok(())
}
