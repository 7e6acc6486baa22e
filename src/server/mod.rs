//! The gRPC server: the only module that knows about gRPC.
//!
//! It serves `article_analyzer.v1.ArticleAnalyzer`, `grpc.health.v1.Health`
//! and server reflection (v1 and v1alpha, since grpcurl speaks v1alpha). The
//! port opens at once; health says NOT_SERVING until the models are loaded,
//! so Kubernetes start-up probes can wait for them.

// tonic's own API passes `Status` by value in `Result`s; boxing it only here
// would add conversions at every call site for no gain.
#![allow(clippy::result_large_err)]

pub mod client;
mod convert;
mod edge;
mod observe;
mod respond;
pub mod security;
mod trace_context;

pub use observe::code_name;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tracing::{error, info, warn};

use crate::accept;
use crate::config::{Limits, ServerConfig};
use crate::engine::{self, Analysis, Engine, Job};
use crate::metrics::Metrics;
use crate::pipeline::{AnalyzeOptions, Pipeline};
use crate::proto as pb;
use crate::proto::article_analyzer_server::{ArticleAnalyzer, ArticleAnalyzerServer};
use respond::{CallStream, Responder};
use trace_context::RemoteParent;

/// The fully qualified name of our service, as health checks name it.
pub const SERVICE_NAME: &str = "article_analyzer.v1.ArticleAnalyzer";

/// Longest `request_id`, in UTF-8 bytes: it is repeated on every event of
/// its answer, so an unbounded one would multiply the response size.
pub const MAX_REQUEST_ID_BYTES: usize = 256;

/// Shared state of all calls.
#[derive(Clone)]
struct Service {
    pipeline: Arc<OnceLock<Pipeline>>,
    engine: Arc<Engine>,
    limits: Limits,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AnalyzeEvent, Status>> + Send>>;

/// A request that failed before it ran: the id to answer with and why.
type Refused = (String, Status);

impl Service {
    fn pipeline(&self) -> Result<Pipeline, Status> {
        self.pipeline
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("models are still loading; retry shortly"))
    }

    /// Checks a request and turns it into a job; cheap, done before queueing.
    fn job(
        &self,
        pipeline: &Pipeline,
        req: pb::AnalyzeRequest,
        deadline: Option<Instant>,
        parent: &RemoteParent,
    ) -> Result<(String, Job), Refused> {
        if req.request_id.len() > MAX_REQUEST_ID_BYTES {
            let mut cut = MAX_REQUEST_ID_BYTES;
            while !req.request_id.is_char_boundary(cut) {
                cut -= 1;
            }
            return Err((
                req.request_id[..cut].to_string(),
                Status::invalid_argument(format!(
                    "request_id has {} bytes; the limit is {MAX_REQUEST_ID_BYTES} \
                     (it is echoed here cut to the limit)",
                    req.request_id.len()
                )),
            ));
        }
        let request_id = if req.request_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            req.request_id
        };
        let options = validate_request(pipeline, &self.limits, &req.text, req.options.as_ref())
            .map_err(|s| (request_id.clone(), s))?;
        let span = engine::analysis_span(&request_id, req.text.len());
        parent.apply(&span);
        Ok((
            request_id,
            Job {
                text: req.text,
                options,
                deadline,
                span,
            },
        ))
    }

    /// Validates, admits and starts one analysis.
    fn start(
        &self,
        req: pb::AnalyzeRequest,
        deadline: Option<Instant>,
        parent: &RemoteParent,
    ) -> Result<(String, Analysis), Refused> {
        let pipeline = self.pipeline().map_err(|s| (req.request_id.clone(), s))?;
        let (request_id, job) = self.job(&pipeline, req, deadline, parent)?;
        let admitted = self
            .engine
            .admit()
            .map_err(|e| (request_id.clone(), convert::status(&e)))?;
        Ok((request_id, self.engine.start(pipeline, job, admitted)))
    }

    /// Starts counting a call in the metrics (and tells [`edge::Edge`] so).
    fn call<T>(&self, request: &Request<T>, rpc: &'static str) -> crate::metrics::CallGuard {
        edge::Counted::mark(request.extensions());
        self.engine.metrics().start_call(rpc)
    }

    fn responder(&self) -> (Responder, CallStream) {
        Responder::new(
            self.limits.event_buffer,
            Limits::secs(self.limits.stall_timeout_secs),
        )
    }
}

/// Sends one analysis's events to `out` as protobuf messages. An error ends
/// the call (`bulk: false`) or becomes that request's `Failed` event (`bulk:
/// true`). Returns false when the caller is gone or cut off; dropping the
/// analysis then cancels it.
async fn forward(request_id: &str, mut analysis: Analysis, out: &Responder, bulk: bool) -> bool {
    loop {
        // A caller that leaves while the analysis is still queued or
        // recognizing stops it now, not at its next event.
        let item = tokio::select! {
            item = analysis.next() => item,
            _ = out.closed() => return false,
        };
        let Some(item) = item else { break };
        let message = match item {
            Ok(event) => Ok(convert::event(request_id, &event)),
            Err(e) if bulk => Ok(convert::failed(request_id, &convert::status(&e))),
            Err(e) => Err(convert::status(&e)),
        };
        if out.send(message).await.is_err() {
            return false;
        }
    }
    true
}

/// Checks an `AnalyzeRequest`'s text and options the way every RPC does
/// before queueing it: the analysis options, or the INVALID_ARGUMENT status
/// the caller gets. Pure and cheap (no model runs); public for fuzzing.
pub fn validate_request(
    pipeline: &Pipeline,
    limits: &Limits,
    text: &str,
    options: Option<&pb::AnalyzeOptions>,
) -> Result<AnalyzeOptions, Status> {
    if text.trim().is_empty() {
        return Err(Status::invalid_argument(
            "text is empty; send the article text in AnalyzeRequest.text",
        ));
    }
    let chars = text.chars().count();
    if chars > limits.max_text_chars {
        return Err(Status::invalid_argument(format!(
            "text has {chars} characters; the limit (max_text_chars) is {}",
            limits.max_text_chars
        )));
    }
    let options = convert::options(options)?;
    pipeline
        .validate(&options)
        .map_err(|e| convert::status(&e))?;
    Ok(options)
}

/// A call's deadline: the caller's `grpc-timeout` or, for a unary call,
/// the server's `request_timeout_secs` if that is sooner, counted from when
/// the call reached the server ([`edge::Arrived`], set with the parsed
/// `grpc-timeout` before the body is read), less a millisecond so that our
/// DEADLINE_EXCEEDED reaches the caller before tonic's own timer answers
/// CANCELLED ("Timeout expired").
fn deadline_of<T>(req: &Request<T>, server_timeout: Option<Duration>) -> Option<Instant> {
    // Every call comes through the edge; without it only the server's own
    // timeout applies, from now.
    let arrived = req.extensions().get::<edge::Arrived>().copied();
    let (at, caller) = arrived.map_or((Instant::now(), None), |a| (a.at, a.caller_timeout));
    edge::headers_due(at, caller, server_timeout)
}

#[tonic::async_trait]
impl ArticleAnalyzer for Service {
    type AnalyzeStream = EventStream;
    type AnalyzeStreamStream = EventStream;

    async fn analyze(
        &self,
        request: Request<pb::AnalyzeRequest>,
    ) -> Result<Response<Self::AnalyzeStream>, Status> {
        let call = self.call(&request, "Analyze");
        let deadline = deadline_of(&request, None);
        let parent = RemoteParent::from_metadata(request.metadata());
        match self.start(request.into_inner(), deadline, &parent) {
            Ok((request_id, analysis)) => {
                let (out, stream) = self.responder();
                tokio::spawn(async move { forward(&request_id, analysis, &out, false).await });
                Ok(Response::new(Box::pin(observe::Observed::new(
                    stream, call,
                ))))
            }
            Err((_, status)) => {
                call.finish(observe::code_name(status.code()));
                Err(status)
            }
        }
    }

    async fn analyze_document(
        &self,
        request: Request<pb::AnalyzeRequest>,
    ) -> Result<Response<pb::AnalyzeResponse>, Status> {
        use crate::pipeline::Event as E;
        let call = self.call(&request, "AnalyzeDocument");
        let deadline = deadline_of(&request, Limits::secs(self.limits.request_timeout_secs));
        let parent = RemoteParent::from_metadata(request.metadata());
        let work = async move {
            let (request_id, mut analysis) = self
                .start(request.into_inner(), deadline, &parent)
                .map_err(|(_, s)| s)?;
            let mut out = pb::AnalyzeResponse {
                request_id,
                ..Default::default()
            };
            while let Some(event) = analysis.next().await {
                match event.map_err(|e| convert::status(&e))? {
                    E::Started(models) => out.models = models.iter().map(convert::model).collect(),
                    E::Sentence(s) => out.sentences.push(convert::sentence(&s)),
                    E::Entities(es) => out.entities = es.iter().map(convert::entity).collect(),
                    E::Stance(s) => out.stances.push(convert::stance(&s)),
                    E::Relations(rs) => out.relations = rs.iter().map(convert::relation).collect(),
                    E::Completed(c) => out.completed = Some(convert::completed(&c)),
                }
            }
            if out.completed.is_none() {
                return Err(Status::internal("the analysis ended without a result"));
            }
            Ok(Response::new(out))
        };
        observe::unary(call, async move {
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline.into(), work)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Status::deadline_exceeded(
                            "deadline expired before the answer",
                        ))
                    }),
                None => work.await,
            }
        })
        .await
    }

    async fn analyze_stream(
        &self,
        request: Request<Streaming<pb::AnalyzeRequest>>,
    ) -> Result<Response<Self::AnalyzeStreamStream>, Status> {
        let call = self.call(&request, "AnalyzeStream");
        let deadline = deadline_of(&request, None);
        let parent = RemoteParent::from_metadata(request.metadata());
        let inbound = request.into_inner();
        if let Err(status) = self.pipeline() {
            call.finish(observe::code_name(status.code()));
            return Err(status);
        }
        let (out, stream) = self.responder();
        tokio::spawn(bulk(self.clone(), inbound, deadline, parent, out));
        Ok(Response::new(Box::pin(observe::Observed::new(
            stream, call,
        ))))
    }

    async fn get_models(
        &self,
        _request: Request<pb::GetModelsRequest>,
    ) -> Result<Response<pb::GetModelsResponse>, Status> {
        let call = self.call(&_request, "GetModels");
        observe::unary(call, async {
            let pipeline = self.pipeline()?;
            Ok(Response::new(pb::GetModelsResponse {
                models: pipeline.models().iter().map(convert::model).collect(),
            }))
        })
        .await
    }
}

/// Requests of one `AnalyzeStream` read ahead of the ones running.
const READ_AHEAD: usize = 64;

/// Runs one `AnalyzeStream` call: every request gets exactly one outcome
/// on `out` (its events ending in `Completed`, or a `Failed` event), up to
/// `stream_concurrency` at once, in the order they finish.
///
/// Reading the requests runs apart from running them, so the call's HTTP/2
/// frames never pile up unread inside h2 (which closes a connection whose
/// unread small frames pass its budget: GOAWAY `too_many_data_frames`).
/// The read-ahead queue is bounded; when it is full the stream's
/// flow-control window (64 KiB) holds the caller back.
async fn bulk(
    service: Service,
    mut inbound: Streaming<pb::AnalyzeRequest>,
    deadline: Option<Instant>,
    parent: RemoteParent,
    out: Responder,
) {
    let (ahead_tx, mut ahead) = mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        loop {
            let next = match inbound.message().await {
                Ok(Some(req)) => Ok(req),
                Ok(None) => return,
                // An over-limit message, say, ends the call with its status
                // rather than silently.
                Err(status) => Err(edge::fix(status)),
            };
            let failed = next.is_err();
            if ahead_tx.send(next).await.is_err() || failed {
                return;
            }
        }
    });
    let per_stream = Arc::new(tokio::sync::Semaphore::new(
        service.limits.stream_concurrency.max(1),
    ));
    while let Some(next) = ahead.recv().await {
        let req = match next {
            Ok(req) => req,
            Err(status) => {
                warn!("AnalyzeStream inbound error: {status}");
                let _ = out.send(Err(status)).await;
                return;
            }
        };
        let Ok(permit) = per_stream.clone().acquire_owned().await else {
            return;
        };
        // A caller that left or was cut off gets no more work started;
        // returning drops the request stream.
        if out.is_gone() {
            return;
        }
        match service.start(req, deadline, &parent) {
            Err((request_id, status)) => {
                if out
                    .send(Ok(convert::failed(&request_id, &status)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok((request_id, analysis)) => {
                let out = out.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    forward(&request_id, analysis, &out, true).await;
                });
            }
        }
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    let reporter = reporter.clone();
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// What a server runs with besides its listener, models and shutdown signal.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config: ServerConfig,
    /// Where RPC, queue and analysis metrics are recorded (the caller
    /// exports them, for example with [`crate::metrics::serve_http`]).
    pub metrics: Arc<Metrics>,
}

impl ServeOptions {
    /// `config`, with metrics kept but not exported.
    pub fn new(config: ServerConfig) -> Self {
        ServeOptions {
            config,
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// Serves on `listener` until `shutdown` completes, then drains.
///
/// `load` runs on a blocking thread after the port is open; health turns
/// SERVING when it returns. If it fails the server stops with its error.
///
/// At `shutdown`: health answers NOT_SERVING to every `Check` at once, the
/// listening socket closes (new connections are refused, so clients fail
/// over), new analyses get UNAVAILABLE, and the analyses in flight finish
/// within `drain_secs`; then every connection gets a GOAWAY and the server
/// returns. An accept error other than descriptor exhaustion ends it with
/// that error.
pub async fn serve<L, F>(
    listener: TcpListener,
    options: ServeOptions,
    load: L,
    shutdown: F,
) -> anyhow::Result<()>
where
    L: FnOnce() -> anyhow::Result<Pipeline> + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let ServeOptions { config, metrics } = options;
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;
    // Health changes go through this lock, and `true` once draining: a
    // model load that ends during the drain must not say SERVING again.
    let draining = Arc::new(tokio::sync::Mutex::new(false));

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let cell = Arc::new(OnceLock::new());
    let engine = Arc::new(Engine::new(&config.limits, metrics.clone()));
    let service = Service {
        pipeline: cell.clone(),
        engine: engine.clone(),
        limits: config.limits.clone(),
    };
    let analyzer = ArticleAnalyzerServer::new(service)
        .max_decoding_message_size(config.limits.max_message_bytes)
        .max_encoding_message_size(config.limits.max_message_bytes);
    let tls = security::tls_config(&config.security)?;
    let auth = security::BearerAuth::new(security::load_tokens(&config.security)?);
    let reflection = !config.security.no_reflection;
    info!(
        tls = tls.is_some(),
        mutual_tls = config.security.tls_client_ca.is_some(),
        bearer_auth = auth.enabled(),
        reflection,
        "transport security"
    );

    let (load_err_tx, mut load_err_rx) = mpsc::channel::<anyhow::Error>(1);
    let load_reporter = reporter.clone();
    let load_draining = draining.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        match tokio::task::spawn_blocking(load).await {
            Ok(Ok(pipeline)) => {
                let names: Vec<String> = pipeline
                    .models()
                    .iter()
                    .map(|m| format!("{} {} ({})", m.name, m.version, m.task))
                    .collect();
                let _ = cell.set(pipeline);
                let draining = load_draining.lock().await;
                if *draining {
                    return;
                }
                set_health(&load_reporter, ServingStatus::Serving).await;
                drop(draining);
                info!(
                    load_ms = started.elapsed().as_millis() as u64,
                    models = %names.join(", "),
                    "models loaded; SERVING"
                );
            }
            Ok(Err(e)) => {
                let _ = load_err_tx.send(e).await;
            }
            Err(join) => {
                let _ = load_err_tx
                    .send(anyhow::anyhow!("model loading panicked: {join}"))
                    .await;
            }
        }
    });

    let local = listener.local_addr()?;
    let limits = &config.limits;
    let max_connections =
        accept::effective_max_connections(limits.max_connections, accept::raise_descriptor_limit());
    info!(addr = %local, max_connections, "listening");
    let (mut acceptor, incoming) = accept::Acceptor::start(
        listener,
        accept::AcceptOptions {
            max_connections,
            handshake_timeout: Limits::secs(limits.handshake_timeout_secs),
            tcp_keepalive: Limits::secs(limits.tcp_keepalive_secs),
        },
        metrics.clone(),
    );
    let drain = Duration::from_secs(config.drain_secs);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(
            (limits.max_concurrent_streams > 0).then_some(limits.max_concurrent_streams),
        )
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keepalive_interval(Limits::secs(limits.http2_keepalive_interval_secs))
        .http2_keepalive_timeout(Limits::secs(limits.http2_keepalive_timeout_secs));
    if let Some(timeout) = Limits::secs(limits.request_timeout_secs) {
        builder = builder.timeout(timeout);
    }
    if let Some(mut tls) = tls {
        // The 24-byte handshake deadline of the accept loop is passed by the
        // first bytes of a ClientHello; the whole TLS handshake gets a
        // deadline of its own.
        if let Some(timeout) = Limits::secs(limits.handshake_timeout_secs) {
            tls = tls.timeout(timeout);
        }
        builder = builder
            .tls_config(tls)
            .map_err(|e| anyhow::anyhow!("configuring TLS: {e}"))?;
    }
    let server = builder
        .add_service(health)
        .add_optional_service(reflection.then_some(reflection_v1))
        .add_optional_service(reflection.then_some(reflection_v1alpha))
        .add_service(edge::Edge::new(
            tonic::service::interceptor::InterceptedService::new(analyzer, auth),
            metrics.clone(),
            Limits::secs(limits.request_timeout_secs),
        ))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop_rx.await;
        });
    let mut server = std::pin::pin!(server);

    let failure = tokio::select! {
        result = &mut server => return result.map_err(Into::into),
        _ = shutdown => None,
        Some(e) = load_err_rx.recv() => Some(e.context("model loading failed")),
        Ok(e) = &mut acceptor.fatal => Some(anyhow::Error::new(e).context("accepting connections")),
    };
    if let Some(e) = &failure {
        error!("{e:#}");
    }
    // Say NOT_SERVING and refuse new connections before anything else, so
    // load balancers and clients move on at once.
    {
        let mut draining = draining.lock().await;
        *draining = true;
        set_health(&reporter, ServingStatus::NotServing).await;
    }
    acceptor.stop();
    engine.shut_down();
    let in_flight = engine.in_flight();
    info!(
        drain_secs = drain.as_secs(),
        in_flight, "shutting down: no new connections; draining in-flight analyses"
    );
    let deadline = tokio::time::Instant::now() + drain;
    tokio::select! {
        result = &mut server => return result.map_err(Into::into),
        _ = engine.idle() => info!("in-flight analyses finished"),
        _ = tokio::time::sleep_until(deadline) => warn!(
            in_flight = engine.in_flight(),
            "drain time over with analyses still running"
        ),
    }
    // Then GOAWAY to every connection; the answers still on their way get
    // the rest of the drain time.
    let _ = stop_tx.send(());
    // At least a moment for the GOAWAY frames to go out, even after an
    // overrun.
    let deadline = deadline.max(tokio::time::Instant::now() + Duration::from_secs(1));
    if tokio::time::timeout_at(deadline, &mut server)
        .await
        .is_err()
    {
        warn!("drain time over; closing remaining connections");
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Flow-control window of one call's request stream. It bounds what a
/// caller can have in flight unread: with small requests, h2 closes a
/// connection whose unread frames pass half the connection window (see
/// [`bulk`]). A 64 KiB window of 50-byte requests costs about 270 KB of that
/// budget, so about seven such bulk calls can be held back at once on one
/// connection.
const STREAM_WINDOW: u32 = 64 * 1024;
/// Flow-control window of a connection (h2's budget is half of it).
const CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

impl tonic::transport::server::Connected for accept::Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tcp().connect_info()
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
