//! The rust-bert backend (cargo feature `rust-bert`): Hugging Face models
//! from local directories give the same numbers as Python `transformers`.
//!
//! The expected outputs in `tests/fixtures/rust_bert/` were produced by
//! `tests/rust_bert/make_fixtures.py` with transformers 4.44.2 / torch 2.4.0
//! from tiny random models committed beside them; the real all-MiniLM-L6-v2
//! checkpoint comes from `scripts/fetch-models minilm`. No Python runs here.
#![cfg(feature = "rust-bert")]

mod common;

use std::path::PathBuf;

use article_analyzer::backend::rust_bert::{BertEncoder, NliModel, TokenClassifier};
use article_analyzer::config::{Aggregation, Limits, TransformerConfig};
use article_analyzer::proto as pb;
use pb::analyze_event::Event;
use serde_json::Value;

/// Logits and hidden states agree with `transformers` within this.
const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rust_bert")
}

/// One of the fixtures' JSON files.
fn fixture_json(file: &str) -> Value {
    let path = fixtures().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn expected() -> Value {
    fixture_json("expected.json")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Checks every element within [`TOLERANCE`]; returns the largest difference.
fn assert_close(got: &[f32], want: &[f32], what: &str) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut max = 0f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= TOLERANCE, "{what}[{i}]: {g} vs {w}");
        max = max.max((g - w).abs());
    }
    max
}

fn ner_cases() -> Vec<Value> {
    expected()["ner"]["cases"].as_array().unwrap().clone()
}

/// One tiny token classifier and what `transformers` made of its texts.
struct NerFixture {
    dir: PathBuf,
    cases: Vec<Value>,
}

impl NerFixture {
    fn name(&self) -> String {
        self.dir.file_name().unwrap().to_string_lossy().into_owned()
    }

    fn load(&self, window_tokens: usize, overlap: usize) -> TokenClassifier {
        TokenClassifier::load(&self.dir, window_tokens, overlap)
            .unwrap_or_else(|e| panic!("loading {}: {e}", self.name()))
    }
}

/// The BERT classifier (WordPiece, token types), a DistilBERT one (WordPiece,
/// no token types, other tensor names), a RoBERTa one (byte-level BPE,
/// positions offset by the padding id, subwords found by the pipeline's
/// whitespace heuristic) and an XLM-R one (SentencePiece, pieces that
/// include the space before them).
fn ner_fixtures() -> Vec<NerFixture> {
    let others = architectures();
    let mut all = vec![NerFixture {
        dir: fixtures().join("ner-tiny"),
        cases: ner_cases(),
    }];
    for arch in ["distilbert", "roberta", "xlm-roberta"] {
        let set = &others["ner"][arch];
        all.push(NerFixture {
            dir: fixtures().join(set["model_dir"].as_str().unwrap()),
            cases: set["cases"].as_array().unwrap().clone(),
        });
    }
    all
}

fn architectures() -> Value {
    fixture_json("architectures-expected.json")
}

/// Each NLI fixture's directory and its (premise, hypothesis) cases: BERT,
/// RoBERTa and BART (encoder-decoder).
fn nli_fixtures() -> Vec<(&'static str, Vec<Value>)> {
    let others = architectures();
    let cases = |v: &Value| v["cases"].as_array().unwrap().clone();
    vec![
        ("nli-tiny", cases(&expected()["nli"])),
        ("nli-roberta-tiny", cases(&others["nli"]["roberta"])),
        ("nli-bart-tiny", cases(&others["nli"]["bart"])),
    ]
}

/// Word-piece ids, code-point offsets and every logit of `model` on the
/// fixture's texts; returns the largest logit difference.
fn assert_pieces_match(model: &TokenClassifier, fixture: &NerFixture) -> f32 {
    let mut max = 0f32;
    for case in &fixture.cases {
        let name = format!("{} / {}", fixture.name(), case["name"].as_str().unwrap());
        let text = case["text"].as_str().unwrap();
        let got = model.piece_logits(text).unwrap();
        // The fixture includes the special tokens at both ends; the pieces
        // leave them out.
        let ids = ints(&case["input_ids"]);
        assert_eq!(got.ids, ids[1..ids.len() - 1], "{name}: word-piece ids");
        let offsets: Vec<(usize, usize)> = case["offsets"].as_array().unwrap()[1..ids.len() - 1]
            .iter()
            .map(|o| {
                (
                    o[0].as_u64().unwrap() as usize,
                    o[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(got.offsets, offsets, "{name}: code-point offsets");
        let logits = case["logits"].as_array().unwrap();
        for (i, row) in got.logits.iter().enumerate() {
            let d = assert_close(row, &floats(&logits[i + 1]), &format!("{name} piece {i}"));
            max = max.max(d);
        }
    }
    max
}

#[test]
fn ner_word_pieces_offsets_and_logits_match_transformers() {
    for fixture in ner_fixtures() {
        let max = assert_pieces_match(&fixture.load(0, 64), &fixture);
        eprintln!("{}: max |logit difference| {max:e}", fixture.name());
    }
}

#[test]
fn ner_entities_match_the_pipeline_for_every_aggregation_strategy() {
    for fixture in ner_fixtures() {
        let model = fixture.load(0, 64);
        let mut compared = 0;
        for case in &fixture.cases {
            let name = format!("{} / {}", fixture.name(), case["name"].as_str().unwrap());
            let text = case["text"].as_str().unwrap();
            for (key, strategy) in [
                ("first", Aggregation::First),
                ("average", Aggregation::Average),
                ("max", Aggregation::Max),
            ] {
                let got = model.entities(text, strategy).unwrap();
                let want = case["pipeline"][key].as_array().unwrap();
                let got_spans: Vec<(String, usize, usize)> = got
                    .iter()
                    .map(|e| (e.label.clone(), e.start_char, e.end_char))
                    .collect();
                let want_spans: Vec<(String, usize, usize)> = want
                    .iter()
                    .map(|e| {
                        (
                            e["entity_group"].as_str().unwrap().to_string(),
                            e["start"].as_u64().unwrap() as usize,
                            e["end"].as_u64().unwrap() as usize,
                        )
                    })
                    .collect();
                assert_eq!(got_spans, want_spans, "{name} / {key}");
                for (g, w) in got.iter().zip(want) {
                    let w = w["score"].as_f64().unwrap() as f32;
                    assert!(
                        (g.score - w).abs() <= TOLERANCE,
                        "{name} / {key}: score {} vs {w}",
                        g.score
                    );
                }
                compared += want.len();
            }
        }
        assert!(
            compared > 30,
            "{}: the fixtures hold entities to compare ({compared})",
            fixture.name()
        );
    }
}

#[test]
fn weights_in_rust_model_ot_form_give_the_same_logits() {
    // rust-bert's own format: the safetensors' tensors, same names, written
    // by tch's `save_multi` (what rust-bert's convert script produces).
    let scratch = tempfile::tempdir().unwrap();
    let tmp = scratch.path();
    let fixture = &ner_fixtures()[0];
    for file in ["config.json", "vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(fixture.dir.join(file), tmp.join(file)).unwrap();
    }
    let tensors = tch::Tensor::read_safetensors(fixture.dir.join("model.safetensors")).unwrap();
    tch::Tensor::save_multi(&tensors, tmp.join("rust_model.ot")).unwrap();
    let model = TokenClassifier::load(tmp, 0, 64).expect("loading rust_model.ot");
    assert!(model.model_dir().weights.ends_with("rust_model.ot"));
    let max = assert_pieces_match(&model, fixture);
    eprintln!("ner-tiny as rust_model.ot: max |logit difference| {max:e}");
    scratch.close().unwrap();
}

#[test]
fn long_texts_run_in_windows_with_exact_offsets() {
    for fixture in ner_fixtures() {
        // The tiny models have 128 positions; this text has far more pieces.
        let text: String = fixture
            .cases
            .iter()
            .map(|c| c["text"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join(" ")
            .repeat(3);
        let whole = fixture.load(0, 64);
        let windowed = fixture.load(32, 8);
        let a = whole.piece_logits(&text).unwrap();
        let b = windowed.piece_logits(&text).unwrap();
        let name = fixture.name();
        assert!(a.ids.len() > 128 * 2, "{name}: {} pieces", a.ids.len());
        assert_eq!(a.ids, b.ids, "{name}");
        assert_eq!(a.offsets, b.offsets, "{name}");
        assert_eq!(
            b.logits.len(),
            b.ids.len(),
            "{name}: every piece predicted once"
        );
        // Every entity starts where a piece starts and ends where one ends.
        let starts: std::collections::HashSet<usize> = b.offsets.iter().map(|o| o.0).collect();
        let ends: std::collections::HashSet<usize> = b.offsets.iter().map(|o| o.1).collect();
        for strategy in [Aggregation::First, Aggregation::Average, Aggregation::Max] {
            let entities = windowed.entities(&text, strategy).unwrap();
            assert!(!entities.is_empty(), "{name}");
            for e in entities {
                assert!(
                    starts.contains(&e.start_char) && ends.contains(&e.end_char),
                    "{name}: {e:?} on piece boundaries"
                );
            }
        }
    }
}

#[test]
fn nli_inputs_and_logits_match_transformers_with_entailment_read_from_the_config() {
    for (dir, cases) in nli_fixtures() {
        let model =
            NliModel::load(&fixtures().join(dir)).unwrap_or_else(|e| panic!("loading {dir}: {e}"));
        // id2label puts entailment at 1, not last.
        assert_eq!(model.entailment(), 1, "{dir}");
        let pairs: Vec<(&str, &str)> = cases
            .iter()
            .map(|c| {
                (
                    c["premise"].as_str().unwrap(),
                    c["hypothesis"].as_str().unwrap(),
                )
            })
            .collect();
        for (case, (p, h)) in cases.iter().zip(&pairs) {
            let input = model.encode(p, h);
            assert_eq!(
                input.token_ids,
                ints(&case["input_ids"]),
                "{dir}: {p} / {h}"
            );
            if model.model_dir().uses_token_types() {
                let types: Vec<i64> = input.segment_ids.iter().map(|&s| i64::from(s)).collect();
                assert_eq!(types, ints(&case["token_type_ids"]), "{dir}: {p} / {h}");
            }
        }
        // Batched with padding (5 pairs per pass) and one by one: same numbers.
        let batched = model.logits(&pairs, 5).unwrap();
        let single = model.logits(&pairs, 1).unwrap();
        let mut max = 0f32;
        for ((case, b), s) in cases.iter().zip(&batched).zip(&single) {
            let want = floats(&case["logits"]);
            max = max.max(assert_close(b, &want, &format!("{dir}: batched logits")));
            max = max.max(assert_close(s, &want, &format!("{dir}: single logits")));
        }
        eprintln!("{dir}: max |logit difference| {max:e}");
    }
}

#[test]
fn minilm_checkpoint_loads_through_the_same_loader_with_matching_hidden_states() {
    let dir = common::models_dir().join("all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 is missing at {}; run scripts/fetch-models minilm",
        dir.display()
    );
    let expected = fixture_json("minilm-expected.json");
    let encoder = BertEncoder::load(&dir).expect("loading all-MiniLM-L6-v2");
    let cases = expected["cases"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let encoded = encoder.encode(&texts).unwrap();
    let mut max = 0f32;
    for (case, got) in cases.iter().zip(&encoded) {
        let text = case["text"].as_str().unwrap();
        assert_eq!(got.ids, ints(&case["input_ids"]), "{text}");
        let rows = case["last_hidden_state"].as_array().unwrap();
        assert_eq!(got.hidden.len(), rows.len());
        for (i, (g, w)) in got.hidden.iter().zip(rows).enumerate() {
            max = max.max(assert_close(g, &floats(w), &format!("{text} token {i}")));
        }
    }
    eprintln!("all-MiniLM-L6-v2: max |hidden state difference| {max:e}");
}

/// A server with the given fixture models for NER and stance.
async fn start_server(ner: &str, nli: &str) -> common::TestServer {
    let transformers = TransformerConfig {
        ner_model: Some(fixtures().join(ner)),
        nli_model: Some(fixtures().join(nli)),
        ..TransformerConfig::default()
    };
    let server = common::start_with(Limits::default(), move || {
        article_analyzer::backend::load_pipeline(&article_analyzer::config::ModelConfig {
            transformers,
            ..common::model_config()
        })
    })
    .await;
    common::wait_serving(&server).await;
    server
}

async fn analyze(
    server: &common::TestServer,
    text: &str,
    targets: &[&str],
) -> Vec<pb::AnalyzeEvent> {
    let request = if targets.is_empty() {
        common::request("rust-bert", text)
    } else {
        common::explicit_request("rust-bert", text, targets)
    };
    common::analyze_events(server, request).await
}

#[tokio::test]
async fn the_server_reports_and_serves_the_transformer_models() {
    let server = start_server("ner-tiny", "nli-tiny").await;
    let models = server.models().await;
    for task in ["ner", "stance"] {
        let m = models.iter().find(|m| m.task == task).unwrap();
        assert_eq!(m.backend, "rust-bert", "{task}");
    }
    let ner = models.iter().find(|m| m.task == "ner").unwrap();
    assert_eq!(ner.labels, ["LOC", "MISC", "ORG", "PER"]);
    // spaCy gives tokens, sentences and the parse; its NER does not run.
    assert!(ner.components.iter().any(|c| c == "parser"));
    assert!(ner.components.iter().any(|c| c == "transformer-ner:bert"));
    assert!(!ner.components.iter().any(|c| c == "ner"));
    assert_served_entities(&server, &ner_fixtures()[0]).await;
}

#[tokio::test]
async fn roberta_and_xlm_r_models_serve_the_pipeline_entities() {
    let fixtures = ner_fixtures();
    for (fixture, model_type) in [(&fixtures[2], "roberta"), (&fixtures[3], "xlm-roberta")] {
        let server = start_server(&fixture.name(), "nli-roberta-tiny").await;
        let models = server.models().await;
        let ner = models.iter().find(|m| m.task == "ner").unwrap();
        assert_eq!(ner.name, fixture.name());
        let component = format!("transformer-ner:{model_type}");
        assert!(ner.components.contains(&component), "{:?}", ner.components);
        assert_served_entities(&server, fixture).await;
    }
}

/// Entities through the server are the pipeline's (strategy "first"), with
/// byte offsets that agree with the characters, trimmed of whitespace at
/// their ends, less any that cover no text (the server leaves those out).
async fn assert_served_entities(server: &common::TestServer, fixture: &NerFixture) {
    for case in &fixture.cases {
        let text = case["text"].as_str().unwrap();
        let chars: Vec<char> = text.chars().collect();
        let events = analyze(server, text, &["nobody-mentioned"]).await;
        let mut got = Vec::new();
        for e in &events {
            if let Some(Event::Sentence(s)) = &e.event {
                for m in &s.entities {
                    let span = m.span.unwrap();
                    assert_eq!(
                        m.text,
                        &text[span.start_byte as usize..span.end_byte as usize]
                    );
                    got.push((
                        m.label.clone(),
                        span.start_char as usize,
                        span.end_char as usize,
                    ));
                }
            }
        }
        let mut want = Vec::new();
        for e in case["pipeline"]["first"].as_array().unwrap() {
            let (start, end) = (
                e["start"].as_u64().unwrap() as usize,
                e["end"].as_u64().unwrap() as usize,
            );
            // Less any whitespace at either end (XLM-R's pieces carry the
            // space before them).
            let lead = chars[start..end]
                .iter()
                .take_while(|c| c.is_whitespace())
                .count();
            if start + lead == end {
                continue;
            }
            let trail = chars[start..end]
                .iter()
                .rev()
                .take_while(|c| c.is_whitespace())
                .count();
            let label = e["entity_group"].as_str().unwrap().to_string();
            want.push((label, start + lead, end - trail));
        }
        assert_eq!(got, want, "{} / {}", fixture.name(), case["name"]);
    }
}

#[tokio::test]
async fn nli_stance_is_the_softmax_of_the_entailment_logits_per_target() {
    for (nli, cases) in nli_fixtures() {
        let server = start_server("ner-tiny", nli).await;
        assert_stance_follows_entailment(&server, &cases).await;
    }
}

/// `cases` hold, in threes, one premise with its FAVOR / AGAINST / NEUTRAL
/// hypotheses and the model's logits for each.
async fn assert_stance_follows_entailment(server: &common::TestServer, cases: &[Value]) {
    // Three premises, each with its FAVOR / AGAINST / NEUTRAL hypotheses
    // about a target it names.
    let triples = [("the merger", 3), ("nuclear power", 6), ("José Müller", 9)];
    let article: Vec<&str> = triples
        .iter()
        .map(|(_, i)| cases[*i]["premise"].as_str().unwrap())
        .collect();
    let article = article.join(" ");
    let targets: Vec<&str> = triples.iter().map(|(t, _)| *t).collect();
    let events = analyze(server, &article, &targets).await;
    let stances = common::stances(&events);
    assert_eq!(stances.len(), 3);
    for ((target, first), stance) in triples.iter().zip(stances) {
        assert_eq!(stance.target, *target);
        let entail: Vec<f32> = (0..3)
            .map(|k| floats(&cases[first + k]["logits"])[1])
            .collect();
        let max = entail.iter().copied().fold(f32::MIN, f32::max);
        let exp: Vec<f32> = entail.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let want = [exp[0] / sum, exp[1] / sum, exp[2] / sum];
        assert_close(
            &[stance.favor, stance.against, stance.neutral],
            &want,
            target,
        );
        assert_eq!(stance.evidence.len(), 1, "{target}: one sentence names it");
        assert_eq!(
            stance.evidence[0].text,
            cases[*first]["premise"].as_str().unwrap()
        );
        let best = want.iter().copied().fold(f32::MIN, f32::max);
        assert!((stance.score - best).abs() <= TOLERANCE);
    }
}
