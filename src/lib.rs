//! article-analyzer: who is named in a news article, and what the article
//! thinks of each of them, served over gRPC.
//!
//! How the pieces fit, from the wire inwards:
//!
//! - [`server`]: the gRPC service (tonic), health, reflection, the accept
//!   loop and streaming, and [`server::client`], the gRPC client room (the
//!   `client` call and the [`server::client::loadtest`] driver). With
//!   [`proto`], the generated code, the only modules that name gRPC.
//! - [`proto`]: the generated `article_analyzer.v1` messages.
//! - [`engine`]: admission control, worker slots, batching, windows,
//!   deadlines and cancellation, with no transport: jobs in, events out.
//! - [`pipeline`]: the analysis as plain Rust: the [`pipeline::EntityRecognizer`]
//!   and [`pipeline::StanceClassifier`] traits, mention grouping into
//!   referents with salience, target selection, and the events an analysis
//!   produces.
//! - [`backend`]: the models behind those traits (the native spaCy runtime).
//! - [`spacy`]: the native Rust runtime for spaCy v3 pipelines, its own
//!   crate (`crates/spacy-native`), re-exported here.
//! - [`stance`]: the stance engines: the explainable lexicon engine and
//!   [`stance::learned`], a MiniLM sentence model trained on NewsMTSC (its
//!   own BERT forward pass on gemm's kernels) aggregated over the article.
//! - [`relations`]: who stands where: holder-to-target stances from the
//!   dependency parse, read by predicates or by the stance sentence model.
//! - [`text`]: byte and code-point offsets.
//! - [`accept`]: the accept loop of every port (descriptor exhaustion,
//!   connection limits, handshake timeouts).
//! - [`config`] and [`telemetry`]: settings and logging.
//! - [`metrics`]: Prometheus metrics and their HTTP endpoint.
//! - [`cli`]: the `article-analyzer` command line.

pub mod accept;
pub mod backend;
pub mod cli;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod pipeline;
pub mod proto;
pub mod relations;
pub mod server;
pub use spacy_native as spacy;
pub mod stance;
pub mod telemetry;
pub mod text;
