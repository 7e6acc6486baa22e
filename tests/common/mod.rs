//! Shared set-up for integration tests: the real model, a real server on an
//! ephemeral port, and clients for it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use article_analyzer::config::{ComponentSet, Limits, ModelConfig, ServerConfig, DEFAULT_MODEL};
use article_analyzer::pipeline::Pipeline;
use article_analyzer::proto::article_analyzer_client::ArticleAnalyzerClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// The directory holding `en_core_web_sm-3.8.0`, from `ARTICLE_ANALYZER_MODELS`
/// or the repository's `models/`. Fails (never skips) when it is missing.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("ARTICLE_ANALYZER_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    assert!(
        dir.join(DEFAULT_MODEL).join("config.cfg").is_file(),
        "the model is missing at {}; run scripts/fetch-models first",
        dir.join(DEFAULT_MODEL).display()
    );
    dir
}

pub fn model_config() -> ModelConfig {
    ModelConfig {
        models_dir: Some(models_dir()),
        model: DEFAULT_MODEL.to_string(),
        components: ComponentSet::Parser,
        ..ModelConfig::default()
    }
}

/// The real pipeline, loaded once per test binary.
pub fn pipeline() -> Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE
        .get_or_init(|| {
            article_analyzer::backend::load_pipeline(&model_config()).expect("loading the model")
        })
        .clone()
}

/// A one-sentence article that any model analyzes in a moment.
pub const SHORT_TEXT: &str = "Angela Merkel met Emmanuel Macron in Paris.";

/// An `Analyze` request with default options.
pub fn request(id: &str, text: &str) -> article_analyzer::proto::AnalyzeRequest {
    article_analyzer::proto::AnalyzeRequest {
        request_id: id.to_string(),
        text: text.to_string(),
        options: None,
    }
}

/// An `Analyze` request whose stance targets are exactly `targets`.
#[allow(dead_code)]
pub fn explicit_request(
    id: &str,
    text: &str,
    targets: &[&str],
) -> article_analyzer::proto::AnalyzeRequest {
    use article_analyzer::proto as pb;
    pb::AnalyzeRequest {
        request_id: id.to_string(),
        text: text.to_string(),
        options: Some(pb::AnalyzeOptions {
            entity_labels: vec![],
            stance: Some(pb::StanceOptions {
                mode: pb::stance_options::Mode::Explicit as i32,
                targets: targets.iter().map(|t| t.to_string()).collect(),
                max_targets: 0,
            }),
        }),
    }
}

/// Every event of one `Analyze` call, which must succeed.
#[allow(dead_code)]
pub async fn analyze_events(
    server: &TestServer,
    request: article_analyzer::proto::AnalyzeRequest,
) -> Vec<article_analyzer::proto::AnalyzeEvent> {
    use tokio_stream::StreamExt;
    server
        .client()
        .await
        .analyze(request)
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
}

/// The sample article the README demo analyzes.
pub fn sample_article() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/china-russia-friendship.txt");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An article long enough that its events overflow every transport buffer
/// (HTTP/2 windows and hyper's send buffer), so a caller that does not read
/// really keeps its analysis waiting.
pub fn long_article() -> String {
    sample_article().repeat(40)
}

/// A server running on 127.0.0.1 with an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The server's metrics, read in process: tests wait on them instead of
    /// sleeping.
    pub metrics: std::sync::Arc<article_analyzer::metrics::Metrics>,
    stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connecting to the test server")
    }

    pub async fn client(&self) -> ArticleAnalyzerClient<Channel> {
        ArticleAnalyzerClient::new(self.channel().await)
    }

    /// What `GetModels` reports.
    pub async fn models(&self) -> Vec<article_analyzer::proto::ModelInfo> {
        self.client()
            .await
            .get_models(article_analyzer::proto::GetModelsRequest {})
            .await
            .expect("GetModels")
            .into_inner()
            .models
    }

    /// Waits (up to 30 s) until the metric `series` reads `value`.
    pub async fn until_metric(&self, series: &str, value: f64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let now = article_analyzer::metrics::sample(&self.metrics.render(), series);
            if now == Some(value) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{series} stayed {now:?}, never {value}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Starts the graceful shutdown (as SIGTERM would).
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn server_config(limits: Limits) -> ServerConfig {
    ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        limits,
        drain_secs: 10,
        security: Default::default(),
    }
}

/// Starts a server whose models come from `load`.
pub async fn start_with<L>(limits: Limits, load: L) -> TestServer
where
    L: FnOnce() -> anyhow::Result<Pipeline> + Send + 'static,
{
    start_recording(
        limits,
        load,
        std::sync::Arc::new(article_analyzer::metrics::Metrics::new()),
    )
    .await
}

/// Starts a server whose models come from `load` and whose metrics go to
/// `metrics`.
async fn start_recording<L>(
    limits: Limits,
    load: L,
    metrics: std::sync::Arc<article_analyzer::metrics::Metrics>,
) -> TestServer
where
    L: FnOnce() -> anyhow::Result<Pipeline> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let options = article_analyzer::server::ServeOptions {
        config: server_config(limits),
        metrics: metrics.clone(),
    };
    let done = tokio::spawn(article_analyzer::server::serve(
        listener,
        options,
        load,
        async move {
            let _ = stopped.await;
        },
    ));
    TestServer {
        addr,
        metrics,
        stop: Some(stop),
        done,
    }
}

/// Starts a server with the real model and waits until it is SERVING.
pub async fn start(limits: Limits) -> TestServer {
    let server = start_with(limits, || Ok(pipeline())).await;
    wait_serving(&server).await;
    server
}

/// The stance events of an `Analyze` stream, in the order they came.
pub fn stances(
    events: &[article_analyzer::proto::AnalyzeEvent],
) -> Vec<&article_analyzer::proto::Stance> {
    use article_analyzer::proto::analyze_event::Event;
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Stance(s)) => Some(s),
            _ => None,
        })
        .collect()
}

pub async fn health_status(server: &TestServer, service: &str) -> i32 {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let mut health = HealthClient::new(server.channel().await);
    health
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status
}

pub async fn wait_serving(server: &TestServer) {
    use tonic_health::pb::health_check_response::ServingStatus;
    for _ in 0..600 {
        if health_status(server, "").await == ServingStatus::Serving as i32 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("server did not become SERVING within 30 s");
}

/// Starts a server with the real model that records its metrics into
/// `metrics`, and waits until it is SERVING.
pub async fn start_with_metrics(
    limits: Limits,
    metrics: std::sync::Arc<article_analyzer::metrics::Metrics>,
) -> TestServer {
    let server = start_recording(limits, || Ok(pipeline()), metrics).await;
    wait_serving(&server).await;
    server
}
