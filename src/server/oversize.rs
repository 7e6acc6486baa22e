//! A message over `max_message_bytes` is RESOURCE_EXHAUSTED.
//!
//! The gRPC status code table says a server that gets a message larger than
//! its receive limit answers RESOURCE_EXHAUSTED; tonic 0.12 answers
//! OUT_OF_RANGE ("Error, decoded message length too large: ..."). This
//! wrapper rewrites that one status on the analyzer service's responses (the
//! decode happens before any of our code runs, so unary and server-streaming
//! calls get a trailers-only response carrying it), and [`fix`] does the same
//! for statuses read from a request stream.

use std::task::{Context, Poll};

use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Code, Status};

/// How tonic's decoder starts the message of an over-limit status.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// RESOURCE_EXHAUSTED for tonic's over-limit OUT_OF_RANGE; any other status
/// as it is.
pub fn fix(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().starts_with(TOO_LARGE) {
        Status::resource_exhausted(format!(
            "{} (the server's max_message_bytes)",
            status.message()
        ))
    } else {
        status
    }
}

/// Wraps a gRPC service and applies [`fix`] to trailers-only responses.
#[derive(Debug, Clone)]
pub struct OversizeStatus<S> {
    inner: S,
}

impl<S> OversizeStatus<S> {
    pub fn new(inner: S) -> Self {
        OversizeStatus { inner }
    }
}

impl<S: NamedService> NamedService for OversizeStatus<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for OversizeStatus<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            let headers = response.headers_mut();
            if headers.get("grpc-status").map(|v| v.as_bytes()) == Some(b"11") {
                if let Some(status) = Status::from_header_map(headers) {
                    let fixed = fix(status);
                    if fixed.code() == Code::ResourceExhausted {
                        // Both headers are rewritten; a failure leaves the
                        // original status in place.
                        let _ = fixed.add_header(headers);
                    }
                }
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_over_limit_status_changes() {
        let over = Status::out_of_range(
            "Error, decoded message length too large: found 10 bytes, the limit is: 5 bytes",
        );
        let fixed = fix(over);
        assert_eq!(fixed.code(), Code::ResourceExhausted);
        assert!(fixed.message().contains("found 10 bytes"));
        assert_eq!(
            fix(Status::out_of_range("something else")).code(),
            Code::OutOfRange
        );
        assert_eq!(fix(Status::internal("x")).code(), Code::Internal);
    }
}
