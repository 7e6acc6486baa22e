//! The learned stance model: what callers can rely on.
//!
//! - its logits equal Python transformers' within 1e-4 on fixture sentences
//!   (`training/stance/make_fixtures.py`);
//! - its sentence-level F1m on NewsMTSC devtest_rw stays above a floor, and
//!   so does the default engine's article-level macro-F1 on the held-out
//!   statements and opinion pieces;
//! - through a real server, the sample article gives China and Russia FAVOR
//!   and the United States AGAINST, each with evidence;
//! - a corrupt or mismatched adapter fails at start-up with an error that
//!   names the file;
//! - a document's memo gives back the logits of sentences it already
//!   encoded.

mod common;

use std::path::{Path, PathBuf};

use article_analyzer::config::{ModelConfig, StanceEngine};
use article_analyzer::proto as pb;
use article_analyzer::stance::eval::{evaluate, load_set, newsmtsc, Scores};
use article_analyzer::stance::learned::encoder::{EncodedRows, SentenceInput};
use article_analyzer::stance::learned::{LearnedStance, Mode, ModelPaths};
use article_analyzer::stance::LexiconStance;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn paths() -> ModelPaths {
    let paths = ModelPaths::under(&common::models_dir());
    assert!(
        paths.present(),
        "no learned stance model at {}; run scripts/fetch-models",
        paths.adapter.display()
    );
    paths
}

fn load(paths: &ModelPaths) -> Result<LearnedStance, String> {
    let lexicon = LexiconStance::embedded().unwrap();
    LearnedStance::load(paths, lexicon, Mode::Combined).map_err(|e| e.to_string())
}

fn model() -> &'static LearnedStance {
    static MODEL: std::sync::OnceLock<LearnedStance> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| load(&paths()).expect("loading the learned stance model"))
}

/// Byte offset of code point `c` in `s`.
fn byte_at(s: &str, c: usize) -> usize {
    s.char_indices().nth(c).map_or(s.len(), |(b, _)| b)
}

#[test]
fn logits_equal_python_transformers_within_1e_4_packed_or_alone() {
    let path = root().join("tests/learned_stance/fixtures.json");
    let fixtures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(paths().adapter.join("adapter.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        fixtures["adapter_sha256"], manifest["adapter_sha256"],
        "fixtures were made for another adapter: rerun training/stance/make_fixtures.py"
    );
    let sentences = fixtures["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 10);
    let texts: Vec<String> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    let inputs: Vec<SentenceInput> = sentences
        .iter()
        .zip(&texts)
        .map(|(s, text)| SentenceInput {
            text,
            mentions: s["mentions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let (a, b) = (m[0].as_u64().unwrap(), m[1].as_u64().unwrap());
                    (byte_at(text, a as usize), byte_at(text, b as usize))
                })
                .collect(),
        })
        .collect();
    let got = model().encoder().classify(&inputs).unwrap();
    let mut worst = 0f32;
    let mut compared = 0;
    for (s, logits) in sentences.iter().zip(&got) {
        for (want, have) in s["logits"].as_array().unwrap().iter().zip(logits) {
            let have = have.expect("every fixture mention covers a word piece");
            for (w, h) in want.as_array().unwrap().iter().zip(have) {
                worst = worst.max((w.as_f64().unwrap() as f32 - h).abs());
                compared += 1;
            }
        }
    }
    println!("{compared} logits compared, largest difference {worst:.2e}");
    assert!(compared >= 60, "{compared}");
    assert!(worst < 1e-4, "largest logit difference {worst}");

    // The sentences above were packed into one pass; each one alone gives
    // the same logits (no sentence sees another's pieces).
    for (input, packed) in inputs.iter().zip(&got) {
        let alone = model()
            .encoder()
            .classify(std::slice::from_ref(input))
            .unwrap();
        for (a, p) in alone[0].iter().zip(packed) {
            for (x, y) in a.unwrap().iter().zip(p.unwrap()) {
                assert!(
                    (x - y).abs() < 1e-5,
                    "{:?}: alone {x}, packed {y}",
                    input.text
                );
            }
        }
    }
}

#[test]
fn a_documents_memo_reads_encoded_sentences_back_with_the_same_logits() {
    let text = "Critics say the treaty with Russia hurts Ukraine.";
    let at = |w: &str| {
        let a = text.find(w).unwrap();
        (a, a + w.len())
    };
    let encoder = model().encoder();
    let mut memo = EncodedRows::default();
    let first = encoder
        .classify_with(
            &[SentenceInput {
                text,
                mentions: vec![at("Russia")],
            }],
            &mut memo,
        )
        .unwrap();
    assert_eq!(memo.len(), 1);
    // The relations stage asks about the same sentence (other mentions in
    // it) and a new one: only the new one is encoded and kept.
    let later = [
        SentenceInput {
            text,
            mentions: vec![at("Ukraine"), at("Russia")],
        },
        SentenceInput {
            text: "Ukraine thanked its allies.",
            mentions: vec![(0, 7)],
        },
    ];
    let read = encoder.classify_with(&later, &mut memo).unwrap();
    assert_eq!(memo.len(), 2);
    assert_eq!(read[0][1], first[0][0], "read back, not recomputed");
    let fresh = encoder.classify(&later).unwrap();
    for (r, f) in read.iter().flatten().zip(fresh.iter().flatten()) {
        for (x, y) in r.unwrap().iter().zip(f.unwrap()) {
            assert!((x - y).abs() < 1e-5, "memo {x}, fresh pass {y}");
        }
    }
}

/// F1m (macro-F1 over the three classes), accuracy and the number of
/// targets of the sentence model on a NewsMTSC file, each target classified
/// at its own mention.
fn newsmtsc_f1m(file: &Path) -> (f64, f64, usize) {
    let sentences = newsmtsc::load(file).unwrap();
    let logits = model()
        .encoder()
        .classify(&newsmtsc::encoder_inputs(&sentences))
        .unwrap();
    let gold = sentences
        .iter()
        .flat_map(|s| s.targets.iter().map(|m| m.gold));
    let pred = logits.into_iter().flatten().map(newsmtsc::label_of);
    let scores = Scores::from_pairs(gold.zip(pred));
    (scores.macro_f1(), scores.accuracy(), scores.total())
}

/// Measured 0.790 (the Python training run and this runtime agree); the
/// floor leaves one point for numeric noise across machines.
const DEVTEST_RW_F1M_FLOOR: f64 = 0.78;

#[test]
fn devtest_rw_sentence_f1m_stays_above_its_floor() {
    let (f1m, acc, n) = newsmtsc_f1m(&root().join("data/newsmtsc/devtest_rw.jsonl"));
    println!("devtest_rw: F1m {f1m:.4}, accuracy {acc:.4}, {n} targets");
    assert_eq!(n, 1146);
    assert!(
        f1m >= DEVTEST_RW_F1M_FLOOR,
        "F1m {f1m:.4} is under the floor {DEVTEST_RW_F1M_FLOOR}"
    );
}

/// Measured 0.770 (held-out statements) and 0.625 (held-out opinion
/// pieces) by `stance_eval --all` when these floors were set; each leaves
/// about two targets' worth of room.
const HELDOUT_F1_FLOOR: f64 = 0.74;
const OPINION_F1_FLOOR: f64 = 0.59;

#[test]
fn the_default_engine_keeps_its_article_level_figures_on_the_held_out_sets() {
    let config = ModelConfig {
        models_dir: Some(common::models_dir()),
        stance: StanceEngine::Learned,
        ..ModelConfig::default()
    };
    let pipeline = article_analyzer::backend::load_pipeline(&config).unwrap();
    for (set, floor) in [
        ("heldout.jsonl", HELDOUT_F1_FLOOR),
        ("opinion.jsonl", OPINION_F1_FLOOR),
    ] {
        let items = load_set(&root().join("eval/stance").join(set)).unwrap();
        let predictions = evaluate(&pipeline, &items).unwrap();
        assert!(predictions.iter().all(|p| p.predicted.is_some()), "{set}");
        let scores = Scores::from_predictions(&predictions);
        let f1 = scores.macro_f1_favor_against();
        assert!(
            f1 >= floor,
            "{set}: macro-F1 {f1:.3} is under the floor {floor}"
        );
        assert!(
            f1 > scores.majority_baseline().macro_f1_favor_against(),
            "{set}"
        );
    }
}

#[tokio::test]
async fn the_sample_article_through_a_real_server_favours_china_and_russia() {
    let server = common::start(Default::default()).await;
    let request = common::explicit_request(
        "sample",
        &common::sample_article(),
        &["China", "Russia", "United States"],
    );
    let events = common::analyze_events(&server, request).await;
    let started = events
        .iter()
        .find_map(|e| match &e.event {
            Some(pb::analyze_event::Event::Started(s)) => Some(s),
            _ => None,
        })
        .unwrap();
    let stance_model = started.models.iter().find(|m| m.task == "stance").unwrap();
    assert_eq!(stance_model.backend, "native", "{stance_model:?}");
    assert_eq!(stance_model.sha256.len(), 64);
    assert!(stance_model.training_data.contains("NewsMTSC"));
    let stances = common::stances(&events);
    let label = |name: &str| {
        let s = stances.iter().find(|s| s.target == name).unwrap();
        assert!(!s.evidence.is_empty(), "{name} has no evidence");
        let e = &s.evidence[0];
        assert!(
            e.model.is_some(),
            "{name}: evidence without model probabilities"
        );
        assert!(
            !e.mentions.is_empty(),
            "{name}: evidence without mention spans"
        );
        pb::StanceLabel::try_from(s.label).unwrap()
    };
    assert_eq!(label("China"), pb::StanceLabel::Favor);
    assert_eq!(label("Russia"), pb::StanceLabel::Favor);
    assert_eq!(label("United States"), pb::StanceLabel::Against);
}

/// A private copy of the learned model directory (adapter and base) that a
/// test may damage.
fn scratch_copy() -> (tempfile::TempDir, ModelPaths) {
    let from = paths();
    let dir = tempfile::tempdir().unwrap();
    let to = ModelPaths::under(dir.path());
    for (src, dst) in [(&from.adapter, &to.adapter), (&from.base, &to.base)] {
        std::fs::create_dir_all(dst).unwrap();
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
            }
        }
    }
    (dir, to)
}

#[test]
fn a_corrupt_adapter_fails_at_load_naming_the_file() {
    let (_dir, paths) = scratch_copy();
    let file = paths.adapter.join("adapter.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&file, &bytes).unwrap();
    let err = load(&paths).err().expect("a corrupt adapter must not load");
    assert!(
        err.contains("adapter.safetensors") && err.contains("sha256"),
        "{err}"
    );
}

#[test]
fn an_adapter_for_another_base_fails_at_load() {
    let (_dir, paths) = scratch_copy();
    // A different base model: one changed byte in its weights file.
    let file = paths.base.join("model.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let err = load(&paths).err().expect("a mismatched base must not load");
    assert!(
        err.contains("model.safetensors") && err.contains("sha256"),
        "{err}"
    );
}

#[test]
fn a_malformed_manifest_fails_at_load() {
    let (_dir, paths) = scratch_copy();
    std::fs::write(paths.adapter.join("adapter.json"), "{\"format\": 1").unwrap();
    let err = load(&paths)
        .err()
        .expect("a malformed manifest must not load");
    assert!(err.contains("adapter.json"), "{err}");
}

#[test]
fn a_manifest_naming_an_unknown_head_fails_at_load() {
    let (_dir, paths) = scratch_copy();
    let file = paths.adapter.join("adapter.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    manifest["pooling"] = "max over the sentence".into();
    std::fs::write(&file, manifest.to_string()).unwrap();
    let err = load(&paths).err().expect("an unknown head must not load");
    assert!(
        err.contains("adapter.json") && err.contains("max over the sentence"),
        "{err}"
    );
}

#[test]
fn a_manifest_whose_tuning_contradicts_its_fields_fails_at_load() {
    let (_dir, paths) = scratch_copy();
    let file = paths.adapter.join("adapter.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    // A low-rank manifest claiming whole layers, or a fully tuned one
    // claiming a rank: either way the tensors cannot be merged as described.
    if manifest.get("rank").is_some() {
        manifest["tuning"] = "full".into();
    } else {
        manifest["rank"] = 16.into();
        manifest["alpha"] = 32.0.into();
    }
    std::fs::write(&file, manifest.to_string()).unwrap();
    let err = load(&paths)
        .err()
        .expect("a contradictory manifest must not load");
    assert!(
        err.contains("adapter.json") && err.contains("rank"),
        "{err}"
    );
}

#[test]
fn the_server_refuses_to_start_on_a_corrupt_adapter_instead_of_falling_back() {
    let (dir, paths) = scratch_copy();
    std::fs::write(paths.adapter.join("adapter.safetensors"), b"not a model").unwrap();
    let spacy = common::models_dir().join(article_analyzer::config::DEFAULT_MODEL);
    std::os::unix::fs::symlink(
        &spacy,
        dir.path().join(article_analyzer::config::DEFAULT_MODEL),
    )
    .unwrap();
    for engine in [StanceEngine::Auto, StanceEngine::Learned] {
        let config = ModelConfig {
            models_dir: Some(dir.path().to_path_buf()),
            stance: engine,
            ..ModelConfig::default()
        };
        let err = article_analyzer::backend::load_pipeline(&config)
            .err()
            .expect("a corrupt adapter must stop the start");
        let text = format!("{err:#}");
        assert!(text.contains("adapter.safetensors"), "{engine:?}: {text}");
    }
}

#[test]
fn a_huge_sentence_with_thousands_of_mentions_costs_a_bounded_number_of_pieces() {
    let text = "Merkel and Macron talked ".repeat(2_000);
    let mentions: Vec<(usize, usize)> = text
        .match_indices("Merkel")
        .map(|(i, m)| (i, i + m.len()))
        .collect();
    assert_eq!(mentions.len(), 2_000);
    let input = [SentenceInput {
        text: &text,
        mentions,
    }];
    let encoder = model().encoder();
    // At most four windows of 256 pieces, whatever the sentence's length.
    assert!(encoder.count_pieces(&input) <= 4 * 256);
    let logits = encoder.classify(&input).unwrap();
    let read = logits[0].iter().filter(|l| l.is_some()).count();
    assert!(read > 0 && read < 2_000, "{read} mentions read");
}
