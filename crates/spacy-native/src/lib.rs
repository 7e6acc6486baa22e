//! A native Rust runtime for spaCy v3 pipelines.
//!
//! It reads the files of a trained spaCy pipeline (`en_core_web_sm` 3.8.0, or
//! `en_core_web_md` 3.8.0 with its static word vectors, see [`vectors`]) as
//! they are on disk and reproduces what Python spaCy computes: the same
//! tokens, the same lexical features, the same network arithmetic in `f32`
//! and the same greedy transition decoding, so the entities are identical.
//! Python is used only as a test oracle (`tests/parity/`).
//!
//! Components: tokenizer, NER (always); optionally ([`language::Components`])
//! the shared tok2vec with the tagger and the arc-eager dependency parser
//! (whose sentence starts then constrain NER, as in `nlp(text)`), the
//! attribute ruler (POS) and the rule lemmatizer. NER and the parser share
//! the transition-network code in [`transition`].

pub mod attribute_ruler;
pub mod doc;
pub mod error;
pub mod hash;
pub mod language;
pub mod lemmatizer;
pub mod ner;
pub mod parser;
mod pyre;
pub mod sentencizer;
pub mod symbols;
pub mod tagger;
pub mod thinc;
pub mod tok2vec;
pub mod tokenizer;
pub mod transition;
pub mod unicode;
pub mod vectors;
pub mod vocab;

pub use doc::Token;
pub use error::ModelError;

/// The `en_core_web_sm` pipeline the unit tests read: under
/// `ARTICLE_ANALYZER_MODELS`, else in the repository's `models/`.
#[cfg(test)]
fn sm_model_dir() -> std::path::PathBuf {
    std::env::var_os("ARTICLE_ANALYZER_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("models")
        })
        .join("en_core_web_sm-3.8.0")
}
