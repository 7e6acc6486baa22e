//! Accepting connections so that no peer can end the accept loop; used by
//! the gRPC port and the metrics port alike.
//!
//! tonic's own `TcpIncoming` treats "too many open files" as an error it
//! retries at once, in a busy loop, and never sheds anything. Here:
//!
//! - **Descriptor exhaustion** (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`)
//!   backs off (10 ms doubling to 1 s), logs once per episode, and serves
//!   again as soon as descriptors free up.
//! - **A connection limit** (`--max-connections`) sheds new connections
//!   first: over the limit a connection is accepted and closed at once, so
//!   the established ones keep their service and the kernel's backlog never
//!   fills with peers that wait forever.
//! - **A handshake timeout** (`--handshake-timeout-secs`): a connection that
//!   has not sent the 24-byte HTTP/2 preface (or, with TLS, the first 24 bytes
//!   of its handshake) in time is closed, so idle sockets cannot hold slots.
//! - **Stopping**: [`Acceptor::stop`] closes the listening socket at once, so
//!   new connections are refused (clients fail over) while the connections
//!   already open are served until the drain ends.
//! - **Any other accept error is fatal**: it is reported through
//!   [`Acceptor::fatal`], and the server exits non-zero with a log line.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tracing::{error, info, warn};

use crate::metrics::Metrics;

/// Bytes a client sends first on a plaintext HTTP/2 connection.
const PREFACE_BYTES: u64 = 24;

/// How the acceptor treats new connections.
#[derive(Debug, Clone)]
pub struct AcceptOptions {
    /// Connections open at once; over it, new ones are closed on accept.
    pub max_connections: usize,
    /// Time a new connection has to send its first 24 bytes (`None`: no limit).
    /// 24 bytes is the HTTP/2 preface, and less than any TLS ClientHello or
    /// HTTP/1 request line a real client sends first.
    pub handshake_timeout: Option<Duration>,
    /// TCP keepalive idle time (`None`: off).
    pub tcp_keepalive: Option<Duration>,
}

/// The accept loop, running as its own task.
pub struct Acceptor {
    stop: watch::Sender<bool>,
    /// Receives the error that ended the loop, if one did.
    pub fatal: oneshot::Receiver<io::Error>,
}

impl Acceptor {
    /// Starts accepting on `listener`; connections come out of the returned
    /// stream, which stays open (pending) after [`Acceptor::stop`] so that
    /// tonic keeps serving the connections it has.
    pub fn start(
        listener: TcpListener,
        options: AcceptOptions,
        metrics: Arc<Metrics>,
    ) -> (Acceptor, impl Stream<Item = Result<Conn, io::Error>>) {
        let (tx, rx) = mpsc::channel(64);
        let (stop, stopped) = watch::channel(false);
        let (fatal_tx, fatal) = oneshot::channel();
        tokio::spawn(async move {
            if let Err(e) = accept_loop(listener, options, metrics, tx, stopped).await {
                error!("accepting connections failed: {e}");
                let _ = fatal_tx.send(e);
            }
        });
        let incoming = tokio_stream::StreamExt::chain(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            tokio_stream::pending(),
        );
        (Acceptor { stop, fatal }, incoming)
    }

    /// Closes the listening socket: new connections are refused from now on.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Errors after which accepting again can succeed once resources free up.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Errors that concern one connection only. Besides the usual ones, Linux
/// passes a new socket's pending network errors out of accept(2), and its
/// manual says to retry on them; EPERM is a firewall rule refusing one peer.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    ) || matches!(
        e.raw_os_error(),
        Some(
            libc::EPROTO
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::EPERM
        )
    )
}

async fn accept_loop(
    listener: TcpListener,
    options: AcceptOptions,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Result<Conn, io::Error>>,
    mut stopped: watch::Receiver<bool>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let mut backoff = Duration::ZERO;
    let mut shed_logged = false;
    loop {
        let accepted = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => {
                info!("stopped accepting connections");
                return Ok(());
            }
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                if !backoff.is_zero() {
                    info!("accepting connections again");
                    backoff = Duration::ZERO;
                }
                stream
            }
            Err(e) if out_of_resources(&e) => {
                if backoff.is_zero() {
                    warn!("cannot accept connections: {e}; backing off until descriptors free up");
                    backoff = Duration::from_millis(10);
                } else {
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                metrics.connection_refused("out_of_descriptors");
                tokio::select! {
                    _ = stopped.wait_for(|stop| *stop) => return Ok(()),
                    _ = tokio::time::sleep(backoff) => continue,
                }
            }
            Err(e) if transient(&e) => continue,
            Err(e) => return Err(e),
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !shed_logged {
                warn!(
                    max_connections = options.max_connections,
                    "connection limit reached: closing new connections"
                );
                shed_logged = true;
            }
            metrics.connection_refused("max_connections");
            drop(stream);
            continue;
        };
        shed_logged = false;
        let _ = stream.set_nodelay(true);
        if let Some(idle) = options.tcp_keepalive {
            let keepalive = socket2::TcpKeepalive::new().with_time(idle);
            let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        }
        let conn = Conn {
            stream,
            _slot: slot,
            handshake: options
                .handshake_timeout
                .map(|t| Box::pin(tokio::time::sleep_until(Instant::now() + t))),
            read: 0,
        };
        if tx.send(Ok(conn)).await.is_err() {
            return Ok(());
        }
    }
}

/// An accepted connection: it holds a connection slot until it closes, and
/// fails its reads if the peer is silent past the handshake timeout.
pub struct Conn {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// Until the peer's first bytes arrive.
    handshake: Option<Pin<Box<Sleep>>>,
    read: u64,
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if this.handshake.is_some() {
            this.read += (buf.filled().len() - before) as u64;
            if this.read >= PREFACE_BYTES {
                this.handshake = None;
            } else if result.is_pending() {
                if let Some(timer) = this.handshake.as_mut() {
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the peer sent no handshake in time",
                        )));
                    }
                }
            }
        }
        result
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Conn {
    /// The TCP connection underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.stream
    }
}

/// Raises the soft limit on open descriptors to the hard limit, so the
/// connection limit rather than the process limit decides; returns the
/// limit now in force.
pub fn raise_descriptor_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            warn!("cannot raise the open-file limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// The connection limit to apply: the configured one, lowered to leave
/// descriptors for model files, the metrics port and logs.
pub fn effective_max_connections(configured: usize, descriptor_limit: Option<u64>) -> usize {
    // The metrics port's own connections, then listeners, stdio, the
    // runtime's descriptors, model files and the trace exporter.
    const RESERVED: u64 = crate::metrics::MAX_SCRAPERS as u64 + 64;
    match descriptor_limit {
        Some(limit) if (limit.saturating_sub(RESERVED) as usize) < configured => {
            let lowered = (limit.saturating_sub(RESERVED) as usize).max(1);
            warn!(
                configured,
                lowered, "the open-file limit is below --max-connections; lowering it"
            );
            lowered
        }
        _ => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_leaves_descriptors_for_the_rest() {
        assert_eq!(effective_max_connections(10_000, Some(1024)), 896);
        assert_eq!(effective_max_connections(100, Some(1024)), 100);
        assert_eq!(effective_max_connections(100, None), 100);
        assert_eq!(effective_max_connections(100, Some(10)), 1);
    }

    #[test]
    fn descriptor_exhaustion_is_retried_and_other_errors_are_not() {
        assert!(out_of_resources(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(out_of_resources(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!out_of_resources(&io::Error::from_raw_os_error(
            libc::EBADF
        )));
        assert!(transient(&io::Error::from_raw_os_error(libc::ECONNABORTED)));
        assert!(transient(&io::Error::from_raw_os_error(libc::ENETUNREACH)));
        assert!(transient(&io::Error::from_raw_os_error(libc::EPERM)));
        assert!(!transient(&io::Error::from_raw_os_error(libc::EINVAL)));
    }
}
