//! The gRPC server: the only module that knows about gRPC.
//!
//! It serves `article_analyzer.v1.ArticleAnalyzer`, `grpc.health.v1.Health`
//! and server reflection (v1 and v1alpha, since grpcurl speaks v1alpha). The
//! port opens at once; health says NOT_SERVING until the models are loaded,
//! so Kubernetes start-up probes can wait for them.

// tonic's own API passes `Status` by value in `Result`s; boxing it only here
// would add conversions at every call site for no gain.
#![allow(clippy::result_large_err)]

mod batch;
pub mod client;
mod convert;
mod jobs;
mod observe;
mod oversize;
pub mod security;
mod trace_context;

pub use observe::code_name;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tracing::{error, info, warn};

use crate::config::{Limits, ServerConfig};
use crate::metrics::Metrics;
use crate::pipeline::{AnalyzeOptions, Pipeline};
use crate::proto as pb;
use crate::proto::article_analyzer_server::{ArticleAnalyzer, ArticleAnalyzerServer};
use jobs::{Job, Scheduler};
use trace_context::RemoteParent;

/// The fully qualified name of our service, as health checks name it.
pub const SERVICE_NAME: &str = "article_analyzer.v1.ArticleAnalyzer";

/// Shared state of all calls.
struct Service {
    pipeline: Arc<OnceLock<Pipeline>>,
    scheduler: Arc<Scheduler>,
    limits: Limits,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AnalyzeEvent, Status>> + Send>>;

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
    ) -> Result<Job, (String, Status)> {
        let request_id = if req.request_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            req.request_id
        };
        let options = validate_request(pipeline, &self.limits, &req.text, req.options.as_ref())
            .map_err(|s| (request_id.clone(), s))?;
        Ok(Job {
            request_id,
            text: req.text,
            options,
            deadline,
            parent: parent.clone(),
        })
    }

    /// Validates, admits and starts one analysis; its events arrive on the
    /// returned channel, ending with an `Err` if it fails.
    fn start(
        &self,
        req: pb::AnalyzeRequest,
        deadline: Option<Instant>,
        parent: RemoteParent,
    ) -> Result<mpsc::Receiver<Result<pb::AnalyzeEvent, Status>>, Status> {
        let pipeline = self.pipeline()?;
        let job = self
            .job(&pipeline, req, deadline, &parent)
            .map_err(|(_, s)| s)?;
        let admitted = self.scheduler.admit()?;
        let (tx, rx) = mpsc::channel(self.limits.event_buffer.max(1));
        let scheduler = self.scheduler.clone();
        tokio::spawn(async move {
            if let Err(status) = jobs::run(scheduler, pipeline, job, admitted, tx.clone()).await {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(rx)
    }
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

/// Reads the caller's deadline from the `grpc-timeout` header.
fn deadline_of<T>(req: &Request<T>) -> Option<Instant> {
    let value = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Instant::now().checked_add(timeout)
}

#[tonic::async_trait]
impl ArticleAnalyzer for Service {
    type AnalyzeStream = EventStream;
    type AnalyzeStreamStream = EventStream;

    async fn analyze(
        &self,
        request: Request<pb::AnalyzeRequest>,
    ) -> Result<Response<Self::AnalyzeStream>, Status> {
        let call = self.scheduler.metrics().start_call("Analyze");
        let deadline = deadline_of(&request);
        let parent = RemoteParent::from_metadata(request.metadata());
        match self.start(request.into_inner(), deadline, parent) {
            Ok(rx) => Ok(Response::new(Box::pin(observe::Observed::new(
                ReceiverStream::new(rx),
                call,
            )))),
            Err(status) => {
                call.finish(observe::code_name(status.code()));
                Err(status)
            }
        }
    }

    async fn analyze_document(
        &self,
        request: Request<pb::AnalyzeRequest>,
    ) -> Result<Response<pb::AnalyzeResponse>, Status> {
        use pb::analyze_event::Event as E;
        let call = self.scheduler.metrics().start_call("AnalyzeDocument");
        let deadline = deadline_of(&request);
        let parent = RemoteParent::from_metadata(request.metadata());
        observe::unary(call, async move {
            let mut rx = self.start(request.into_inner(), deadline, parent)?;
            let mut out = pb::AnalyzeResponse::default();
            while let Some(event) = rx.recv().await {
                let event = event?;
                out.request_id = event.request_id;
                match event.event {
                    Some(E::Started(s)) => out.models = s.models,
                    Some(E::Sentence(s)) => out.sentences.push(s),
                    Some(E::Entities(e)) => out.entities = e.entities,
                    Some(E::Stance(s)) => out.stances.push(s),
                    Some(E::Completed(c)) => out.completed = Some(c),
                    Some(E::Failed(f)) => return Err(Status::new(f.code.into(), f.message)),
                    None => {}
                }
            }
            if out.completed.is_none() {
                return Err(Status::internal("the analysis ended without a result"));
            }
            Ok(Response::new(out))
        })
        .await
    }

    async fn analyze_stream(
        &self,
        request: Request<Streaming<pb::AnalyzeRequest>>,
    ) -> Result<Response<Self::AnalyzeStreamStream>, Status> {
        let call = self.scheduler.metrics().start_call("AnalyzeStream");
        let deadline = deadline_of(&request);
        let parent = RemoteParent::from_metadata(request.metadata());
        let mut inbound = request.into_inner();
        let pipeline = match self.pipeline() {
            Ok(p) => p,
            Err(status) => {
                call.finish(observe::code_name(status.code()));
                return Err(status);
            }
        };
        let (out_tx, out_rx) = mpsc::channel(self.limits.event_buffer.max(1));
        let per_stream = Arc::new(tokio::sync::Semaphore::new(
            self.limits.stream_concurrency.max(1),
        ));
        let scheduler = self.scheduler.clone();
        let service = Service {
            pipeline: self.pipeline.clone(),
            scheduler: self.scheduler.clone(),
            limits: self.limits.clone(),
        };
        tokio::spawn(async move {
            loop {
                let req = match inbound.message().await {
                    Ok(Some(req)) => req,
                    Ok(None) => break,
                    Err(status) => {
                        warn!("AnalyzeStream inbound error: {status}");
                        // An over-limit message, say, ends the call with its
                        // status rather than silently.
                        let _ = out_tx.send(Err(oversize::fix(status))).await;
                        break;
                    }
                };
                // Bound the requests of this stream in flight; the wait also
                // applies backpressure to a caller that sends too fast.
                let Ok(permit) = per_stream.clone().acquire_owned().await else {
                    break;
                };
                let job = match service.job(&pipeline, req, deadline, &parent) {
                    Ok(job) => job,
                    Err((id, status)) => {
                        if out_tx
                            .send(Ok(convert::failed(&id, &status)))
                            .await
                            .is_err()
                        {
                            break;
                        }
                        continue;
                    }
                };
                let admitted = match scheduler.admit() {
                    Ok(a) => a,
                    Err(status) => {
                        let _ = out_tx
                            .send(Ok(convert::failed(&job.request_id, &status)))
                            .await;
                        continue;
                    }
                };
                let (tx, mut rx) = mpsc::channel(8);
                let out_forward = out_tx.clone();
                let out = out_tx.clone();
                let id = job.request_id.clone();
                let run = jobs::run(scheduler.clone(), pipeline.clone(), job, admitted, tx);
                tokio::spawn(async move {
                    let _permit = permit;
                    // Owning `rx` here means that when the caller goes away the
                    // receiver drops and the analysis stops at its next event.
                    let forward = async move {
                        while let Some(event) = rx.recv().await {
                            if out_forward.send(event).await.is_err() {
                                return false;
                            }
                        }
                        true
                    };
                    let (result, _) = tokio::join!(run, forward);
                    if let Err(status) = result {
                        let _ = out.send(Ok(convert::failed(&id, &status))).await;
                    }
                });
            }
        });
        Ok(Response::new(Box::pin(observe::Observed::new(
            ReceiverStream::new(out_rx),
            call,
        ))))
    }

    async fn get_models(
        &self,
        _request: Request<pb::GetModelsRequest>,
    ) -> Result<Response<pb::GetModelsResponse>, Status> {
        let call = self.scheduler.metrics().start_call("GetModels");
        observe::unary(call, async {
            let pipeline = self.pipeline()?;
            Ok(Response::new(pb::GetModelsResponse {
                models: pipeline.models().iter().map(convert::model).collect(),
            }))
        })
        .await
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    let mut reporter = reporter.clone();
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// Serves on `listener` until `shutdown` completes, then drains in-flight
/// calls (up to `config.drain_secs`).
///
/// `load` runs on a blocking thread after the port is open; health turns
/// SERVING when it returns. If it fails the server stops with its error.
/// Metrics are kept but not exported; see [`serve_with_metrics`].
pub async fn serve<L, F>(
    listener: TcpListener,
    config: ServerConfig,
    load: L,
    shutdown: F,
) -> anyhow::Result<()>
where
    L: FnOnce() -> anyhow::Result<Pipeline> + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    serve_with_metrics(listener, config, load, shutdown, Arc::new(Metrics::new())).await
}

/// [`serve`], recording RPC, queue and analysis metrics in `metrics` (which
/// the caller exports, for example with [`crate::metrics::serve_http`]).
pub async fn serve_with_metrics<L, F>(
    listener: TcpListener,
    config: ServerConfig,
    load: L,
    shutdown: F,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()>
where
    L: FnOnce() -> anyhow::Result<Pipeline> + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let cell = Arc::new(OnceLock::new());
    let service = Service {
        pipeline: cell.clone(),
        scheduler: Arc::new(Scheduler::new(&config.limits, metrics)),
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
                set_health(&load_reporter, ServingStatus::Serving).await;
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
    info!(addr = %local, "listening");
    let drain = Duration::from_secs(config.drain_secs);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown_reporter = reporter.clone();
    let limits = &config.limits;
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(
            (limits.max_concurrent_streams > 0).then_some(limits.max_concurrent_streams),
        )
        .http2_keepalive_interval(Limits::secs(limits.http2_keepalive_interval_secs))
        .http2_keepalive_timeout(Limits::secs(limits.http2_keepalive_timeout_secs));
    if let Some(timeout) = Limits::secs(limits.request_timeout_secs) {
        builder = builder.timeout(timeout);
    }
    let incoming = accepted(listener, Limits::secs(limits.tcp_keepalive_secs))?;
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| anyhow::anyhow!("configuring TLS: {e}"))?;
    }
    let server = builder
        .add_service(health)
        .add_optional_service(reflection.then_some(reflection_v1))
        .add_optional_service(reflection.then_some(reflection_v1alpha))
        .add_service(oversize::OversizeStatus::new(
            tonic::service::interceptor::InterceptedService::new(analyzer, auth),
        ))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop_rx.await;
        });
    let mut server = std::pin::pin!(server);

    let failure = tokio::select! {
        result = &mut server => return result.map_err(Into::into),
        _ = shutdown => None,
        Some(e) = load_err_rx.recv() => Some(e),
    };
    if let Some(e) = &failure {
        error!("cannot load models: {e:#}");
    }
    info!(
        drain_secs = drain.as_secs(),
        "shutting down: draining in-flight calls"
    );
    set_health(&shutdown_reporter, ServingStatus::NotServing).await;
    let _ = stop_tx.send(());
    if tokio::time::timeout(drain, &mut server).await.is_err() {
        warn!("drain time over; closing remaining calls");
    }
    match failure {
        Some(e) => Err(e.context("model loading failed")),
        None => Ok(()),
    }
}

/// Accepted connections with Nagle's algorithm off and TCP keepalive as
/// configured. tonic applies both only on listeners it binds itself; without
/// TCP_NODELAY a response written in several pieces (headers, data, trailers)
/// waits for the peer's delayed ACK, about 40 ms per call on Linux.
fn accepted(
    listener: TcpListener,
    tcp_keepalive: Option<Duration>,
) -> anyhow::Result<tonic::transport::server::TcpIncoming> {
    tonic::transport::server::TcpIncoming::from_listener(listener, true, tcp_keepalive)
        .map_err(|e| anyhow::anyhow!("configuring the listener: {e}"))
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
