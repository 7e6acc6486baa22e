//! RPC metrics: each call counts by method and status code, and its latency
//! runs to its last message (the end of the stream for streaming RPCs).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_stream::Stream;
use tonic::{Code, Status};

use crate::metrics::CallGuard;

/// The canonical gRPC name of a status code, as metrics label it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Runs a unary call (or the set-up of a streaming one) and records its
/// status. Dropped before it completes (the caller went away), the call
/// counts as CANCELLED.
pub async fn unary<T>(
    call: CallGuard,
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let result = work.await;
    call.finish(code_name(match &result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }));
    result
}

/// A response stream whose call ends with it: OK at its end, the code of
/// its first error, or CANCELLED if the caller drops it first.
pub struct Observed<S> {
    inner: S,
    call: Option<CallGuard>,
}

impl<S> Observed<S> {
    pub fn new(inner: S, call: CallGuard) -> Self {
        Observed {
            inner,
            call: Some(call),
        }
    }
}

impl<S, T> Stream for Observed<S>
where
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = Pin::new(&mut self.inner).poll_next(cx);
        match &item {
            Poll::Ready(Some(Err(status))) => {
                if let Some(call) = self.call.take() {
                    call.finish(code_name(status.code()));
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = self.call.take() {
                    call.finish(code_name(Code::Ok));
                }
            }
            _ => {}
        }
        item
    }
}
