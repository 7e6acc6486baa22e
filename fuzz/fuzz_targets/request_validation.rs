//! Arbitrary bytes decoded as an `AnalyzeRequest` (as tonic would) and put
//! through the server's validation: it never panics, rejects only with
//! INVALID_ARGUMENT, and what it accepts satisfies every documented limit.
#![no_main]

use std::sync::{Arc, OnceLock};

use article_analyzer::config::Limits;
use article_analyzer::pipeline::{
    AnalysisError, EntityRecognizer, ModelInfo, Pipeline, Recognized, StanceMode, MAX_TARGETS_LIMIT,
};
use article_analyzer::proto as pb;
use article_analyzer::server::validate_request;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::Code;

const LABELS: &[&str] = &[
    "CARDINAL",
    "DATE",
    "EVENT",
    "FAC",
    "GPE",
    "LANGUAGE",
    "LAW",
    "LOC",
    "MONEY",
    "NORP",
    "ORDINAL",
    "ORG",
    "PERCENT",
    "PERSON",
    "PRODUCT",
    "QUANTITY",
    "TIME",
    "WORK_OF_ART",
];

/// Validation needs only the label set, not the model.
struct Labels;

impl EntityRecognizer for Labels {
    fn model_info(&self) -> ModelInfo {
        ModelInfo {
            task: "ner".into(),
            name: "labels-only".into(),
            version: "0".into(),
            backend: "fuzz".into(),
            labels: LABELS.iter().map(|l| l.to_string()).collect(),
            components: vec![],
            sha256: None,
            training_data: None,
        }
    }

    fn recognize(&self, _text: &str) -> Result<Recognized, AnalysisError> {
        unreachable!("validation never runs the model")
    }
}

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| Pipeline::new(Arc::new(Labels), None))
}

fuzz_target!(|data: &[u8]| {
    let Ok(req) = pb::AnalyzeRequest::decode(data) else {
        return;
    };
    let limits = Limits {
        max_text_chars: 64,
        ..Limits::default()
    };
    match validate_request(pipeline(), &limits, &req.text, req.options.as_ref()) {
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(!status.message().is_empty());
        }
        Ok(options) => {
            assert!(!req.text.trim().is_empty());
            assert!(req.text.chars().count() <= limits.max_text_chars);
            assert!(options
                .entity_labels
                .iter()
                .all(|l| LABELS.contains(&l.as_str())));
            match &options.stance {
                StanceMode::Explicit(targets) => {
                    assert!(!targets.is_empty() && targets.len() <= MAX_TARGETS_LIMIT);
                    assert!(targets.iter().all(|t| !t.trim().is_empty()));
                }
                StanceMode::Automatic { max_targets } => {
                    assert!(*max_targets <= MAX_TARGETS_LIMIT)
                }
                StanceMode::Disabled => {}
            }
        }
    }
});
