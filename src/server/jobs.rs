//! Running analyses off the async runtime, with admission control.
//!
//! Every analysis takes a queue slot first (fail fast with
//! RESOURCE_EXHAUSTED when none is left), then waits for a worker slot, then
//! runs on a blocking thread. Events go to the caller through a bounded
//! channel: a slow reader pauses its own analysis instead of making the
//! server buffer without bound, and a reader that goes away stops it.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tracing::{debug, warn, Instrument, Span};

use super::batch::Batcher;
use super::convert;
use super::trace_context::RemoteParent;
use crate::config::Limits;
use crate::metrics::{Metrics, Outcome, QueueGuard};
use crate::pipeline::{windows, AnalysisError, AnalyzeOptions, Event, Pipeline, Recognition};
use crate::proto as pb;

/// Admission and worker slots shared by every call.
pub struct Scheduler {
    queue: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    queue_capacity: usize,
    metrics: Arc<Metrics>,
    /// Present when dynamic batching is on.
    batcher: Option<Batcher>,
    /// Longest article recognized in one worker turn (0: no windows).
    window_chars: usize,
}

/// An admitted job: it holds its queue slot until it finishes.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
}

impl Scheduler {
    pub fn new(limits: &Limits, metrics: Arc<Metrics>) -> Self {
        let workers = limits.worker_count();
        // Running jobs hold a queue slot too, so the queue admits workers + queue.
        let queue_capacity = workers + limits.queue;
        let workers = Arc::new(Semaphore::new(workers));
        let batcher = (limits.batch_max_tokens > 0).then(|| {
            Batcher::start(
                limits.batch_max_tokens,
                Duration::from_millis(limits.batch_max_wait_ms),
                workers.clone(),
                metrics.clone(),
            )
        });
        Scheduler {
            queue: Arc::new(Semaphore::new(queue_capacity)),
            workers,
            queue_capacity,
            metrics,
            batcher,
            window_chars: limits.window_chars,
        }
    }

    /// Waits for a worker slot, until `deadline` at most.
    async fn worker(&self, deadline: Option<Instant>) -> Result<OwnedSemaphorePermit, Status> {
        let acquire = self.workers.clone().acquire_owned();
        let permit = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), acquire)
                .await
                .map_err(|_| {
                    Status::deadline_exceeded("deadline expired while waiting in the queue")
                })?,
            None => acquire.await,
        };
        permit.map_err(|_| Status::unavailable("server is shutting down"))
    }

    /// Recognizes a long article window by window, each window in its own
    /// worker turn, so calls queued meanwhile get turns in between. Stops
    /// early when the caller has gone away. Waiting for the first turn is
    /// the call's queue wait (`queued`, and a `queue` span); the rest is
    /// recognition.
    async fn recognize_in_windows(
        &self,
        pipeline: &Pipeline,
        text: &str,
        windows: Vec<std::ops::Range<usize>>,
        deadline: Option<Instant>,
        tx: &EventSender,
        queued: QueueGuard,
    ) -> Result<Recognition, Status> {
        let mut queued = Some(queued);
        let shared: Arc<str> = Arc::from(text);
        let started = Instant::now();
        let mut parts = Vec::with_capacity(windows.len());
        for range in windows {
            if tx.is_closed() {
                return Err(Status::cancelled("the caller went away"));
            }
            let worker = match queued.take() {
                Some(queued) => {
                    let worker = self
                        .worker(deadline)
                        .instrument(tracing::info_span!("queue", batched = false))
                        .await?;
                    let waited = queued.dequeued();
                    debug!(queue_ms = waited.as_secs_f64() * 1e3, "worker acquired");
                    worker
                }
                None => self.worker(deadline).await?,
            };
            let (pipeline, shared, r) = (pipeline.clone(), shared.clone(), range.clone());
            let current = Span::current();
            let recognized = tokio::task::spawn_blocking(move || {
                let _span = current.enter();
                let _worker = worker;
                pipeline
                    .recognize_batch(&[&shared[r]])
                    .pop()
                    .map(|recognition| recognition.result)
            })
            .await
            .map_err(|join| {
                warn!("recognizer worker failed: {join}");
                Status::internal("the analysis failed inside the model worker")
            })?
            .ok_or_else(|| Status::internal("the recognizer returned no result"))?
            .map_err(|e| convert::status(&e))?;
            parts.push((range, recognized));
        }
        Ok(Recognition {
            result: Ok(windows::join(text, parts)),
            ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Where this server's metrics are recorded.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Takes a queue slot now or fails with RESOURCE_EXHAUSTED.
    pub fn admit(&self) -> Result<Admitted, Status> {
        match self.queue.clone().try_acquire_owned() {
            Ok(slot) => Ok(Admitted { _slot: slot }),
            Err(_) => Err(Status::resource_exhausted(format!(
                "server is at capacity: {} analyses running or queued; retry later",
                self.queue_capacity
            ))),
        }
    }
}

/// One validated analysis request.
pub struct Job {
    pub request_id: String,
    pub text: String,
    pub options: AnalyzeOptions,
    pub deadline: Option<Instant>,
    /// The caller's trace context (`traceparent`), parent of the job's span.
    pub parent: RemoteParent,
}

/// Where a job's events go.
pub type EventSender = mpsc::Sender<Result<pb::AnalyzeEvent, Status>>;

/// Runs `job` to the end, sending its events to `tx`. Returns the status it
/// failed with, if any; the caller decides how to report it.
pub async fn run(
    scheduler: Arc<Scheduler>,
    pipeline: Pipeline,
    job: Job,
    admitted: Admitted,
    tx: EventSender,
) -> Result<(), Status> {
    let span = tracing::info_span!(
        "analysis",
        request_id = %job.request_id,
        text_bytes = job.text.len(),
        trace_id = tracing::field::Empty
    );
    job.parent.apply(&span);
    async move {
        // A long article (without batching) is recognized window by window
        // first; the rest of the analysis then takes a worker.
        let windows = match scheduler.batcher {
            Some(_) => Vec::new(),
            None => windows::split(&job.text, scheduler.window_chars),
        };
        // Recognizing a long article takes a while: say it started now (the
        // request is already validated), not after its last window.
        let mut started_sent = false;
        let (recognition, worker) = if windows.len() > 1 {
            let started = Event::Started(pipeline.models());
            if tx
                .send(Ok(convert::event(&job.request_id, &started)))
                .await
                .is_err()
            {
                return Err(Status::cancelled("the caller went away"));
            }
            started_sent = true;
            let queued = scheduler.metrics.enter_queue();
            let span = tracing::info_span!("ner_windows", windows = windows.len());
            let recognition = scheduler
                .recognize_in_windows(&pipeline, &job.text, windows, job.deadline, &tx, queued)
                .instrument(span)
                .await?;
            (Some(recognition), scheduler.worker(job.deadline).await?)
        } else {
            // Waiting for a worker (and, with batching, for the batched
            // recognizer) is the `queue` span; the stages run inside the
            // pipeline's own spans.
            let queue_span = tracing::info_span!("queue", batched = scheduler.batcher.is_some());
            async {
                let queued = scheduler.metrics.enter_queue();
                // With batching, the recognizer runs first, in a batch with
                // other calls' documents; the rest of the analysis then takes
                // a worker.
                let (recognition, queued) = match &scheduler.batcher {
                    Some(batcher) => {
                        let text: Arc<str> = Arc::from(job.text.as_str());
                        let recognized = batcher.recognize(pipeline.clone(), text, queued);
                        let recognition = match job.deadline {
                            Some(deadline) => tokio::time::timeout_at(deadline.into(), recognized)
                                .await
                                .map_err(|_| {
                                    Status::deadline_exceeded(
                                        "deadline expired while waiting for the recognizer",
                                    )
                                })??,
                            None => recognized.await?,
                        };
                        (Some(recognition), None)
                    }
                    None => (None, Some(queued)),
                };
                let worker = scheduler.worker(job.deadline).await?;
                if let Some(queued) = queued {
                    let waited = queued.dequeued();
                    debug!(queue_ms = waited.as_secs_f64() * 1e3, "worker acquired");
                }
                Ok::<_, Status>((recognition, worker))
            }
            .instrument(queue_span)
            .await?
        };

        let deadline = job.deadline;
        let request_id = job.request_id.clone();
        let metrics = scheduler.metrics.clone();
        // Blocking threads do not inherit the current span; carry it over so
        // the pipeline's stage spans nest under this analysis.
        let current = Span::current();
        let result = tokio::task::spawn_blocking(move || {
            let _span = current.enter();
            let _worker = worker;
            let _admitted = admitted;
            let _busy = metrics.worker_busy();
            let mut expired = false;
            let outcome =
                pipeline.analyze_prepared(&job.text, &job.options, recognition, &mut |event| {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        expired = true;
                        return ControlFlow::Break(());
                    }
                    if started_sent && matches!(event, Event::Started(_)) {
                        return ControlFlow::Continue(());
                    }
                    match tx.blocking_send(Ok(convert::event(&job.request_id, &event))) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(_) => ControlFlow::Break(()),
                    }
                });
            let (recorded, tokens) = match &outcome {
                Ok(summary) => (Outcome::Ok, summary.token_count),
                Err(AnalysisError::Cancelled) => (Outcome::Cancelled, 0),
                Err(_) => (Outcome::Error, 0),
            };
            metrics.analysis_finished(recorded, tokens);
            match outcome {
                Ok(_) => Ok(()),
                Err(AnalysisError::Cancelled) if expired => Err(Status::deadline_exceeded(
                    "deadline expired during the analysis",
                )),
                Err(e) => Err(convert::status(&e)),
            }
        })
        .await;
        match result {
            Ok(r) => r,
            Err(join) => {
                warn!(%request_id, "analysis worker failed: {join}");
                Err(Status::internal(
                    "the analysis failed inside the model worker",
                ))
            }
        }
    }
    .instrument(span)
    .await
}
