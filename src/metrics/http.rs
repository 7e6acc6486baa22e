//! The metrics endpoint: `GET /metrics` over HTTP/1.1, served by hyper.
//!
//! Its port goes through the same accept loop as the gRPC port
//! ([`crate::accept`]), with limits of its own: at most
//! [`MAX_CONNECTIONS`] scrapers at once, [`HANDSHAKE_TIMEOUT`] to start a
//! request and to send its head, [`CONNECTION_TIMEOUT`] for the whole
//! connection. A flood of idle connections to this port therefore cannot use
//! up the descriptors the gRPC port needs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tracing::debug;

use super::Metrics;
use crate::accept::{AcceptOptions, Acceptor};

/// Scrapers connected at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 64;
/// Time to send the first bytes, and then the whole request head.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the exposition of `metrics` on `listener` until the task is
/// dropped. Returns only when the accept loop meets an error it cannot
/// survive, with that error: the caller decides (`serve` stops the
/// process, since a replica whose metrics died would go on unobserved).
pub async fn serve_http(listener: TcpListener, metrics: Arc<Metrics>) -> std::io::Error {
    let (mut acceptor, incoming) = Acceptor::start(
        listener,
        AcceptOptions {
            max_connections: MAX_CONNECTIONS,
            handshake_timeout: Some(HANDSHAKE_TIMEOUT),
            tcp_keepalive: None,
        },
        metrics.clone(),
    );
    let mut incoming = std::pin::pin!(incoming);
    loop {
        let conn = tokio::select! {
            fatal = &mut acceptor.fatal => {
                return fatal.unwrap_or_else(|_| {
                    std::io::Error::other("the metrics accept loop ended")
                });
            }
            next = incoming.next() => match next {
                Some(Ok(conn)) => conn,
                Some(Err(e)) => return e,
                None => return std::io::Error::other("the metrics accept loop ended"),
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&request, &metrics);
                async move { Ok::<_, Infallible>(response) }
            });
            let serving = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(conn), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, serving).await {
                Ok(Err(e)) => debug!("metrics connection failed: {e}"),
                Err(_) => debug!("metrics connection timed out"),
                Ok(Ok(())) => {}
            }
        });
    }
}

fn respond(request: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("a valid response")
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match request.uri().path() {
        "/metrics" => Response::builder()
            .header("content-type", prometheus::TEXT_FORMAT)
            .body(Full::new(Bytes::from(metrics.render())))
            .expect("a valid response"),
        "/" => text(StatusCode::OK, "article-analyzer metrics: GET /metrics\n"),
        _ => text(StatusCode::NOT_FOUND, "not found; try /metrics\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{sample, scrape, Outcome};
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[tokio::test]
    async fn the_endpoint_serves_the_exposition() {
        let m = Arc::new(Metrics::new());
        m.analysis_finished(Outcome::Ok, 7);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve_http(listener, m.clone()));
        let body = scrape(addr).await.unwrap();
        assert_eq!(sample(&body, "article_analyzer_tokens_total"), Some(7.0));
        for (request, status) in [
            (&b"GET /nope HTTP/1.0\r\n\r\n"[..], "404"),
            (
                b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                "405",
            ),
        ] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(request).await.unwrap();
            let mut raw = String::new();
            s.read_to_string(&mut raw).await.unwrap();
            assert!(
                raw.starts_with(&format!("HTTP/1.1 {status}"))
                    || raw.starts_with(&format!("HTTP/1.0 {status}")),
                "{raw}"
            );
        }
        task.abort();
    }

    #[tokio::test]
    async fn idle_scrapers_past_the_limit_are_shed_and_the_endpoint_recovers() {
        let m = Arc::new(Metrics::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve_http(listener, m.clone()));
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 20 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        // Over the limit, connections are closed at once rather than queued.
        let mut shed = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(3), shed.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        drop(idle);
        let mut served = false;
        for _ in 0..50 {
            if scrape(addr).await.is_ok() {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(served);
        let text = m.render();
        assert!(
            sample(
                &text,
                "article_analyzer_connections_refused_total{reason=\"max_connections\"}"
            )
            .unwrap_or(0.0)
                >= 1.0,
            "{text}"
        );
        task.abort();
    }
}
