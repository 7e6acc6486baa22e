//! Settings, from flags or `ARTICLE_ANALYZER_*` environment variables.
//!
//! One struct per concern; `clap` derives both the flags and the environment
//! names from them, so there is a single config surface to document.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, FromArgMatches, ValueEnum};

/// The settings a flag struct takes when no flag is given, whatever the
/// environment says. A default is written once, in its `#[arg(default_value…)]`;
/// `Default` reads it from there, so the CLI and library users cannot drift
/// apart.
fn flag_defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults").no_binary_name(true))
        .mut_args(|arg| arg.env(None::<&'static str>));
    let matches = command
        .try_get_matches_from(std::iter::empty::<String>())
        .expect("every setting of a struct with Default has a default value");
    T::from_arg_matches(&matches).expect("the default values parse")
}

/// Name of the default model directory inside the models directory.
pub const DEFAULT_MODEL: &str = "en_core_web_sm-3.8.0";

/// Where the models are.
#[derive(Debug, Clone, Args)]
pub struct ModelConfig {
    /// Directory holding the model directories (default: `models/` in the
    /// working directory, else at the repository root).
    #[arg(long = "models", env = "ARTICLE_ANALYZER_MODELS", value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Which model directory under `--models` to load.
    #[arg(long, env = "ARTICLE_ANALYZER_MODEL", default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Which spaCy components run besides the tokenizer and NER.
    #[arg(long, env = "ARTICLE_ANALYZER_COMPONENTS", value_enum, default_value_t = ComponentSet::Parser)]
    pub components: ComponentSet,
    /// Which stance engine decides (`auto`: `learned` when its files are in
    /// the models directory, else `lexicon`; `nli` when `--bert-nli` names
    /// a model).
    #[arg(long = "stance", env = "ARTICLE_ANALYZER_STANCE", value_enum, default_value_t = StanceEngine::Auto)]
    pub stance: StanceEngine,
    /// Most sentences the learned stance model classifies per target (the
    /// first ones in text order); bounds the cost on huge articles.
    #[arg(long = "stance-max-sentences", env = "ARTICLE_ANALYZER_STANCE_MAX_SENTENCES", default_value_t = DEFAULT_STANCE_MAX_SENTENCES)]
    pub stance_max_sentences: usize,
    /// The users' own transformer models, where named (the `rust-bert`
    /// build feature).
    #[command(flatten)]
    pub transformers: TransformerConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        flag_defaults()
    }
}

/// Default of `--stance-max-sentences`.
pub const DEFAULT_STANCE_MAX_SENTENCES: usize = 24;

/// The stance engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum StanceEngine {
    /// `learned` when its model files are present, else `lexicon` (`nli`
    /// when `--bert-nli` is given).
    #[default]
    Auto,
    /// The learned sentence model (MiniLM fine-tuned on NewsMTSC, run
    /// natively), with the lexicon's cues combined in.
    Learned,
    /// The learned model alone, without the lexicon's cues.
    LearnedOnly,
    /// The lexicon engine alone: the fast mode.
    Lexicon,
    /// Zero-shot NLI through rust-bert (`--bert-nli DIR`).
    Nli,
}

/// The spaCy components to run: callers that need only entities need not pay
/// for the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ComponentSet {
    /// Tokenizer and NER; sentences from spaCy's rule-based sentencizer.
    Ner,
    /// Adds the shared tok2vec and the dependency parser: sentences from the
    /// parse, entities exactly as the full spaCy pipeline gives them.
    #[default]
    Parser,
    /// Every component: tagger, parser, attribute ruler and lemmatizer too
    /// (tokens carry tag, POS, dependency, head and lemma).
    Full,
}

impl ModelConfig {
    /// The models directory: `--models`, or the default.
    pub fn models_root(&self) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(default_models_dir)
    }

    /// The directory of the spaCy pipeline to load.
    ///
    /// `--models` may point at the pipeline itself (it has a `config.cfg`) or
    /// at a directory of pipelines.
    pub fn pipeline_dir(&self) -> PathBuf {
        let root = self.models_root();
        if root.join("config.cfg").is_file() {
            root
        } else {
            root.join(&self.model)
        }
    }
}

/// Transformer models from local Hugging Face directories, served through
/// rust-bert. Only a binary built with the `rust-bert` cargo feature can load
/// them; without it, naming a model is a clear start-up error.
#[derive(Debug, Clone, Args)]
pub struct TransformerConfig {
    /// Token-classification model directory (BERT, RoBERTa, DistilBERT,
    /// DeBERTa...): entities come from it instead of spaCy's NER. Tokens and
    /// sentences still come from the spaCy pipeline.
    #[arg(
        long = "bert-ner",
        env = "ARTICLE_ANALYZER_BERT_NER",
        value_name = "DIR"
    )]
    pub ner_model: Option<PathBuf>,
    /// How word-piece predictions become one label per word.
    #[arg(long = "bert-aggregation", env = "ARTICLE_ANALYZER_BERT_AGGREGATION", value_enum, default_value_t = Aggregation::First)]
    pub aggregation: Aggregation,
    /// Longest window of word pieces the NER model sees at once, special
    /// tokens included (0: the model's `max_position_embeddings`, at most 512).
    #[arg(
        long = "bert-window-tokens",
        env = "ARTICLE_ANALYZER_BERT_WINDOW_TOKENS",
        default_value_t = 0
    )]
    pub window_tokens: usize,
    /// Word pieces neighbouring windows share, so every piece is labelled
    /// with context on both sides.
    #[arg(
        long = "bert-window-overlap",
        env = "ARTICLE_ANALYZER_BERT_WINDOW_OVERLAP",
        default_value_t = 64
    )]
    pub window_overlap: usize,
    /// NLI model directory (an MNLI cross-encoder): stance from zero-shot
    /// entailment instead of the lexicon engine.
    #[arg(
        long = "bert-nli",
        env = "ARTICLE_ANALYZER_BERT_NLI",
        value_name = "DIR"
    )]
    pub nli_model: Option<PathBuf>,
    /// Hypothesis for FAVOR; `{target}` is replaced by the target's name.
    #[arg(long = "nli-favor-template", env = "ARTICLE_ANALYZER_NLI_FAVOR_TEMPLATE", default_value = DEFAULT_FAVOR_TEMPLATE)]
    pub favor_template: String,
    /// Hypothesis for AGAINST.
    #[arg(long = "nli-against-template", env = "ARTICLE_ANALYZER_NLI_AGAINST_TEMPLATE", default_value = DEFAULT_AGAINST_TEMPLATE)]
    pub against_template: String,
    /// Hypothesis for NEUTRAL.
    #[arg(long = "nli-neutral-template", env = "ARTICLE_ANALYZER_NLI_NEUTRAL_TEMPLATE", default_value = DEFAULT_NEUTRAL_TEMPLATE)]
    pub neutral_template: String,
    /// Most evidence sentences scored per target (those that mention it, in
    /// text order).
    #[arg(
        long = "nli-max-sentences",
        env = "ARTICLE_ANALYZER_NLI_MAX_SENTENCES",
        default_value_t = 8
    )]
    pub max_sentences: usize,
    /// Premise/hypothesis pairs per forward pass of the NLI model.
    #[arg(
        long = "nli-batch-size",
        env = "ARTICLE_ANALYZER_NLI_BATCH_SIZE",
        default_value_t = 16
    )]
    pub batch_size: usize,
    /// Threads libtorch uses inside one forward pass (0: its default, one
    /// per core). With several workers, 1 avoids oversubscription.
    #[arg(
        long = "torch-threads",
        env = "ARTICLE_ANALYZER_TORCH_THREADS",
        default_value_t = 0
    )]
    pub torch_threads: usize,
}

pub const DEFAULT_FAVOR_TEMPLATE: &str = "The author supports {target}.";
pub const DEFAULT_AGAINST_TEMPLATE: &str = "The author opposes {target}.";
pub const DEFAULT_NEUTRAL_TEMPLATE: &str = "The author is neutral about {target}.";

impl Default for TransformerConfig {
    fn default() -> Self {
        flag_defaults()
    }
}

impl TransformerConfig {
    /// Whether any transformer model is configured.
    pub fn any(&self) -> bool {
        self.ner_model.is_some() || self.nli_model.is_some()
    }
}

/// Word-level aggregation of a token classifier's word-piece predictions
/// (the strategies of the Hugging Face token-classification pipeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Aggregation {
    /// The word takes the first piece's label and score.
    #[default]
    First,
    /// Piece probabilities are averaged, then the best label wins.
    Average,
    /// The piece with the most confident prediction decides.
    Max,
}

fn default_models_dir() -> PathBuf {
    let local = Path::new("models");
    if local.is_dir() {
        return local.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// How the server listens and how much work it takes on.
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Address to listen on.
    #[arg(long, env = "ARTICLE_ANALYZER_ADDR", default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub limits: Limits,
    /// Seconds to let in-flight calls finish after SIGTERM/SIGINT.
    #[arg(long, env = "ARTICLE_ANALYZER_DRAIN_SECS", default_value_t = 25)]
    pub drain_secs: u64,
    #[command(flatten)]
    pub security: SecurityConfig,
}

/// TLS, caller authentication and what is exposed (see `server::security`).
#[derive(Debug, Clone, Default, Args)]
pub struct SecurityConfig {
    /// PEM certificate chain of the server; with `--tls-key`, serve TLS only.
    #[arg(long, env = "ARTICLE_ANALYZER_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "ARTICLE_ANALYZER_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): clients must present a certificate they signed
    /// (mutual TLS).
    #[arg(long, env = "ARTICLE_ANALYZER_TLS_CLIENT_CA", value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,
    /// File of accepted bearer tokens, one per line (`#` comments allowed);
    /// the analyzer service then requires `authorization: Bearer <token>`.
    #[arg(long, env = "ARTICLE_ANALYZER_AUTH_TOKEN_FILE", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Accepted bearer tokens, comma separated (prefer the file: flags show
    /// in process listings).
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_AUTH_TOKENS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "TOKENS"
    )]
    pub auth_tokens: Vec<String>,
    /// Do not serve gRPC server reflection.
    #[arg(long, env = "ARTICLE_ANALYZER_NO_REFLECTION")]
    pub no_reflection: bool,
}

/// Where the Prometheus metrics are served.
#[derive(Debug, Clone, Args)]
pub struct MetricsConfig {
    /// Address of the HTTP endpoint serving GET /metrics (port 0: any free port).
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_METRICS_ADDR",
        default_value = "127.0.0.1:9090"
    )]
    pub metrics_addr: SocketAddr,
    /// Do not serve metrics.
    #[arg(long, env = "ARTICLE_ANALYZER_NO_METRICS")]
    pub no_metrics: bool,
}

/// Bounds on work, so no caller can take the server down.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Analyses running at once (0: one per core).
    #[arg(long, env = "ARTICLE_ANALYZER_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Analyses waiting for a worker before new ones get RESOURCE_EXHAUSTED.
    #[arg(long, env = "ARTICLE_ANALYZER_QUEUE", default_value_t = 64)]
    pub queue: usize,
    /// Longest article, in Unicode code points (INVALID_ARGUMENT beyond).
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_MAX_TEXT_CHARS",
        default_value_t = 1_000_000
    )]
    pub max_text_chars: usize,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "ARTICLE_ANALYZER_MAX_MESSAGE_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Requests of one AnalyzeStream call processed at once.
    #[arg(long, env = "ARTICLE_ANALYZER_STREAM_CONCURRENCY", default_value_t = 4)]
    pub stream_concurrency: usize,
    /// Response messages queued per call for the transport. The analysis
    /// never waits for them: it finishes into the call's own buffer, and a
    /// reader that stalls is cut off after `--stall-timeout-secs`.
    #[arg(long, env = "ARTICLE_ANALYZER_EVENT_BUFFER", default_value_t = 32)]
    pub event_buffer: usize,
    /// Seconds a caller may read nothing of its answer while answers wait,
    /// before its call ends with DEADLINE_EXCEEDED and its buffer is freed
    /// (0: wait forever).
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_STALL_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub stall_timeout_secs: u64,
    /// Connections open at once; new ones over it are closed on accept, so
    /// open ones keep their service. Lowered at start to fit the process's
    /// open-file limit.
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_MAX_CONNECTIONS",
        default_value_t = 10_000
    )]
    pub max_connections: usize,
    /// Seconds a new connection has to start its handshake (its first 24
    /// bytes) before it is closed (0: no limit).
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_HANDSHAKE_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub handshake_timeout_secs: u64,
    /// Dynamic batching: the most tokens (estimated as UTF-8 bytes / 4) of
    /// documents from different calls that go through the recognizer as one
    /// batch (0: no batching, one document at a time).
    #[arg(long, env = "ARTICLE_ANALYZER_BATCH_MAX_TOKENS", default_value_t = 0)]
    pub batch_max_tokens: usize,
    /// Dynamic batching: how long a batch that has a worker waits for more
    /// documents, in milliseconds (0: it takes only those already waiting).
    #[arg(long, env = "ARTICLE_ANALYZER_BATCH_MAX_WAIT_MS", default_value_t = 0)]
    pub batch_max_wait_ms: u64,
    /// Articles longer than this many code points are recognized in windows
    /// cut at paragraph or sentence ends, one worker turn per window, so one
    /// huge article cannot hold a worker while others wait (0: never split).
    #[arg(long, env = "ARTICLE_ANALYZER_WINDOW_CHARS", default_value_t = 50_000)]
    pub window_chars: usize,
    /// HTTP/2 streams (calls) one connection may have open at once; further
    /// calls on it wait until one ends (0: no limit).
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_MAX_CONCURRENT_STREAMS",
        default_value_t = 100
    )]
    pub max_concurrent_streams: u32,
    /// Seconds between HTTP/2 PING frames that check the peer is still
    /// there (0: none).
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_HTTP2_KEEPALIVE_INTERVAL_SECS",
        default_value_t = 60
    )]
    pub http2_keepalive_interval_secs: u64,
    /// Seconds to wait for a PING's acknowledgement before closing the
    /// connection.
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_HTTP2_KEEPALIVE_TIMEOUT_SECS",
        default_value_t = 20
    )]
    pub http2_keepalive_timeout_secs: u64,
    /// Seconds a connection may stay idle before TCP keepalive probes start
    /// (0: no TCP keepalive).
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_TCP_KEEPALIVE_SECS",
        default_value_t = 60
    )]
    pub tcp_keepalive_secs: u64,
    /// Longest wait, in seconds, for a call's response headers: the whole
    /// call for AnalyzeDocument and GetModels, only the start of Analyze and
    /// AnalyzeStream (their streams are not cut). A shorter `grpc-timeout`
    /// from the caller wins (0: no server-side limit).
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_REQUEST_TIMEOUT_SECS",
        default_value_t = 120
    )]
    pub request_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        flag_defaults()
    }
}

impl Limits {
    /// Worker count with 0 resolved to the number of cores.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// A setting in seconds as a `Duration`, 0 meaning none.
    pub fn secs(secs: u64) -> Option<Duration> {
        (secs > 0).then(|| Duration::from_secs(secs))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// How to log.
#[derive(Debug, Clone, Args)]
pub struct LogConfig {
    #[arg(long, env = "ARTICLE_ANALYZER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `article_analyzer=debug`.
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_LOG",
        default_value = "info",
        global = true
    )]
    pub log: String,
    /// OTLP/gRPC collector to export trace spans to, such as
    /// `http://otel-collector:4317` (default: no export). Needs the `otel`
    /// build feature.
    #[cfg(feature = "otel")]
    #[arg(long, env = "ARTICLE_ANALYZER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    #[cfg(feature = "otel")]
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_OTEL_SERVICE_NAME",
        default_value = "article-analyzer",
        global = true
    )]
    pub otel_service_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_flags_defaults_and_ignore_the_environment() {
        // No other test reads this variable.
        std::env::set_var("ARTICLE_ANALYZER_NLI_BATCH_SIZE", "3");
        let parsed = <TransformerConfig as FromArgMatches>::from_arg_matches(
            &TransformerConfig::augment_args(clap::Command::new("t").no_binary_name(true))
                .get_matches_from(["--nli-batch-size", "5"]),
        )
        .unwrap();
        assert_eq!(parsed.batch_size, 5);
        assert_ne!(TransformerConfig::default().batch_size, 3);
        std::env::remove_var("ARTICLE_ANALYZER_NLI_BATCH_SIZE");
        let limits = Limits::default();
        assert!(limits.queue > 0 && limits.max_text_chars > 0 && limits.event_buffer > 0);
        let models = ModelConfig::default();
        assert_eq!(models.model, DEFAULT_MODEL);
        assert_eq!(models.stance_max_sentences, DEFAULT_STANCE_MAX_SENTENCES);
    }
}
