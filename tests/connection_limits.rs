//! Connection limits: the flags and environment variables that set them, and
//! what HTTP/2's max concurrent streams really does to a second call.

mod common;

use std::time::Duration;

use article_analyzer::config::Limits;
use article_analyzer::proto as pb;
use clap::{CommandFactory, Parser};
use pb::analyze_event::Event;
use tokio_stream::StreamExt;

#[derive(Parser)]
struct LimitsOnly {
    #[command(flatten)]
    limits: Limits,
}

#[test]
fn connection_limits_have_defaults_flags_and_env() {
    let defaults = LimitsOnly::try_parse_from(["t"]).unwrap().limits;
    let expected = Limits::default();
    assert_eq!(
        defaults.max_concurrent_streams,
        expected.max_concurrent_streams
    );
    assert_eq!(defaults.max_concurrent_streams, 100);
    assert_eq!(defaults.http2_keepalive_interval_secs, 60);
    assert_eq!(defaults.http2_keepalive_timeout_secs, 20);
    assert_eq!(defaults.tcp_keepalive_secs, 60);
    assert_eq!(defaults.request_timeout_secs, 120);
    assert_eq!(defaults.request_timeout_secs, expected.request_timeout_secs);

    let flags = LimitsOnly::try_parse_from([
        "t",
        "--max-concurrent-streams",
        "7",
        "--http2-keepalive-interval-secs",
        "0",
        "--http2-keepalive-timeout-secs",
        "5",
        "--tcp-keepalive-secs",
        "0",
        "--request-timeout-secs",
        "9",
    ])
    .unwrap()
    .limits;
    assert_eq!(flags.max_concurrent_streams, 7);
    assert_eq!(Limits::secs(flags.http2_keepalive_interval_secs), None);
    assert_eq!(
        Limits::secs(flags.http2_keepalive_timeout_secs),
        Some(Duration::from_secs(5))
    );
    assert_eq!(Limits::secs(flags.tcp_keepalive_secs), None);
    assert_eq!(flags.request_timeout_secs, 9);

    // Each also reads its environment variable (checked through the help,
    // since setting variables would race the other tests' reads).
    let help = LimitsOnly::command().render_long_help().to_string();
    for name in [
        "ARTICLE_ANALYZER_MAX_CONCURRENT_STREAMS",
        "ARTICLE_ANALYZER_HTTP2_KEEPALIVE_INTERVAL_SECS",
        "ARTICLE_ANALYZER_HTTP2_KEEPALIVE_TIMEOUT_SECS",
        "ARTICLE_ANALYZER_TCP_KEEPALIVE_SECS",
        "ARTICLE_ANALYZER_REQUEST_TIMEOUT_SECS",
    ] {
        assert!(help.contains(&format!("env: {name}=")), "{name} in {help}");
    }
}

/// With `max_concurrent_streams = 1` a second call on the same HTTP/2
/// connection is not refused: the client queues it until the first call's
/// stream closes, then it runs normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_call_on_a_full_connection_waits_for_the_first() {
    let server = common::start(Limits {
        max_concurrent_streams: 1,
        ..Limits::default()
    })
    .await;
    let channel = server.channel().await;
    let mut first = pb::article_analyzer_client::ArticleAnalyzerClient::new(channel.clone());
    let mut second = pb::article_analyzer_client::ArticleAnalyzerClient::new(channel);

    // The first call holds the connection's only stream: an AnalyzeStream
    // whose request side stays open.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::AnalyzeRequest {
        request_id: "first".into(),
        text: "Angela Merkel met Emmanuel Macron in Paris.".into(),
        options: None,
    })
    .await
    .unwrap();
    let mut events = first
        .analyze_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("the first call starts")
        .into_inner();
    let mut first_completed = false;
    while let Some(event) = events.next().await {
        if let Some(Event::Completed(_)) = event.expect("first call event").event {
            first_completed = true;
            break;
        }
    }
    assert!(first_completed);

    // The second call cannot get a stream while the first is open.
    let second_call = tokio::spawn(async move {
        second
            .analyze_document(pb::AnalyzeRequest {
                request_id: "second".into(),
                text: "Barack Obama was born in Hawaii.".into(),
                options: None,
            })
            .await
    });
    // A third call on a connection of its own, started after the second,
    // goes through the server and back; the second, already sent on a
    // connection that was open, had at least that long to arrive. The
    // server's metrics then show that only the third reached it.
    let third = server
        .client()
        .await
        .analyze_document(common::request("third", "Olaf Scholz visited Warsaw."))
        .await
        .expect("a call on another connection runs");
    assert_eq!(third.into_inner().request_id, "third");
    let text = server.metrics.render();
    let sample = |series: &str| article_analyzer::metrics::sample(&text, series);
    assert_eq!(
        sample("article_analyzer_rpc_requests_total{code=\"OK\",rpc=\"AnalyzeDocument\"}"),
        Some(1.0),
        "only the third call reached the server"
    );
    assert_eq!(
        sample("article_analyzer_rpc_in_flight{rpc=\"AnalyzeDocument\"}"),
        Some(0.0),
        "the second call is not in progress on the server"
    );
    assert!(
        !second_call.is_finished(),
        "the second call finished while the only stream was taken: {:?}",
        second_call.await
    );

    // Closing the first call's request side ends it; the second then runs.
    drop(tx);
    while let Some(event) = events.next().await {
        event.expect("first call ends cleanly");
    }
    let doc = tokio::time::timeout(Duration::from_secs(30), second_call)
        .await
        .expect("the second call runs once the first has ended")
        .unwrap()
        .expect("the second call succeeds")
        .into_inner();
    assert_eq!(doc.request_id, "second");
    assert!(doc.completed.is_some());
    assert!(doc
        .entities
        .iter()
        .any(|e| e.canonical_text == "Barack Obama"));
}

/// The server-side request timeout ends a unary call that waits too long,
/// but never cuts a server stream that has started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_timeout_bounds_unary_calls_but_not_streams() {
    let server = common::start(Limits {
        request_timeout_secs: 1,
        workers: 1,
        event_buffer: 1,
        // One window: the stream's recognition of the long article holds
        // the only worker for seconds, past the timeout.
        window_chars: 0,
        ..Limits::default()
    })
    .await;
    let mut client = server.client().await;

    // A stream whose analysis (recognizing the long article in one window)
    // keeps the only worker past the timeout.
    let started = std::time::Instant::now();
    let mut events = client
        .analyze(pb::AnalyzeRequest {
            request_id: "slow-reader".into(),
            text: common::long_article(),
            options: None,
        })
        .await
        .expect("the stream starts")
        .into_inner();
    events.next().await.unwrap().expect("the first event");

    // A unary call queued behind it ends at the server's timeout with
    // DEADLINE_EXCEEDED (tonic's own timer would say CANCELLED).
    let mut other = server.client().await;
    let status = other
        .analyze_document(pb::AnalyzeRequest {
            request_id: "queued".into(),
            text: "Barack Obama was born in Hawaii.".into(),
            options: None,
        })
        .await
        .expect_err("the queued unary call times out");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));

    // The stream goes on to its Completed.
    let mut completed = false;
    while let Some(event) = events.next().await {
        let event = event.expect("the stream is not cut by the request timeout");
        if let Some(Event::Completed(_)) = event.event {
            completed = true;
        }
    }
    assert!(completed);
    assert!(started.elapsed() > Duration::from_secs(1));
}
