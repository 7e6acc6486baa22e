//! Speed of the learned stance model and of whole analyses, for
//! `scripts/bench-stance` (which runs the Python baseline in the same run
//! and prints the ratios).
//!
//! ```sh
//! RAYON_NUM_THREADS=1 cargo run --release --example stance_bench -- FILE [--repeats N]
//! ```
//!
//! Prints JSON lines: the encoder's word pieces per second on the NewsMTSC
//! sentences of FILE (every labelled mention read off one pass per
//! sentence), then the time of a whole analysis of the sample article with
//! stance disabled, with the lexicon engine and with the learned engine.

use std::path::PathBuf;
use std::time::Instant;

use article_analyzer::backend::load_pipeline;
use article_analyzer::config::{ModelConfig, StanceEngine};
use article_analyzer::pipeline::{AnalyzeOptions, StanceMode};
use article_analyzer::stance::learned::{LearnedStance, Mode, ModelPaths};
use article_analyzer::stance::LexiconStance;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("data/newsmtsc/devtest_rw.jsonl"));
    let repeats: usize = match (args.next().as_deref(), args.next()) {
        (Some("--repeats"), Some(n)) => n.parse()?,
        _ => 3,
    };
    let config = ModelConfig {
        models_dir: std::env::var_os("ARTICLE_ANALYZER_MODELS").map(PathBuf::from),
        ..ModelConfig::default()
    };
    let model = LearnedStance::load(
        &ModelPaths::under(&config.models_root()),
        LexiconStance::embedded()?,
        Mode::LearnedOnly,
    )?;
    let sentences = article_analyzer::stance::eval::newsmtsc::load(&file)?;
    let inputs = article_analyzer::stance::eval::newsmtsc::encoder_inputs(&sentences);
    let pieces = model.encoder().count_pieces(&inputs);
    let mut best = f64::MAX;
    for _ in 0..repeats {
        let t = Instant::now();
        model
            .encoder()
            .classify(&inputs)
            .map_err(anyhow::Error::msg)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"bench\": \"encoder\", \"sentences\": {}, \"pieces\": {pieces}, \"seconds\": {best:.4}, \"pieces_per_s\": {:.1}}}",
        inputs.len(),
        pieces as f64 / best
    );

    let sample = std::fs::read_to_string(root.join("samples/china-russia-friendship.txt"))?;
    for (name, engine, stance) in [
        ("no-stance", StanceEngine::Lexicon, StanceMode::Disabled),
        ("lexicon", StanceEngine::Lexicon, StanceMode::default()),
        ("learned", StanceEngine::Learned, StanceMode::default()),
    ] {
        let pipeline = load_pipeline(&ModelConfig {
            stance: engine,
            ..config.clone()
        })?;
        let options = AnalyzeOptions {
            entity_labels: Vec::new(),
            stance,
        };
        pipeline.analyze_collect(&sample, &options)?; // warm-up
        let mut best = f64::MAX;
        for _ in 0..repeats {
            let t = Instant::now();
            pipeline.analyze_collect(&sample, &options)?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{{\"bench\": \"sample-article\", \"stance\": \"{name}\", \"ms\": {:.1}}}",
            best * 1e3
        );
    }
    Ok(())
}
