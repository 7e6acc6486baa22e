//! What a hostile peer cannot do to the server: each test is one way an
//! outside probe once took it down (issue "hard to knock over, for real"),
//! and what the server does instead.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use article_analyzer::config::Limits;
use article_analyzer::metrics::{self, Metrics};
use article_analyzer::proto as pb;
use article_analyzer::proto::analyze_event::Event;
use bytes::Bytes;
use prost::Message;
use tokio::net::TcpStream;
use tonic::transport::Channel;
use tonic::Code;

use common::request;

// ---- descriptors ------------------------------------------------------------

/// A release-like server process: the real binary under `ulimit -n`.
struct Process {
    child: Child,
    addr: String,
}

impl Process {
    fn start(nofile: u32, args: &[&str]) -> Process {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_article-analyzer"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--no-metrics",
                "--log-format",
                "json",
            ])
            .args(args)
            .env("ARTICLE_ANALYZER_MODELS", common::models_dir())
            .env("ARTICLE_ANALYZER_STANCE", "lexicon")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut addr = None;
        while addr.is_none() && Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["message"] == "listening" {
                addr = v["addr"].as_str().map(str::to_string);
            }
        }
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Process {
            child,
            addr: addr.expect("the server logged its address"),
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits until the server is SERVING, then opens one client connection.
    async fn connect(&self) -> pb::article_analyzer_client::ArticleAnalyzerClient<Channel> {
        wait_healthy(&self.addr, Duration::from_secs(60))
            .await
            .unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        pb::article_analyzer_client::ArticleAnalyzerClient::new(channel)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn health(addr: &str) -> Result<i32, String> {
    use tonic_health::pb::health_client::HealthClient;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .map(|r| r.into_inner().status)
        .map_err(|s| format!("{s}"))
}

async fn wait_healthy(addr: &str, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        match health(addr).await {
            Ok(1) => return Ok(()),
            Ok(other) if Instant::now() >= deadline => return Err(format!("status {other}")),
            Err(e) if Instant::now() >= deadline => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn idle_connections_past_the_descriptor_limit_do_not_end_the_server() {
    // The test process needs more descriptors than the server gets.
    let _ = rlimit::increase_nofile_limit(4096);
    let mut server = Process::start(256, &["--handshake-timeout-secs", "2"]);
    // A connection opened before the flood keeps being served through it.
    let mut kept = server.connect().await;

    // Four times the server's descriptor limit, none saying anything.
    let mut idle = Vec::new();
    for _ in 0..1_000 {
        if let Ok(s) = TcpStream::connect(&server.addr).await {
            idle.push(s);
        }
    }
    let answer = kept
        .analyze_document(request("during-flood", "Angela Merkel visited Paris."))
        .await
        .expect("an open connection is served during the flood")
        .into_inner();
    assert!(answer.completed.is_some());
    assert!(server.alive(), "the server exited during the flood");

    // The silent connections are closed by the handshake timeout even
    // while the test still holds them, so new callers get in again.
    wait_healthy(&server.addr, Duration::from_secs(20))
        .await
        .expect("new connections are served again after the handshake timeout");
    drop(idle);
    assert!(server.alive());
}

#[tokio::test]
async fn a_connection_limit_sheds_new_connections_and_keeps_the_open_ones() {
    let mut server = Process::start(
        1024,
        &["--max-connections", "3", "--handshake-timeout-secs", "0"],
    );
    let mut kept = server.connect().await;
    // The health checks `connect` polled with hold their slots until the
    // server has read their close; a slot freed after the flood below would
    // let the turned-away caller in. Give the server a moment to read them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    // Over the limit, a new caller is turned away at once (its connection
    // is closed), not left hanging.
    let started = Instant::now();
    assert!(health(&server.addr).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(4));
    kept.analyze_document(request("kept", "Angela Merkel visited Paris."))
        .await
        .expect("the open connection keeps its service");
    drop(idle);
    wait_healthy(&server.addr, Duration::from_secs(10))
        .await
        .expect("served again once connections close");
    assert!(server.alive());
}

// ---- slow readers -----------------------------------------------------------

/// A raw HTTP/2 client that opens no receive window: the server can send it
/// headers but no data, as a peer that never reads.
struct StalledCall {
    response: h2::client::ResponseFuture,
    open_window: tokio::sync::oneshot::Sender<()>,
}

fn grpc_frame(message: &impl Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

async fn stalled_analyze(addr: std::net::SocketAddr, req: &pb::AnalyzeRequest) -> StalledCall {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut client, mut conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    let (open_window, opened) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            _ = &mut conn => return,
            _ = opened => {}
        }
        let _ = conn.set_initial_window_size(1 << 20);
        let _ = conn.await;
    });
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{addr}/article_analyzer.v1.ArticleAnalyzer/Analyze"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(grpc_frame(req), true).unwrap();
    StalledCall {
        response,
        open_window,
    }
}

fn sample(metrics: &Metrics, series: &str) -> f64 {
    metrics::sample(&metrics.render(), series).unwrap_or(0.0)
}

/// A server with the real model whose metrics the test reads.
async fn start_recording(limits: Limits) -> (common::TestServer, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let server = common::start_with_metrics(limits, metrics.clone()).await;
    (server, metrics)
}

/// Polls the sum of the `series` until it reaches `at_least`; fails after
/// five minutes.
async fn wait_for(metrics: &Metrics, series: &[&str], at_least: f64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while series.iter().map(|s| sample(metrics, s)).sum::<f64>() < at_least {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readers_that_never_read_hold_no_worker() {
    let (server, metrics) = start_recording(Limits {
        workers: 2,
        stall_timeout_secs: 600,
        ..Limits::default()
    })
    .await;
    // Two callers that answer pings but never open their receive window,
    // on an article whose answer is far larger than any window.
    let text = common::long_article();
    let _a = stalled_analyze(server.addr, &request("stalled-a", &text)).await;
    let _b = stalled_analyze(server.addr, &request("stalled-b", &text)).await;
    // Both analyses run to their end into their own buffers.
    let ok = "article_analyzer_analyses_total{outcome=\"ok\"}";
    wait_for(&metrics, &[ok], 2.0, "the stalled analyses never finished").await;
    assert_eq!(sample(&metrics, "article_analyzer_workers_busy"), 0.0);
    // Every other caller is served at once.
    let mut req = tonic::Request::new(request("other", "Angela Merkel visited Paris."));
    req.set_timeout(Duration::from_secs(30));
    let answer = server
        .client()
        .await
        .analyze_document(req)
        .await
        .expect("served while two readers stall")
        .into_inner();
    assert!(answer.completed.is_some());
}

#[tokio::test]
async fn a_reader_stalled_past_the_timeout_is_cut_off_with_a_status() {
    let (server, metrics) = start_recording(Limits {
        stall_timeout_secs: 1,
        ..Limits::default()
    })
    .await;
    let text = common::long_article();
    let call = stalled_analyze(server.addr, &request("stalled", &text)).await;
    let response = call.response.await.unwrap();
    assert_eq!(response.status(), 200);
    // Past the stall timeout the call is cut off and its buffer freed: the
    // analysis is cancelled if it was still running (a debug build), or has
    // finished on its worker with its answer waiting (a release build is
    // that fast); either way the cut-off follows within the stall timeout
    // of the queue filling, which it does at once. Then the reader opens
    // its window and reads.
    wait_for(
        &metrics,
        &[
            "article_analyzer_analyses_total{outcome=\"cancelled\"}",
            "article_analyzer_analyses_total{outcome=\"ok\"}",
        ],
        1.0,
        "the stalled analysis never ended",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    call.open_window.send(()).unwrap();
    let mut body = response.into_body();
    let mut received = 0;
    while let Some(data) = body.data().await {
        let data = data.unwrap();
        received += data.len();
        let _ = body.flow_control().release_capacity(data.len());
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.to_str().unwrap()),
        Some("4"),
        "after {received} bytes: {trailers:?}"
    );
    let message = trailers.get("grpc-message").unwrap().to_str().unwrap();
    assert!(message.contains("stall_timeout_secs"), "{message}");
}

// ---- bulk -------------------------------------------------------------------

/// A recognizer that finds nothing at once: the bulk test is about the
/// transport, and 100,000 real analyses would take the test profile minutes
/// (`scripts/probe --bulk 100000` runs them through the real model against
/// the release binary in `scripts/test`).
struct Instant0;

impl article_analyzer::pipeline::EntityRecognizer for Instant0 {
    fn model_info(&self) -> article_analyzer::pipeline::ModelInfo {
        article_analyzer::pipeline::ModelInfo {
            task: "ner".into(),
            name: "finds-nothing".into(),
            version: "0".into(),
            backend: "test".into(),
            labels: Vec::new(),
            components: Vec::new(),
            sha256: None,
            training_data: None,
        }
    }

    fn recognize(
        &self,
        text: &str,
    ) -> Result<article_analyzer::pipeline::Recognized, article_analyzer::pipeline::AnalysisError>
    {
        Ok(article_analyzer::pipeline::Recognized {
            token_count: text.split_whitespace().count(),
            sentences: Vec::new(),
        })
    }
}

#[tokio::test]
async fn one_bulk_stream_carries_a_hundred_thousand_small_requests() {
    const N: usize = 100_000;
    let server = common::start_with(Limits::default(), || {
        Ok(article_analyzer::pipeline::Pipeline::new(
            Arc::new(Instant0),
            None,
        ))
    })
    .await;
    common::wait_serving(&server).await;
    let disabled = pb::AnalyzeOptions {
        stance: Some(pb::StanceOptions {
            mode: pb::stance_options::Mode::Disabled as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    let requests = (0..N).map(move |i| pb::AnalyzeRequest {
        request_id: i.to_string(),
        text: format!("Request {i} is about Paris."),
        options: Some(disabled.clone()),
    });
    let mut responses = server
        .client()
        .await
        .analyze_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut outcomes = vec![0u8; N];
    while let Some(event) = responses.message().await.expect("the stream stays up") {
        let i: usize = event.request_id.parse().unwrap();
        match event.event {
            Some(Event::Completed(_)) | Some(Event::Failed(_)) => outcomes[i] += 1,
            _ => {}
        }
    }
    let missing = outcomes.iter().filter(|&&n| n == 0).count();
    let doubled = outcomes.iter().filter(|&&n| n > 1).count();
    assert_eq!(
        (missing, doubled),
        (0, 0),
        "requests without exactly one outcome"
    );
}

// ---- request ids ------------------------------------------------------------

#[tokio::test]
async fn an_overlong_request_id_is_refused_and_never_echoed_in_full() {
    let server = common::start(Limits::default()).await;
    let mut client = server.client().await;
    let long = "x".repeat(7 * 1024 * 1024);
    let mut req = request("", common::SHORT_TEXT);
    req.request_id = long.clone();
    let status = client.analyze_document(req.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("request_id"),
        "{}",
        status.message()
    );
    let status = client.analyze(req.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let mut events = client
        .analyze_stream(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let event = events.message().await.unwrap().unwrap();
    assert!(event.request_id.len() <= article_analyzer::server::MAX_REQUEST_ID_BYTES);
    match event.event {
        Some(Event::Failed(f)) => assert_eq!(f.code, Code::InvalidArgument as i32),
        other => panic!("{other:?}"),
    }
    // At the limit it is accepted and echoed whole.
    let id = "é".repeat(article_analyzer::server::MAX_REQUEST_ID_BYTES / 2);
    let answer = client
        .analyze_document(request(&id, common::SHORT_TEXT))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.request_id, id);
}

// ---- drain ------------------------------------------------------------------

#[tokio::test]
async fn at_shutdown_health_says_not_serving_new_connections_are_refused_and_calls_finish() {
    let mut server = common::start(Limits {
        workers: 1,
        ..Limits::default()
    })
    .await;
    let channel = server.channel().await;
    let mut client = pb::article_analyzer_client::ArticleAnalyzerClient::new(channel.clone());
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut in_flight = client
        .analyze(request("in-flight", &common::sample_article().repeat(8)))
        .await
        .unwrap()
        .into_inner();
    let first = in_flight.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(Event::Started(_))));

    server.shutdown();
    // Health answers at once, on the connection the caller already has.
    let check = tokio::time::timeout(
        Duration::from_secs(2),
        health.check(tonic_health::pb::HealthCheckRequest::default()),
    )
    .await
    .expect("Check answers during the drain")
    .unwrap()
    .into_inner();
    assert_eq!(check.status, 2, "NOT_SERVING");
    // New analyses are turned away so callers go elsewhere.
    let status = client
        .analyze_document(request("late", common::SHORT_TEXT))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    // New connections are refused by the kernel, not left hanging.
    let refused = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(server.addr))
        .await
        .expect("connect answers at once");
    assert!(refused.is_err(), "the listener is still open");
    // The call in flight gets its whole answer.
    let mut completed = false;
    while let Some(event) = in_flight.message().await.unwrap() {
        completed |= matches!(event.event, Some(Event::Completed(_)));
    }
    assert!(completed);
    tokio::time::timeout(Duration::from_secs(15), &mut server.done)
        .await
        .expect("the server stops after the drain")
        .unwrap()
        .unwrap();
}

// ---- smaller things ---------------------------------------------------------

#[tokio::test]
async fn a_deadline_that_passes_in_the_queue_is_deadline_exceeded() {
    // One worker, held by one long article in one turn (not cut into
    // windows, which would let the late call in between them): the late
    // call waits in the queue past its deadline, in a release build too.
    let server = common::start(Limits {
        workers: 1,
        window_chars: 0,
        ..Limits::default()
    })
    .await;
    let mut busy = server.client().await;
    let long = common::sample_article().repeat(16);
    let hog = tokio::spawn(async move { busy.analyze_document(request("hog", &long)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Raw calls: a tonic client would enforce the deadline itself and never
    // see the server's answer.
    let headers = [
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", "150m"),
    ];
    let body = grpc_frame(&request("late", common::SHORT_TEXT));
    for rpc in ["AnalyzeDocument", "Analyze"] {
        let (http, grpc) = raw_call(server.addr, rpc, &headers, body.clone()).await;
        assert_eq!((http, grpc.as_deref()), (200, Some("4")), "{rpc}");
    }
    hog.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_deadline_that_passes_while_the_request_is_still_arriving_is_deadline_exceeded() {
    let server = common::start(Limits::default()).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}/article_analyzer.v1.ArticleAnalyzer/AnalyzeDocument",
            server.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "200m")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    // Half the message, then nothing until well past the deadline: no
    // handler has run when it passes.
    let body = grpc_frame(&request_of(common::SHORT_TEXT));
    let (first, rest) = body.split_at(body.len() / 2);
    send.send_data(Bytes::copy_from_slice(first), false)
        .unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("the server answers at the deadline")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(status.as_deref(), Some("4"), "{:?}", response.headers());
    let _ = send.send_data(Bytes::copy_from_slice(rest), true);
}

fn request_of(text: &str) -> pb::AnalyzeRequest {
    request("raw", text)
}

/// Sends one raw gRPC call and returns the HTTP status and `grpc-status`.
async fn raw_call(
    addr: std::net::SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (u16, Option<String>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::builder().method("POST").uri(format!(
        "http://{addr}/article_analyzer.v1.ArticleAnalyzer/{method}"
    ));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let (response, mut send) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    send.send_data(body, true).unwrap();
    let response = response.await.unwrap();
    let status = response.status().as_u16();
    let mut grpc = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    let mut body = response.into_body();
    while let Some(d) = body.data().await {
        let _ = d.map(|d| body.flow_control().release_capacity(d.len()));
    }
    if let Ok(Some(t)) = body.trailers().await {
        grpc = grpc.or(t
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_string()));
    }
    (status, grpc)
}

#[tokio::test]
async fn malformed_calls_get_the_status_the_specification_names() {
    let server = common::start(Limits::default()).await;
    let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
    let ok = grpc_frame(&request("raw", common::SHORT_TEXT));
    assert_eq!(
        raw_call(server.addr, "AnalyzeDocument", &grpc, ok.clone()).await,
        (200, Some("0".into()))
    );

    // Not gRPC: HTTP 415, not served.
    let json = [("content-type", "application/json"), ("te", "trailers")];
    assert_eq!(
        raw_call(server.addr, "AnalyzeDocument", &json, ok.clone())
            .await
            .0,
        415
    );

    // A malformed grpc-timeout is refused, not ignored.
    for bad in ["soon", "1000000000S", "5x"] {
        let headers = [grpc[0], grpc[1], ("grpc-timeout", bad)];
        assert_eq!(
            raw_call(server.addr, "AnalyzeDocument", &headers, ok.clone()).await,
            (200, Some("3".into())),
            "grpc-timeout {bad}"
        );
    }

    // Text that is not UTF-8 is the caller's error.
    let mut bad_utf8 = request("raw", "Angela Merkel visited Paris.").encode_to_vec();
    let at = bad_utf8.windows(6).position(|w| w == b"Angela").unwrap();
    bad_utf8[at] = 0xff;
    let mut framed = vec![0];
    framed.extend_from_slice(&(bad_utf8.len() as u32).to_be_bytes());
    framed.extend_from_slice(&bad_utf8);
    assert_eq!(
        raw_call(server.addr, "AnalyzeDocument", &grpc, Bytes::from(framed)).await,
        (200, Some("3".into()))
    );
}

#[tokio::test]
async fn calls_refused_before_the_handler_are_counted() {
    let (server, metrics) = start_recording(Limits::default()).await;
    let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
    let garbage = Bytes::from_static(&[0, 0, 0, 0, 3, 0xff, 0xff, 0xff]);
    assert_eq!(
        raw_call(server.addr, "AnalyzeDocument", &grpc, garbage)
            .await
            .1
            .as_deref(),
        Some("3")
    );
    let series =
        "article_analyzer_rpc_requests_total{code=\"INVALID_ARGUMENT\",rpc=\"AnalyzeDocument\"}";
    assert_eq!(sample(&metrics, series), 1.0);
}
