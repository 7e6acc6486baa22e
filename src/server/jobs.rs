//! Running analyses off the async runtime, with admission control.
//!
//! Every analysis takes a queue slot first (fail fast with
//! RESOURCE_EXHAUSTED when none is left), then waits for a worker slot, then
//! runs on a blocking thread. Events go to the caller through a bounded
//! channel: a slow reader pauses its own analysis instead of making the
//! server buffer without bound, and a reader that goes away stops it.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tracing::{debug, warn, Instrument};

use super::convert;
use crate::config::Limits;
use crate::pipeline::{AnalysisError, AnalyzeOptions, Pipeline};
use crate::proto as pb;

/// Admission and worker slots shared by every call.
pub struct Scheduler {
    queue: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    queue_capacity: usize,
}

/// An admitted job: it holds its queue slot until it finishes.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
}

impl Scheduler {
    pub fn new(limits: &Limits) -> Self {
        let workers = limits.worker_count();
        // Running jobs hold a queue slot too, so the queue admits workers + queue.
        let queue_capacity = workers + limits.queue;
        Scheduler {
            queue: Arc::new(Semaphore::new(queue_capacity)),
            workers: Arc::new(Semaphore::new(workers)),
            queue_capacity,
        }
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
        text_bytes = job.text.len()
    );
    async move {
        let queued = Instant::now();
        let worker = match job.deadline {
            Some(deadline) => {
                match tokio::time::timeout_at(
                    deadline.into(),
                    scheduler.workers.clone().acquire_owned(),
                )
                .await
                {
                    Ok(permit) => permit,
                    Err(_) => {
                        return Err(Status::deadline_exceeded(
                            "deadline expired while waiting in the queue",
                        ))
                    }
                }
            }
            None => scheduler.workers.clone().acquire_owned().await,
        }
        .map_err(|_| Status::unavailable("server is shutting down"))?;
        debug!(
            queue_ms = queued.elapsed().as_secs_f64() * 1e3,
            "worker acquired"
        );

        let deadline = job.deadline;
        let request_id = job.request_id.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _worker = worker;
            let _admitted = admitted;
            let mut expired = false;
            let outcome = pipeline.analyze(&job.text, &job.options, &mut |event| {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    expired = true;
                    return ControlFlow::Break(());
                }
                match tx.blocking_send(Ok(convert::event(&job.request_id, &event))) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            });
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
