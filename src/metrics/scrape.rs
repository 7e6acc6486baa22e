//! Reading metrics back: fetching an exposition over HTTP and finding one
//! sample in it. For tests, the load driver and benchmarks.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Fetches `http://{addr}/metrics` and returns the body.
pub async fn scrape(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    match raw.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(format!(
            "unexpected metrics response: {}",
            raw.lines().next().unwrap_or_default()
        ))),
    }
}

/// The value of one sample in a text exposition, such as
/// `article_analyzer_rpc_requests_total{code="OK",rpc="AnalyzeDocument"}`
/// (labels in the exposition's order, which is sorted by name).
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
