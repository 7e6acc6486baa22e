//! The stance engine on the real annotated set (`eval/stance/real.jsonl`),
//! through the whole pipeline (tokenizer, parser, NER, stance), plus the
//! dependency-parse scoping on single sentences. Needs the model
//! (`scripts/fetch-models`; `ARTICLE_ANALYZER_MODELS` to look elsewhere).
//!
//! The figures themselves are printed by
//! `cargo run --release --example stance_eval`; this test only asserts what
//! holds stably: every target gets a stance, and the engine beats the
//! majority-class baseline.

use std::path::PathBuf;
use std::sync::OnceLock;

use article_analyzer::backend::load_pipeline;
use article_analyzer::config::{ComponentSet, ModelConfig};
use article_analyzer::pipeline::{AnalyzeOptions, Pipeline, StanceLabel, StanceMode};
use article_analyzer::stance::eval::{evaluate, load_set, Scores};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let models = std::env::var_os("ARTICLE_ANALYZER_MODELS")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("models"));
        let config = ModelConfig {
            models_dir: Some(models),
            model: "en_core_web_sm-3.8.0".into(),
            components: ComponentSet::Parser,
        };
        load_pipeline(&config).unwrap_or_else(|e| {
            panic!("{e:#}; run scripts/fetch-models first (or set ARTICLE_ANALYZER_MODELS)")
        })
    })
}

fn stances(text: &str, targets: &[&str]) -> Vec<(String, StanceLabel)> {
    let options = AnalyzeOptions {
        entity_labels: Vec::new(),
        stance: StanceMode::Explicit(targets.iter().map(|t| t.to_string()).collect()),
    };
    let analysis = pipeline().analyze_collect(text, &options).unwrap();
    analysis
        .stances
        .into_iter()
        .map(|s| (s.target, s.label))
        .collect()
}

#[test]
fn real_set_every_target_gets_a_stance_and_beats_the_majority_baseline() {
    let items = load_set(&root().join("eval/stance/real.jsonl")).unwrap();
    assert!(items.len() >= 15, "{} items", items.len());
    for item in &items {
        assert!((3..=6).contains(&item.targets.len()), "{}", item.id);
    }
    let predictions = evaluate(pipeline(), &items).unwrap();
    let missing: Vec<String> = predictions
        .iter()
        .filter(|p| p.predicted.is_none())
        .map(|p| format!("{}/{}", p.item, p.target))
        .collect();
    assert!(missing.is_empty(), "no stance for {missing:?}");
    let scores = Scores::from_predictions(&predictions);
    let baseline = scores.majority_baseline();
    println!("{}", scores.report());
    assert!(
        scores.macro_f1_favor_against() > baseline.macro_f1_favor_against(),
        "macro-F1 {:.3} is not above the majority baseline {:.3}",
        scores.macro_f1_favor_against(),
        baseline.macro_f1_favor_against()
    );
    assert!(
        scores.accuracy() > baseline.accuracy(),
        "accuracy {:.3} is not above the majority baseline {:.3}",
        scores.accuracy(),
        baseline.accuracy()
    );
}

#[test]
fn the_object_of_a_condemnation_is_against_and_its_subject_is_not() {
    let got = stances(
        "The United States condemns Iran's attack on Israel in the strongest terms.",
        &["Iran", "Israel", "United States"],
    );
    assert_eq!(
        got,
        [
            ("Iran".to_string(), StanceLabel::Against),
            // Condemning an attack on Israel: the victim is favoured.
            ("Israel".to_string(), StanceLabel::Favor),
            // The speaker holds the attitude; it is not its object.
            ("United States".to_string(), StanceLabel::Neutral),
        ]
    );
}

#[test]
fn a_cue_reaches_only_its_own_arguments() {
    // "Kabul" is where the attacked people were, not what was condemned.
    let got = stances(
        "The government condemned the bombing of a school in Kabul.",
        &["Kabul"],
    );
    assert_eq!(got, [("Kabul".to_string(), StanceLabel::Neutral)]);
    // The second verb of a coordination has its own object.
    let got = stances(
        "Germany criticized the decision and thanked Poland for its help.",
        &["Poland"],
    );
    assert_eq!(got, [("Poland".to_string(), StanceLabel::Favor)]);
}

#[test]
fn a_reporting_word_inside_a_name_is_not_reported_speech() {
    let text = "The United States thanked Japan for its support.";
    let got = stances(text, &["Japan"]);
    assert_eq!(got, [("Japan".to_string(), StanceLabel::Favor)]);
}
