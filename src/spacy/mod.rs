//! A native Rust runtime for spaCy v3 pipelines.
//!
//! It reads the files of a trained spaCy pipeline (`en_core_web_sm` 3.8.0) as
//! they are on disk and reproduces what Python spaCy computes: the same
//! tokens, the same lexical features, the same network arithmetic in `f32`
//! and the same greedy transition decoding, so the entities are identical.
//! Python is used only as a test oracle (`tests/parity/`).

pub mod doc;
pub mod error;
pub mod hash;
pub mod language;
pub mod ner;
pub mod sentencizer;
pub mod symbols;
pub mod thinc;
pub mod tok2vec;
pub mod tokenizer;
pub mod unicode;
pub mod vocab;

pub use doc::Token;
pub use error::ModelError;
