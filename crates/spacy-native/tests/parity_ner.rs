//! NER parity with Python spaCy 3.8 (`en_core_web_sm` 3.8.0, NER only).
//!
//! * `golden_corpus_*`: for every `tests/parity/golden/<name>.json` (written
//!   by the golden-corpus script from spaCy), the feature ids
//!   `[NORM, PREFIX, SUFFIX, SHAPE]` must equal spaCy's `attrs` for every
//!   token and the entities must equal `ents_ner_only` (token span, char
//!   offsets, label). It runs twice: on spaCy's own tokens (isolates the
//!   vocab + network + decoder) and end to end on our tokenizer.
//! * `step_scores_match_python`: the 74 scores of every greedy step on the
//!   china-russia sample (`golden/ner_scores-*.json`, from
//!   `tests/parity/ner_scores.py`) must be within 1e-3 of Python's.
//!
//! The model comes from `ARTICLE_ANALYZER_MODELS` (the directory holding
//! `en_core_web_sm-3.8.0`) or `models/`; the golden directory can be
//! overridden with `ARTICLE_ANALYZER_GOLDEN`.

mod golden;

use std::path::PathBuf;
use std::sync::OnceLock;

use golden::{golden_ents, golden_spans, golden_tokens, read_json, Span, Tally, GOLDEN, SM};
use serde_json::Value;
use spacy_native::language::Language;
use spacy_native::ner::NerInput;
use spacy_native::unicode::py_str_isspace;
use spacy_native::Token;

fn language() -> &'static Language {
    static LANG: OnceLock<Language> = OnceLock::new();
    LANG.get_or_init(|| Language::load(&SM.dir()).expect("loading the model"))
}

/// Compares features and entities of one text and adds to the tally.
fn check(
    lang: &Language,
    name: &str,
    text: &str,
    tokens: &[Token],
    golden: &Value,
    tally: &mut Tally,
) {
    let want_rows: Vec<Vec<u64>> = golden["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|g| {
            g["attrs"]
                .as_array()
                .expect("attrs")
                .iter()
                .map(|x| x.as_u64().expect("attr id"))
                .collect()
        })
        .collect();
    let rows = lang.vocab().feature_rows(text, tokens);
    let got_rows: Vec<Vec<u64>> = rows.iter().map(|r| r.to_vec()).collect();
    tally.add("attrs", name, &got_rows, &want_rows);
    let is_space: Vec<bool> = tokens
        .iter()
        .map(|t| py_str_isspace(&text[t.start..t.end]))
        .collect();
    let ents = lang.ner().predict(&[NerInput {
        rows: &rows,
        is_space: &is_space,
        sent_starts: None,
        orths: None,
    }]);
    let b2c = |b: usize| text[..b].chars().count();
    let ours: Vec<Span> = ents[0]
        .iter()
        .map(|e| {
            (
                e.start,
                e.end,
                b2c(tokens[e.start].start),
                b2c(tokens[e.end - 1].end),
                e.label.to_string(),
            )
        })
        .collect();
    tally.add("ents", name, &ours, &golden_spans(&golden["ents_ner_only"]));
}

/// spaCy's tokens → our vocab features and NER.
#[test]
fn golden_corpus_on_spacy_tokens() {
    let lang = language();
    let mut tally = Tally::default();
    for path in GOLDEN.files() {
        let g = read_json(&path);
        let name = g["name"].as_str().unwrap_or("?").to_owned();
        let text = g["text"].as_str().expect("text");
        let tokens = golden_tokens(lang, text, g["tokens"].as_array().expect("tokens"));
        check(lang, &name, text, &tokens, &g, &mut tally);
    }
    tally.assert_all("en_core_web_sm NER only, spaCy tokens");
}

/// End to end: our tokenizer → vocab features → NER.
#[test]
fn golden_corpus_end_to_end() {
    let lang = language();
    let mut tally = Tally::default();
    let mut token_mismatch = Vec::new();
    for path in GOLDEN.files() {
        let g = read_json(&path);
        let name = g["name"].as_str().unwrap_or("?").to_owned();
        let text = g["text"].as_str().expect("text");
        let tokens = lang.tokenizer().tokenize(text);
        let ours: Vec<&str> = tokens.iter().map(|t| &text[t.start..t.end]).collect();
        let want: Vec<&str> = g["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| t["text"].as_str().expect("text"))
            .collect();
        if ours != want {
            let i = ours.iter().zip(&want).take_while(|(a, b)| a == b).count();
            token_mismatch.push(format!(
                "{name}: tokens differ from #{i}: ours {:?}, spaCy {:?}",
                &ours[i..(i + 3).min(ours.len())],
                &want[i..(i + 3).min(want.len())]
            ));
            continue;
        }
        // The Language API must agree with the pieces used in `check`.
        let doc = lang.process(text);
        assert_eq!(doc.tokens, tokens, "{name}: Language::process tokens");
        check(lang, &name, text, &tokens, &g, &mut tally);
        let batch_ents = &lang.process_batch(&[text, "", text])[2].ents;
        assert_eq!(&doc.ents, batch_ents, "{name}: batch vs single");
    }
    for m in &token_mismatch {
        println!("  {m}");
    }
    tally.assert_all("en_core_web_sm NER only, our tokenizer");
    assert!(
        token_mismatch.is_empty(),
        "{} texts tokenized differently",
        token_mismatch.len()
    );
}

/// Scores of every greedy step vs Python on one text (spaCy's tokens).
#[test]
fn step_scores_match_python() {
    let lang = language();
    let dir = GOLDEN.dir();
    let path = ["ner_scores-china-russia-friendship.json"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .join(GOLDEN.subdir)
                .join("ner_scores-china-russia-friendship.json")
        });
    let g = read_json(&path);
    let text = g["text"].as_str().expect("text");
    let tokens = golden_tokens(lang, text, g["tokens"].as_array().expect("tokens"));
    let classes: Vec<String> = lang.ner().actions().iter().map(|a| a.name()).collect();
    let want_classes: Vec<&str> = g["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|c| c.as_str().expect("class"))
        .collect();
    assert_eq!(classes, want_classes, "class order");
    let rows = lang.vocab().feature_rows(text, &tokens);
    let is_space: Vec<bool> = tokens
        .iter()
        .map(|t| py_str_isspace(&text[t.start..t.end]))
        .collect();
    let mut trace = Vec::new();
    let ents = lang.ner().predict_traced(
        &[NerInput {
            rows: &rows,
            is_space: &is_space,
            sent_starts: None,
            orths: None,
        }],
        Some(&mut trace),
    );
    let steps = g["steps"].as_array().expect("steps");
    let n_classes = classes.len();
    assert_eq!(
        trace.len(),
        steps.len() * n_classes,
        "number of greedy steps"
    );
    let mut max_diff = 0.0f32;
    let mut at = (0, 0);
    for (s, step) in steps.iter().enumerate() {
        for (c, want) in step["scores"]
            .as_array()
            .expect("scores")
            .iter()
            .enumerate()
        {
            let want = want.as_f64().expect("score") as f32;
            let d = (trace[s * n_classes + c] - want).abs();
            if d > max_diff {
                max_diff = d;
                at = (s, c);
            }
        }
    }
    println!(
        "step scores: {} steps x {n_classes} classes; max |ours - python| = {max_diff:.3e} (step {}, {})",
        steps.len(),
        at.0,
        classes[at.1]
    );
    assert!(max_diff < 1e-3, "max score difference {max_diff}");
    let want = golden_ents(&g["ents"]);
    let ours: Vec<(usize, usize, String)> = ents[0]
        .iter()
        .map(|e| (e.start, e.end, e.label.to_string()))
        .collect();
    assert_eq!(ours, want);
}
