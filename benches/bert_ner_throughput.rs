//! Word pieces per second of the rust-bert NER backend
//! ([`TokenClassifier::entities`]: tokenize, forward over windows, softmax,
//! word aggregation, entity grouping) on one text, the counterpart of
//! `benches/python_bert_ner.py`. Run through `scripts/bench-rust-bert`,
//! which measures Python `transformers` on the same model and text, in the
//! same run, with one thread and with every core.
//!
//! Environment: `BERT_MODEL` (model directory), `BENCH_TEXT` (UTF-8 file),
//! `BENCH_THREADS` (libtorch threads, default 1), `BENCH_REPEATS` (default
//! 3, after one warm-up). Windows as in the Python script: at most 512
//! positions, no overlap. Prints one JSON line like the Python script's.

use std::path::PathBuf;
use std::time::Instant;

use article_analyzer::backend::rust_bert::TokenClassifier;
use article_analyzer::config::Aggregation;

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn main() {
    let model = PathBuf::from(env_or("BERT_MODEL", "target/bench-models/bert-base-ner"));
    let text_path = PathBuf::from(env_or("BENCH_TEXT", "samples/china-russia-friendship.txt"));
    let threads: usize = env_or("BENCH_THREADS", "1").parse().expect("BENCH_THREADS");
    let repeats: usize = env_or("BENCH_REPEATS", "3").parse().expect("BENCH_REPEATS");
    let text = std::fs::read_to_string(&text_path)
        .unwrap_or_else(|e| panic!("{}: {e}", text_path.display()));
    tch::set_num_threads(threads as i32);
    let classifier = TokenClassifier::load(&model, 512, 0)
        .unwrap_or_else(|e| panic!("loading {}: {e}", model.display()));
    let pieces = classifier.piece_logits(&text).expect("warm-up").ids.len();
    let started = Instant::now();
    let mut entities = 0;
    for _ in 0..repeats {
        entities += classifier
            .entities(&text, Aggregation::First)
            .expect("entities")
            .len();
    }
    let seconds = started.elapsed().as_secs_f64();
    let tokens = pieces * repeats;
    eprintln!("rust-bert: {pieces} pieces, {repeats} repeats, {entities} entities");
    println!(
        "{{\"threads\": {threads}, \"tokens\": {tokens}, \"seconds\": {seconds:.4}, \"tokens_per_s\": {:.1}}}",
        tokens as f64 / seconds
    );
}
