//! NER throughput of the native runtime, single-threaded, on the texts of
//! the golden corpus (`tests/parity/golden/*.json`, field `text`).
//!
//! Run through `scripts/bench-ner`, which measures Python spaCy on the same
//! texts in the same run (a shared machine makes single figures noisy; the
//! ratio measured back to back is what counts).
//!
//! Prints `native_tokens_per_s=<x>` lines that the script parses, measuring:
//! * `end_to_end`: `Language::process_batch` (tokenizer + features + NER),
//!   the same work as Python's `nlp.pipe` with only the NER enabled;
//! * `ner_only`: features + NER on pre-tokenized texts;
//! * `tagger_parser`: `Language::load_with(.., Components::TAGGER_PARSER)`
//!   → `process_batch` (tokenizer + shared tok2vec + tagger + parser + NER
//!   constrained by the parser's sentences), the same work as Python's
//!   `nlp.pipe` with `tok2vec, tagger, parser, ner`;
//! * `full_pipeline`: `Components::FULL` (also attribute_ruler and
//!   lemmatizer), the same work as Python's `nlp.pipe` with every component
//!   of the package (`senter` is disabled there).
//!
//! Environment: `ARTICLE_ANALYZER_MODELS`, `ARTICLE_ANALYZER_GOLDEN`,
//! `BENCH_SECONDS` (default 5), `BENCH_BATCH` (texts per batch, default 256
//! like spaCy's `nlp.pipe`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use spacy_native::language::{Components, Language};

fn env_path(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

fn main() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let model =
        env_path("ARTICLE_ANALYZER_MODELS", root.join("models")).join("en_core_web_sm-3.8.0");
    let golden = env_path("ARTICLE_ANALYZER_GOLDEN", root.join("tests/parity/golden"));
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let batch: usize = std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
        .max(1);

    let lang = match Language::load(&model) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ner_throughput: {e} (run scripts/fetch-models)");
            std::process::exit(1);
        }
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&golden) {
        Ok(d) => d.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            eprintln!("ner_throughput: {}: {e}", golden.display());
            std::process::exit(1);
        }
    };
    files.sort();
    let mut texts: Vec<String> = Vec::new();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "json"))
    {
        let Ok(s) = std::fs::read_to_string(f) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) else {
            continue;
        };
        if let Some(t) = v.get("text").and_then(|t| t.as_str()) {
            if !texts.iter().any(|x| x == t) {
                texts.push(t.to_owned());
            }
        }
    }
    if texts.is_empty() {
        eprintln!("ner_throughput: no texts in {}", golden.display());
        std::process::exit(1);
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: Vec<_> = refs.iter().map(|t| lang.tokenizer().tokenize(t)).collect();
    let n_tokens: usize = tokens.iter().map(Vec::len).sum();
    println!(
        "corpus: {} texts, {n_tokens} tokens (from {})",
        texts.len(),
        golden.display()
    );

    let run = |what: &str, f: &dyn Fn(&[&str], &[Vec<_>])| {
        // Warm up once, then repeat the corpus until the time is used up.
        f(&refs, &tokens);
        let budget = Duration::from_secs_f64(seconds);
        let start = Instant::now();
        let mut done = 0usize;
        while start.elapsed() < budget {
            for (t, k) in refs.chunks(batch).zip(tokens.chunks(batch)) {
                f(t, k);
            }
            done += n_tokens;
        }
        let rate = done as f64 / start.elapsed().as_secs_f64();
        println!("{what}: native_tokens_per_s={rate:.0}");
    };
    run("end_to_end", &|t, _| {
        std::hint::black_box(lang.process_batch(t));
    });
    run("ner_only", &|t, k| {
        std::hint::black_box(lang.ner_tokens_batch(t, k, None));
    });
    for (what, components) in [
        ("tagger_parser", Components::TAGGER_PARSER),
        ("full_pipeline", Components::FULL),
    ] {
        let lang = match Language::load_with(&model, components) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ner_throughput: {e}");
                std::process::exit(1);
            }
        };
        run(what, &|t, _| {
            std::hint::black_box(lang.process_batch(t));
        });
    }
}
