//! The engine: running analyses off the async runtime, with admission
//! control, worker slots, dynamic batching, windows for long articles,
//! deadlines and cancellation. It knows nothing of any transport: it takes
//! [`Job`]s, emits [`Event`]s and fails with [`AnalysisError`]s; the gRPC
//! server maps those to messages and status codes at its edge.
//!
//! Every analysis takes a queue slot first ([`AnalysisError::Overloaded`] at
//! once when none is left), then waits for a worker slot, then runs on a
//! blocking thread. A worker never waits for a reader: events go into the
//! call's own buffer, which one article bounds (its sentences, entities and
//! stances), so a reader that stalls holds memory for its own answer and
//! nothing else. A reader that goes away (drops its [`Analysis`]) stops the
//! work at its next event or window.

mod batch;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn, Instrument, Span};

use crate::config::Limits;
use crate::metrics::{Metrics, Outcome, QueueGuard};
use crate::pipeline::{windows, AnalysisError, AnalyzeOptions, Event, Pipeline, Recognition};
use batch::Batcher;

/// Admission and worker slots shared by every call.
pub struct Engine {
    queue: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    queue_capacity: usize,
    metrics: Arc<Metrics>,
    /// Present when dynamic batching is on.
    batcher: Option<Batcher>,
    /// Longest article recognized in one worker turn (0: no windows).
    window_chars: usize,
    /// Set at shutdown: new analyses are refused.
    shutting_down: AtomicBool,
}

/// An admitted job: it holds its queue slot until it finishes.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
}

impl Engine {
    /// An engine with the worker, queue, batching and window settings of
    /// `limits`, recording into `metrics`. Starts the batching task (if
    /// batching is on), so it must be called inside a tokio runtime.
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
        Engine {
            queue: Arc::new(Semaphore::new(queue_capacity)),
            workers,
            queue_capacity,
            metrics,
            batcher,
            window_chars: limits.window_chars,
            shutting_down: AtomicBool::new(false),
        }
    }

    /// Waits for a worker slot, until `deadline` at most, and only while
    /// someone still listens on `tx`.
    async fn worker(
        &self,
        deadline: Option<Instant>,
        tx: &EventSender,
    ) -> Result<OwnedSemaphorePermit, AnalysisError> {
        let acquire = async {
            let acquire = self.workers.clone().acquire_owned();
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline.into(), acquire)
                    .await
                    .map_err(|_| {
                        AnalysisError::DeadlineExceeded(
                            "deadline expired while waiting in the queue",
                        )
                    })?
                    .map_err(|_| AnalysisError::ShuttingDown),
                None => acquire.await.map_err(|_| AnalysisError::ShuttingDown),
            }
        };
        tokio::select! {
            permit = acquire => permit,
            _ = tx.closed() => Err(AnalysisError::Cancelled),
        }
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
    ) -> Result<Recognition, AnalysisError> {
        let mut queued = Some(queued);
        let shared: Arc<str> = Arc::from(text);
        let started = Instant::now();
        let mut parts = Vec::with_capacity(windows.len());
        for range in windows {
            if tx.is_closed() {
                return Err(AnalysisError::Cancelled);
            }
            let worker = match queued.take() {
                Some(queued) => {
                    let worker = self
                        .worker(deadline, tx)
                        .instrument(tracing::info_span!("queue", batched = false))
                        .await?;
                    let waited = queued.dequeued();
                    debug!(queue_ms = waited.as_secs_f64() * 1e3, "worker acquired");
                    worker
                }
                None => self.worker(deadline, tx).await?,
            };
            let (pipeline, shared, r) = (pipeline.clone(), shared.clone(), range.clone());
            let metrics = self.metrics.clone();
            let current = Span::current();
            let recognized = tokio::task::spawn_blocking(move || {
                let _span = current.enter();
                let _worker = worker;
                // A window's turn is a busy worker like any other.
                let _busy = metrics.worker_busy();
                pipeline
                    .recognize_batch(&[&shared[r]])
                    .pop()
                    .map(|recognition| recognition.result)
            })
            .await
            .map_err(|join| {
                warn!("recognizer worker failed: {join}");
                AnalysisError::Model("the analysis failed inside the model worker".into())
            })?
            .ok_or_else(|| AnalysisError::Model("the recognizer returned no result".into()))??;
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

    /// Takes a queue slot now, or fails at once: [`AnalysisError::Overloaded`]
    /// when every slot is taken, [`AnalysisError::ShuttingDown`] after
    /// [`Engine::shut_down`].
    pub fn admit(&self) -> Result<Admitted, AnalysisError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(AnalysisError::ShuttingDown);
        }
        match self.queue.clone().try_acquire_owned() {
            Ok(slot) => Ok(Admitted { _slot: slot }),
            Err(_) => Err(AnalysisError::Overloaded(format!(
                "server is at capacity: {} analyses running or queued; retry later",
                self.queue_capacity
            ))),
        }
    }

    /// Refuses new analyses from now on; those admitted run to their end.
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Analyses admitted and not yet finished (running or queued).
    pub fn in_flight(&self) -> usize {
        self.queue_capacity - self.queue.available_permits()
    }

    /// Completes when no analysis is admitted any more. Call it only after
    /// [`Engine::shut_down`]: while it waits it holds the free queue slots,
    /// so admission would fail.
    pub async fn idle(&self) {
        let capacity = u32::try_from(self.queue_capacity).unwrap_or(u32::MAX);
        // Taking every slot waits for the last admitted analysis; the slots
        // go back at once.
        let _ = self.queue.acquire_many(capacity).await;
    }

    /// Starts `job` (admitted by [`Engine::admit`]) on `pipeline`. Its events
    /// arrive through the returned [`Analysis`] in order, ending with an
    /// `Err` if it fails; dropping the `Analysis` cancels the work.
    pub fn start(self: &Arc<Self>, pipeline: Pipeline, job: Job, admitted: Admitted) -> Analysis {
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = run(engine, pipeline, job, admitted, tx.clone()).await {
                let _ = tx.send(Err(e));
            }
        });
        Analysis { rx }
    }
}

/// The events of one running analysis. Dropping it cancels the analysis.
pub struct Analysis {
    rx: mpsc::UnboundedReceiver<Result<Event, AnalysisError>>,
}

impl Analysis {
    /// The next event; `None` after the last (a `Completed` event or an error).
    pub async fn next(&mut self) -> Option<Result<Event, AnalysisError>> {
        self.rx.recv().await
    }
}

/// The `analysis` span an analysis runs in; callers may set its parent (the
/// caller's trace) before handing it over in [`Job::span`].
pub fn analysis_span(request_id: &str, text_bytes: usize) -> Span {
    tracing::info_span!(
        "analysis",
        request_id = %request_id,
        text_bytes,
        trace_id = tracing::field::Empty
    )
}

/// One validated analysis request.
pub struct Job {
    pub text: String,
    pub options: AnalyzeOptions,
    pub deadline: Option<Instant>,
    /// The span the analysis runs in (see [`analysis_span`]).
    pub span: Span,
}

/// Where a job's events go.
type EventSender = mpsc::UnboundedSender<Result<Event, AnalysisError>>;

/// Runs `job` to the end, sending its events to `tx`. Returns the error it
/// failed with, if any.
async fn run(
    scheduler: Arc<Engine>,
    pipeline: Pipeline,
    job: Job,
    admitted: Admitted,
    tx: EventSender,
) -> Result<(), AnalysisError> {
    let span = job.span.clone();
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
            if tx.send(Ok(Event::Started(pipeline.models()))).is_err() {
                return Err(AnalysisError::Cancelled);
            }
            started_sent = true;
            let queued = scheduler.metrics.enter_queue();
            let span = tracing::info_span!("ner_windows", windows = windows.len());
            let recognition = scheduler
                .recognize_in_windows(&pipeline, &job.text, windows, job.deadline, &tx, queued)
                .instrument(span)
                .await?;
            (
                Some(recognition),
                scheduler.worker(job.deadline, &tx).await?,
            )
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
                                    AnalysisError::DeadlineExceeded(
                                        "deadline expired while waiting for the recognizer",
                                    )
                                })??,
                            None => recognized.await?,
                        };
                        (Some(recognition), None)
                    }
                    None => (None, Some(queued)),
                };
                let worker = scheduler.worker(job.deadline, &tx).await?;
                if let Some(queued) = queued {
                    let waited = queued.dequeued();
                    debug!(queue_ms = waited.as_secs_f64() * 1e3, "worker acquired");
                }
                Ok::<_, AnalysisError>((recognition, worker))
            }
            .instrument(queue_span)
            .await?
        };

        let deadline = job.deadline;
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
                    match tx.send(Ok(event)) {
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
                Err(AnalysisError::Cancelled) if expired => Err(AnalysisError::DeadlineExceeded(
                    "deadline expired during the analysis",
                )),
                Err(e) => Err(e),
            }
        })
        .await;
        match result {
            Ok(r) => r,
            Err(join) => {
                warn!("analysis worker failed: {join}");
                Err(AnalysisError::Model(
                    "the analysis failed inside the model worker".into(),
                ))
            }
        }
    }
    .instrument(span)
    .await
}
