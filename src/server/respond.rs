//! Handing a call's response messages to the transport without letting a
//! slow reader hold anything but its own answer.
//!
//! The engine never waits for a reader (it finishes into the call's own
//! buffer). Between that buffer and HTTP/2 sits a small queue
//! (`--event-buffer`); a [`Responder`] feeds it. When the queue stays full
//! for `--stall-timeout-secs` (the peer keeps its receive window shut), the
//! call is cut off: the analysis is dropped with its buffer, and the
//! response stream ends with DEADLINE_EXCEEDED as soon as the peer reads
//! again.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::Status;

use crate::proto as pb;

type Item = Result<pb::AnalyzeEvent, Status>;

/// The status a cut-off call ends with, set once, and the reader to wake
/// when it is set (the reader may be waiting on an empty queue).
#[derive(Default)]
struct Abort(Mutex<AbortState>);

#[derive(Default)]
struct AbortState {
    status: Option<Status>,
    /// Set once the status has been handed to the reader.
    taken: bool,
    reader: Option<Waker>,
}

impl Abort {
    fn lock(&self) -> std::sync::MutexGuard<'_, AbortState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, status: Status) {
        let mut state = self.lock();
        if state.status.is_none() && !state.taken {
            state.status = Some(status);
            if let Some(reader) = state.reader.take() {
                reader.wake();
            }
        }
    }

    /// The status, once; or registers `waker` to hear of it.
    fn take_or_register(&self, waker: &Waker) -> Option<Status> {
        let mut state = self.lock();
        match state.status.take() {
            Some(status) => {
                state.taken = true;
                Some(status)
            }
            None => {
                state.reader = Some(waker.clone());
                None
            }
        }
    }

    fn is_set(&self) -> bool {
        let state = self.lock();
        state.status.is_some() || state.taken
    }
}

/// The sending half of one call's responses; clones share the call.
#[derive(Clone)]
pub struct Responder {
    tx: mpsc::Sender<Item>,
    stall: Option<Duration>,
    abort: Arc<Abort>,
}

/// Why a [`Responder::send`] did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// The caller dropped the call.
    Caller,
    /// The caller read nothing for the stall timeout; the call is cut off.
    Stalled,
}

impl Responder {
    /// A call's response queue of `capacity` messages, cut off after `stall`
    /// without progress (`None`: never).
    pub fn new(capacity: usize, stall: Option<Duration>) -> (Responder, CallStream) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let abort = Arc::new(Abort::default());
        (
            Responder {
                tx,
                stall,
                abort: abort.clone(),
            },
            CallStream {
                rx,
                abort,
                done: false,
            },
        )
    }

    /// Whether the call is over for this side: the caller left or was cut
    /// off. Work for it should stop.
    pub fn is_gone(&self) -> bool {
        self.tx.is_closed() || self.abort.is_set()
    }

    /// Completes when the caller has left (dropped its response stream).
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// Queues one message, waiting for room up to the stall timeout.
    pub async fn send(&self, item: Item) -> Result<(), Gone> {
        if self.abort.is_set() {
            return Err(Gone::Stalled);
        }
        let sent = match self.stall {
            None => self.tx.send(item).await,
            Some(stall) => match tokio::time::timeout(stall, self.tx.send(item)).await {
                Ok(sent) => sent,
                Err(_) => {
                    tracing::warn!(
                        stall_secs = stall.as_secs_f64(),
                        "a caller read nothing of its answer; cutting the call off"
                    );
                    self.abort.set(Status::deadline_exceeded(format!(
                        "the caller read nothing of its answer for {} s \
                         (the server's stall_timeout_secs); the call was cut off",
                        stall.as_secs_f64()
                    )));
                    return Err(Gone::Stalled);
                }
            },
        };
        sent.map_err(|_| Gone::Caller)
    }
}

/// The response stream of one call: its queued messages, or the status it
/// was cut off with.
pub struct CallStream {
    rx: mpsc::Receiver<Item>,
    abort: Arc<Abort>,
    done: bool,
}

impl Stream for CallStream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(status) = self.abort.take_or_register(cx.waker()) {
            self.done = true;
            return Poll::Ready(Some(Err(status)));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(None) => {
                // A cut-off that raced with the last sender going away.
                self.done = true;
                Poll::Ready(self.abort.take_or_register(cx.waker()).map(Err))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn event(id: &str) -> Item {
        Ok(pb::AnalyzeEvent {
            request_id: id.into(),
            event: None,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stalls_is_cut_off_with_a_status() {
        let (responder, mut stream) = Responder::new(1, Some(Duration::from_secs(5)));
        responder.send(event("a")).await.unwrap();
        // The queue is full and nobody reads: the send gives up.
        assert_eq!(responder.send(event("b")).await, Err(Gone::Stalled));
        assert_eq!(responder.send(event("c")).await, Err(Gone::Stalled));
        drop(responder);
        let status = stream.next().await.unwrap().unwrap_err();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().contains("stall_timeout_secs"));
        assert!(stream.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_keeps_reading_gets_everything() {
        let (responder, stream) = Responder::new(1, Some(Duration::from_secs(5)));
        let reader = tokio::spawn(async move {
            let mut stream = stream;
            let mut n = 0;
            while let Some(item) = stream.next().await {
                item.unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            n
        });
        for i in 0..20 {
            responder.send(event(&i.to_string())).await.unwrap();
        }
        drop(responder);
        assert_eq!(reader.await.unwrap(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_waiting_on_an_empty_queue_hears_of_a_cut_off() {
        let (responder, mut stream) = Responder::new(1, Some(Duration::from_secs(5)));
        let keep = responder.clone();
        let reader = tokio::spawn(async move { stream.next().await });
        tokio::task::yield_now().await;
        // Cut off by another sender of the same call while the reader waits.
        keep.abort.set(Status::deadline_exceeded("cut"));
        let got = tokio::time::timeout(Duration::from_secs(1), reader)
            .await
            .expect("the reader is woken")
            .unwrap();
        assert_eq!(
            got.unwrap().unwrap_err().code(),
            tonic::Code::DeadlineExceeded
        );
        assert!(responder.is_gone());
    }

    #[tokio::test]
    async fn a_caller_that_left_is_reported() {
        let (responder, stream) = Responder::new(1, None);
        drop(stream);
        assert_eq!(responder.send(event("a")).await, Err(Gone::Caller));
    }
}
