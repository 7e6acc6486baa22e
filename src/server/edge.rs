//! What the analyzer service checks at its edge, before tonic decodes a
//! request or our handlers run:
//!
//! - **Content type.** A request whose `content-type` is not `application/grpc`
//!   (or `application/grpc+...`) is answered HTTP 415, as the gRPC over
//!   HTTP/2 specification says, instead of being served as gRPC.
//! - **`grpc-timeout`.** A malformed value (not 1 to 8 digits and one of
//!   `HMSmun`) is INVALID_ARGUMENT; tonic alone would ignore it and run the
//!   call without a deadline.
//! - **Arrival.** The time the call arrived and its parsed `grpc-timeout`
//!   are put in the request's extensions ([`Arrived`]), so deadlines count
//!   from it and not from the end of decoding.
//! - **Undecodable messages** (bad protobuf, text that is not UTF-8) are
//!   INVALID_ARGUMENT, the caller's error; tonic reports them as INTERNAL.
//! - **Metrics for calls refused before a handler ran** (authentication,
//!   decoding, size, unknown methods): counted by method and code here, as
//!   the handlers count the rest.
//! - **Over-limit messages.** The gRPC status code table says a server that
//!   gets a message larger than its receive limit answers RESOURCE_EXHAUSTED;
//!   tonic answers OUT_OF_RANGE ("Error, decoded message length too large:
//!   ..."). That one status is rewritten on trailers-only responses (the
//!   decode happens before any of our code runs), and [`fix`] does the same
//!   for statuses read from a request stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Code, Status};

use super::observe::code_name;
use crate::metrics::Metrics;

/// When a call reached the analyzer service, and the caller's
/// `grpc-timeout` (already checked here).
#[derive(Debug, Clone, Copy)]
pub struct Arrived {
    pub at: Instant,
    pub caller_timeout: Option<Duration>,
}

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and a unit.
fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

fn is_grpc(content_type: Option<&http::HeaderValue>) -> bool {
    let Some(value) = content_type.map(|v| v.as_bytes()) else {
        return false;
    };
    let Some(rest) = value.strip_prefix(b"application/grpc") else {
        return false;
    };
    rest.is_empty() || rest[0] == b'+' || rest[0] == b';'
}

/// How tonic's decoder starts the message of an over-limit status.
const TOO_LARGE: &str = "Error, decoded message length too large";
/// How tonic starts the message of a protobuf decoding failure.
const UNDECODABLE: &str = "failed to decode Protobuf message";

/// RESOURCE_EXHAUSTED for tonic's over-limit OUT_OF_RANGE, INVALID_ARGUMENT
/// for its INTERNAL decoding failures; any other status as it is.
pub fn fix(status: Status) -> Status {
    match status.code() {
        Code::OutOfRange if status.message().starts_with(TOO_LARGE) => Status::resource_exhausted(
            format!("{} (the server's max_message_bytes)", status.message()),
        ),
        Code::Internal if status.message().starts_with(UNDECODABLE) => {
            Status::invalid_argument(status.message().to_string())
        }
        _ => status,
    }
}

/// Set by a handler when it counts its call in the metrics (see
/// [`Counted::mark`]); a call refused before that is counted by [`Edge`].
#[derive(Debug, Clone, Default)]
pub struct Counted(Arc<AtomicBool>);

impl Counted {
    /// Marks the call of `extensions` as counted by its handler.
    pub fn mark(extensions: &tonic::Extensions) {
        if let Some(counted) = extensions.get::<Counted>() {
            counted.0.store(true, Ordering::Relaxed);
        }
    }
}

/// The method of an analyzer call, as metrics label it.
fn rpc_of(path: &str) -> &'static str {
    match path.rsplit('/').next() {
        Some("Analyze") => "Analyze",
        Some("AnalyzeDocument") => "AnalyzeDocument",
        Some("AnalyzeStream") => "AnalyzeStream",
        Some("GetModels") => "GetModels",
        _ => "unknown",
    }
}

/// Wraps the analyzer service with the checks above.
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    metrics: Arc<Metrics>,
    /// The server's `request_timeout_secs`, which tonic applies too.
    request_timeout: Option<Duration>,
}

impl<S> Edge<S> {
    pub fn new(inner: S, metrics: Arc<Metrics>, request_timeout: Option<Duration>) -> Self {
        Edge {
            inner,
            metrics,
            request_timeout,
        }
    }
}

/// When the answer's headers are due: the sooner of the caller's
/// `grpc-timeout` and the server's request timeout, from `arrived`, less a
/// millisecond. tonic runs the same timer around this service and answers
/// CANCELLED ("Timeout expired") when it fires; firing first, this one
/// answers DEADLINE_EXCEEDED, also while the request body is still being
/// read, before any handler runs.
pub fn headers_due(
    arrived: Instant,
    caller: Option<Duration>,
    server: Option<Duration>,
) -> Option<Instant> {
    let timeout = match (caller, server) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let due = arrived.checked_add(timeout)?;
    Some(due.checked_sub(Duration::from_millis(1)).unwrap_or(due))
}

impl<S: NamedService> NamedService for Edge<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for Edge<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: http_body::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    R::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let arrived = Instant::now();
        let counted = Counted::default();
        request.extensions_mut().insert(counted.clone());
        let rpc = rpc_of(request.uri().path());
        let metrics = self.metrics.clone();
        if !is_grpc(request.headers().get(http::header::CONTENT_TYPE)) {
            metrics.call_refused(rpc, "HTTP_415");
            let mut response = http::Response::new(tonic::body::Body::empty());
            *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return Box::pin(async move { Ok(response) });
        }
        let mut caller_timeout = None;
        if let Some(value) = request.headers().get("grpc-timeout") {
            caller_timeout = grpc_timeout(value.as_bytes());
            if caller_timeout.is_none() {
                let status = Status::invalid_argument(format!(
                    "malformed grpc-timeout {:?}: it must be 1 to 8 digits and a unit (H, M, S, m, u, n)",
                    String::from_utf8_lossy(value.as_bytes())
                ));
                metrics.call_refused(rpc, code_name(status.code()));
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        request.extensions_mut().insert(Arrived {
            at: arrived,
            caller_timeout,
        });
        let due = headers_due(arrived, caller_timeout, self.request_timeout);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match due {
                None => response.await,
                Some(due) => match tokio::time::timeout_at(due.into(), response).await {
                    Ok(response) => response,
                    Err(_) => {
                        let status = Status::deadline_exceeded(
                            "the deadline passed before the call could start its answer",
                        );
                        if !counted.0.load(Ordering::Relaxed) {
                            metrics.call_refused(rpc, code_name(status.code()));
                        }
                        return Ok(status.into_http());
                    }
                },
            };
            let mut response = response?;
            let headers = response.headers_mut();
            // A trailers-only response: the call failed before any message.
            if let Some(status) = Status::from_header_map(headers) {
                let code = status.code();
                let fixed = fix(status);
                if fixed.code() != code {
                    // Both headers are rewritten; a failure leaves the
                    // original status in place.
                    let _ = fixed.add_header(headers);
                }
                if !counted.0.load(Ordering::Relaxed) {
                    metrics.call_refused(rpc, code_name(fixed.code()));
                }
            }
            Ok(response.map(tonic::body::Body::new))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_the_specification_writes_them() {
        assert_eq!(grpc_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(
            grpc_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [
            &b""[..],
            b"m",
            b"10",
            b"10x",
            b"-1S",
            b"123456789S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(
                grpc_timeout(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn only_grpc_content_types_are_served() {
        let v = |s: &'static str| http::HeaderValue::from_static(s);
        assert!(is_grpc(Some(&v("application/grpc"))));
        assert!(is_grpc(Some(&v("application/grpc+proto"))));
        assert!(!is_grpc(Some(&v("application/json"))));
        assert!(!is_grpc(Some(&v("application/grpcx"))));
        assert!(!is_grpc(None));
    }

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
        let undecodable = Status::internal(
            "failed to decode Protobuf message: AnalyzeRequest.text: invalid string value",
        );
        assert_eq!(fix(undecodable).code(), Code::InvalidArgument);
    }
}
