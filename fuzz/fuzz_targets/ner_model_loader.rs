//! Corrupt `ner/model` bytes (seed the corpus with the real file, or parts
//! of it): decoding and building the NER component return an error that
//! names the file, or a working component; they never panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use spacy_native::ner::{load_actions, Action, Ner};
use spacy_native::thinc::ThincModel;
use libfuzzer_sys::fuzz_target;

fn actions() -> &'static Vec<Action> {
    static ACTIONS: OnceLock<Vec<Action>> = OnceLock::new();
    ACTIONS.get_or_init(|| {
        load_actions(&article_analyzer_fuzz::pipeline_dir().join("ner/moves"))
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/ner/model");
    let model = match ThincModel::from_bytes(data, path) {
        Ok(model) => model,
        Err(e) => {
            assert!(e.to_string().contains("fuzz/ner/model"), "{e}");
            return;
        }
    };
    if let Err(e) = Ner::from_parts(&model, actions().clone()) {
        assert!(e.to_string().contains("fuzz/ner/model"), "{e}");
    }
});
