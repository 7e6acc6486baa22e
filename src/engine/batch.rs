//! Dynamic batching: the documents of different calls go through the
//! entity recognizer together, as one batch (one matrix product per layer
//! over all their tokens), when `--batch-max-tokens` is set.
//!
//! A batch starts with the first waiting document and waits for a worker
//! slot; then it takes every document that arrived meanwhile, and more for
//! up to `--batch-max-wait-ms` (0: none), until its token budget is full
//! (tokens estimated as UTF-8 bytes / 4; a document over the budget runs
//! alone). So an idle server adds no delay, and under load batches grow by
//! themselves. It runs on a blocking thread; up to `workers` batches run at
//! once. The rest of each analysis (grouping, stance, events) runs per call
//! afterwards, so a slow reader never holds up the other calls of its batch.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::metrics::{Metrics, QueueGuard};
use crate::pipeline::{AnalysisError, Pipeline, Recognition};

/// Hands documents to the batching task.
pub struct Batcher {
    tx: mpsc::UnboundedSender<Item>,
}

struct Item {
    pipeline: Pipeline,
    text: Arc<str>,
    queued: Option<QueueGuard>,
    reply: oneshot::Sender<Recognition>,
}

/// Estimated tokens of a text.
fn estimate(text: &str) -> usize {
    text.len() / 4 + 1
}

impl Batcher {
    /// Starts the batching task on the current runtime. The channel is
    /// unbounded because admission bounds it: every document holds a queue
    /// slot while it waits here.
    pub fn start(
        max_tokens: usize,
        max_wait: Duration,
        workers: Arc<Semaphore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(batch_loop(rx, max_tokens, max_wait, workers, metrics));
        Batcher { tx }
    }

    /// Recognizes `text` in the next batch that has room. `queued` leaves
    /// the queue when the batch starts.
    pub async fn recognize(
        &self,
        pipeline: Pipeline,
        text: Arc<str>,
        queued: QueueGuard,
    ) -> Result<Recognition, AnalysisError> {
        let (reply, result) = oneshot::channel();
        self.tx
            .send(Item {
                pipeline,
                text,
                queued: Some(queued),
                reply,
            })
            .map_err(|_| AnalysisError::ShuttingDown)?;
        result
            .await
            .map_err(|_| AnalysisError::Model("the analysis failed inside the model worker".into()))
    }
}

/// Adds `item` to the batch if it fits the budget; otherwise returns it.
fn add(items: &mut Vec<Item>, tokens: &mut usize, max_tokens: usize, item: Item) -> Option<Item> {
    if item.reply.is_closed() {
        // The caller went away while it waited.
        return None;
    }
    let n = estimate(&item.text);
    if !items.is_empty() && *tokens + n > max_tokens {
        return Some(item);
    }
    *tokens += n;
    items.push(item);
    None
}

async fn batch_loop(
    mut rx: mpsc::UnboundedReceiver<Item>,
    max_tokens: usize,
    max_wait: Duration,
    workers: Arc<Semaphore>,
    metrics: Arc<Metrics>,
) {
    let mut pending: Option<Item> = None;
    loop {
        let first = match pending.take() {
            Some(item) => item,
            None => match rx.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        let mut items = Vec::new();
        let mut tokens = 0;
        if add(&mut items, &mut tokens, max_tokens, first).is_some() || items.is_empty() {
            continue;
        }
        // Documents that arrive while the batch waits for a worker join it:
        // under load, batches grow by themselves.
        let Ok(worker) = workers.clone().acquire_owned().await else {
            return;
        };
        while pending.is_none() && tokens < max_tokens {
            match rx.try_recv() {
                Ok(item) => pending = add(&mut items, &mut tokens, max_tokens, item),
                Err(_) => break,
            }
        }
        // Then wait up to `max_wait` for more, holding the worker.
        let until = tokio::time::Instant::now() + max_wait;
        while pending.is_none() && tokens < max_tokens && !max_wait.is_zero() {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(item)) => pending = add(&mut items, &mut tokens, max_tokens, item),
                Ok(None) | Err(_) => break,
            }
        }
        items.retain(|item| !item.reply.is_closed());
        if items.is_empty() {
            continue;
        }
        metrics.observe_batch(items.len());
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || {
            let _worker = worker;
            let _busy = metrics.worker_busy();
            for item in &mut items {
                if let Some(queued) = item.queued.take() {
                    queued.dequeued();
                }
            }
            let results = {
                let texts: Vec<&str> = items.iter().map(|item| &*item.text).collect();
                items[0].pipeline.recognize_batch(&texts)
            };
            for (item, result) in items.into_iter().zip(results) {
                let _ = item.reply.send(result);
            }
        });
    }
}
