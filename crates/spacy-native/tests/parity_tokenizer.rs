//! Tokenizer parity with Python spaCy 3.8 on the golden corpus.
//!
//! The golden files (`tests/parity/golden/<name>.json`) are written by
//! `tests/parity/make_golden.py` from the texts in `tests/parity/corpus/`.
//! The model is read from `$ARTICLE_ANALYZER_MODELS/en_core_web_sm-3.8.0`
//! (default `<crate>/models/...`, created by `scripts/fetch-models`); a
//! missing model is a failure, not a skip, so that CI cannot pass vacuously.

mod golden;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use golden::SM;
use proptest::prelude::*;
use serde::Deserialize;
use spacy_native::tokenizer::Tokenizer;
use spacy_native::vocab::Vocab;
use spacy_native::Token;

fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = SM.dir().join("tokenizer");
        Tokenizer::load(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
    })
}

fn parity_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("tests/parity")
}

/// The part of a golden file this test reads.
#[derive(Deserialize)]
struct Golden {
    text: String,
    tokens: Vec<GoldenToken>,
}

#[derive(Deserialize)]
struct GoldenToken {
    text: String,
    idx: usize,
    whitespace: bool,
    norm: String,
}

/// A token as compared: text, code-point offset, trailing space, norm.
#[derive(Debug, PartialEq)]
struct Row {
    text: String,
    idx: usize,
    whitespace: bool,
    norm: String,
}

/// Our tokens in the golden form. The NORM is the special-case norm when the
/// tokenizer set one, else the lexeme norm of the vocabulary.
fn our_rows(text: &str, tokens: &[Token], vocab: &Vocab) -> Vec<Row> {
    let mut rows = Vec::with_capacity(tokens.len());
    let (mut byte, mut chars) = (0, 0);
    for t in tokens {
        chars += text[byte..t.start].chars().count();
        byte = t.start;
        let orth = t.text(text);
        rows.push(Row {
            text: orth.to_string(),
            idx: chars,
            whitespace: t.whitespace,
            norm: vocab.token_norm(orth, t).into_owned(),
        });
    }
    rows
}

fn golden_rows(golden: &Golden) -> Vec<Row> {
    golden
        .tokens
        .iter()
        .map(|t| Row {
            text: t.text.clone(),
            idx: t.idx,
            whitespace: t.whitespace,
            norm: t.norm.clone(),
        })
        .collect()
}

/// Prints the first difference with three tokens of context either side.
fn report_mismatch(name: &str, ours: &[Row], theirs: &[Row]) {
    let first = ours
        .iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(theirs.len()));
    let lo = first.saturating_sub(3);
    println!(
        "MISMATCH in {name} at token {first} (ours: {} tokens, spaCy: {}):",
        ours.len(),
        theirs.len()
    );
    for i in lo..(first + 4) {
        let fmt = |r: Option<&Row>| {
            r.map_or("-".to_string(), |r| {
                format!(
                    "{:?}@{} ws={} norm={:?}",
                    r.text,
                    r.idx,
                    u8::from(r.whitespace),
                    r.norm
                )
            })
        };
        let mark = if i == first { ">>" } else { "  " };
        println!(
            "{mark} {i:5}  ours {:<50} spaCy {}",
            fmt(ours.get(i)),
            fmt(theirs.get(i))
        );
    }
}

fn corpus_names() -> Vec<String> {
    let dir = parity_dir().join("corpus");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "txt").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    names
}

fn load_golden(name: &str) -> Golden {
    let path = parity_dir().join("golden").join(format!("{name}.json"));
    let json = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/parity/make_golden.py)", path.display()));
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn tokens_match_spacy_on_golden_corpus() {
    let tokenizer = tokenizer();
    let vocab = Vocab::load(&SM.dir().join("vocab")).expect("vocab loads");
    let names = corpus_names();
    assert!(
        names.len() >= 20,
        "expected at least 20 corpus texts, found {}",
        names.len()
    );

    let (mut equal, mut total, mut special_norms) = (0, 0, 0);
    let mut failed = Vec::new();
    for name in &names {
        let golden = load_golden(name);
        let tokens = tokenizer.tokenize(&golden.text);
        let ours = our_rows(&golden.text, &tokens, &vocab);
        let theirs = golden_rows(&golden);
        // A special-case norm must be the golden norm, whatever the vocab says.
        for (t, g) in tokens.iter().zip(&golden.tokens) {
            if let Some(norm) = &t.norm {
                special_norms += 1;
                assert_eq!(**norm, *g.norm, "{name}: special-case norm of {:?}", g.text);
            }
        }
        total += theirs.len();
        equal += ours.iter().zip(&theirs).filter(|(a, b)| a == b).count();
        if ours != theirs {
            report_mismatch(name, &ours, &theirs);
            failed.push(name.clone());
        }
    }
    println!(
        "tokens: {equal}/{total} equal over {} texts ({special_norms} special-case norms)",
        names.len()
    );
    assert!(
        failed.is_empty(),
        "tokenization differs from spaCy in {failed:?}"
    );
}

#[test]
fn tokenize_throughput_on_corpus() {
    // A tokenizer of its own, so that the first round runs on a cold cache.
    let path = SM.dir().join("tokenizer");
    let start = Instant::now();
    let tokenizer = Tokenizer::load(&path).expect("tokenizer loads");
    let load = start.elapsed().as_secs_f64();
    let texts: Vec<String> = corpus_names().iter().map(|n| load_golden(n).text).collect();
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let measure = |rounds: usize| {
        let start = Instant::now();
        let mut tokens = 0;
        for _ in 0..rounds {
            for text in &texts {
                tokens += tokenizer.tokenize(text).len();
            }
        }
        (tokens, tokens as f64 / start.elapsed().as_secs_f64())
    };
    let (cold_tokens, cold) = measure(1);
    let (warm_tokens, warm) = measure(20);
    println!(
        "tokenize ({build}): load {load:.3}s; cold cache {cold_tokens} tokens at {cold:.0} tokens/s; \
         warm cache {warm_tokens} tokens at {warm:.0} tokens/s"
    );
}

/// Rebuilds the text from the tokens: texts plus one space where flagged.
fn assert_tiles(text: &str, tokens: &[Token]) {
    let mut rebuilt = String::with_capacity(text.len());
    let mut pos = 0;
    for t in tokens {
        assert_eq!(t.start, pos, "token starts where the previous one ended");
        assert!(t.end > t.start, "empty token at {}", t.start);
        rebuilt.push_str(t.text(text));
        pos = t.end;
        if t.whitespace {
            rebuilt.push(' ');
            pos += 1;
        }
    }
    assert_eq!(rebuilt, text);
}

#[test]
fn pathological_inputs_finish_and_tile() {
    let tokenizer = tokenizer();
    let mega = 1 << 20;
    let inputs = [
        "a".repeat(mega),
        "-".repeat(mega),
        ".".repeat(mega),
        "a-".repeat(mega / 2),
        "x.".repeat(mega / 2),
        format!("https://example.com/{}", "a".repeat(mega)),
        ")".repeat(20_000),
        "(".repeat(20_000) + &")".repeat(20_000),
        "1+".repeat(mega / 4),
        "\u{301}".repeat(mega / 2),
        " ".repeat(mega),
        "\n \n\t".repeat(mega / 4),
        "can't ".repeat(mega / 6),
        "\0\u{7}\u{1b}\u{200f}\u{202e}\u{feff}".repeat(1000),
    ];
    for text in &inputs {
        let start = Instant::now();
        let tokens = tokenizer.tokenize(text);
        assert_tiles(text, &tokens);
        let head: String = text.chars().take(12).collect();
        println!(
            "{:>8} bytes {head:?}...: {} tokens in {:.3}s",
            text.len(),
            tokens.len(),
            start.elapsed().as_secs_f64()
        );
    }
}

/// Texts built from pieces that exercise the rules: special cases, affixes,
/// URLs, every kind of whitespace, and arbitrary Unicode.
fn text_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<String>(),
        any::<char>().prop_map(String::from),
        prop::sample::select(vec![
            "can't",
            "U.S.",
            "N.Y.C.",
            "e.g.",
            "10km",
            "$3.5bn",
            "38.5%",
            ":-)",
            "'s",
            "’s",
            "https://spacy.io/a?b=1",
            "x@y.com",
            "(",
            ")",
            "...",
            "—",
            "--",
            "\"",
            "“",
            "”",
            " ",
            "  ",
            "\n",
            "\t",
            "\u{a0}",
            "\u{3000}",
            "\x1c",
            "\0",
            "👍🏽",
            "東京都",
            "a\u{301}",
            "\u{200f}",
            "gonna",
            "ain't",
            "'em",
            "°C.",
            "1-2",
            "a/b",
            "A.B",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn tokenize_never_panics_and_tiles(text in text_strategy()) {
        let tokens = tokenizer().tokenize(&text);
        assert_tiles(&text, &tokens);
    }
}

/// Differential check against a JSON-lines file of spaCy tokenizations,
/// written by `tests/parity/fuzz_tokenizer.py`; run with
/// `PARITY_FUZZ_FILE=... cargo test --test parity_tokenizer -- --ignored`.
#[test]
#[ignore = "needs PARITY_FUZZ_FILE from tests/parity/fuzz_tokenizer.py"]
fn fuzz_file_matches_spacy() {
    #[derive(Deserialize)]
    struct Case {
        text: String,
        /// `[text, idx, whitespace, norm, norm_is_token_level]`
        tokens: Vec<(String, usize, bool, String, bool)>,
    }
    let path = std::env::var("PARITY_FUZZ_FILE").expect("PARITY_FUZZ_FILE is set");
    let data = std::fs::read_to_string(&path).expect("fuzz file readable");
    let tokenizer = tokenizer();
    let (mut bad, mut n) = (0, 0);
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let case: Case = serde_json::from_str(line).expect("valid JSON line");
        n += 1;
        let text = &case.text;
        let tokens = tokenizer.tokenize(text);
        let same = tokens.len() == case.tokens.len()
            && tokens.iter().zip(&case.tokens).all(|(t, g)| {
                t.text(text) == g.0
                    && text[..t.start].chars().count() == g.1
                    && t.whitespace == g.2
                    && match &t.norm {
                        Some(norm) => **norm == *g.3,
                        None => !g.4,
                    }
            });
        if !same {
            bad += 1;
            if bad <= 5 {
                let ours: Vec<_> = tokens
                    .iter()
                    .map(|t| (t.text(text), t.whitespace))
                    .collect();
                let theirs: Vec<_> = case.tokens.iter().map(|g| (g.0.as_str(), g.2)).collect();
                println!("TEXT {text:?}\n  ours  {ours:?}\n  spaCy {theirs:?}");
            }
        }
    }
    println!("fuzz: {}/{n} texts equal", n - bad);
    assert_eq!(bad, 0);
}
