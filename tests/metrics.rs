//! Prometheus metrics, end to end: a real server with the real model, a few
//! calls, then a scrape of the HTTP endpoint.

mod common;

use std::sync::Arc;

use article_analyzer::config::Limits;
use article_analyzer::metrics::{sample, scrape, serve_http, Metrics};
use article_analyzer::proto as pb;
use tokio_stream::StreamExt;
use tonic::Code;

fn request(text: &str) -> pb::AnalyzeRequest {
    pb::AnalyzeRequest {
        request_id: String::new(),
        text: text.to_string(),
        options: None,
    }
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

#[tokio::test]
async fn counters_move_after_calls() {
    let metrics = Arc::new(Metrics::new());
    let server = common::start_with_metrics(Limits::default(), metrics.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = listener.local_addr().unwrap();
    let exporter = tokio::spawn(serve_http(listener, metrics.clone()));

    let before = scrape(metrics_addr).await.expect("scraping /metrics");
    assert!(before.contains("# TYPE article_analyzer_queue_wait_seconds histogram"));
    assert_eq!(value(&before, "article_analyzer_tokens_total"), 0.0);

    let mut client = server.client().await;
    for _ in 0..3 {
        client
            .analyze_document(request("Angela Merkel met Emmanuel Macron in Paris."))
            .await
            .expect("AnalyzeDocument");
    }
    let bad = client
        .analyze_document(request("   "))
        .await
        .expect_err("empty text");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let events: Vec<_> = client
        .analyze(request("The EU condemned Russia."))
        .await
        .expect("Analyze")
        .into_inner()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("Analyze events");
    assert!(!events.is_empty());
    client
        .get_models(pb::GetModelsRequest::default())
        .await
        .expect("GetModels");

    let after = scrape(metrics_addr).await.expect("scraping /metrics");
    let requests = |rpc: &str, code: &str| {
        value(
            &after,
            &format!("article_analyzer_rpc_requests_total{{code=\"{code}\",rpc=\"{rpc}\"}}"),
        )
    };
    assert_eq!(requests("AnalyzeDocument", "OK"), 3.0);
    assert_eq!(requests("AnalyzeDocument", "INVALID_ARGUMENT"), 1.0);
    assert_eq!(requests("Analyze", "OK"), 1.0);
    assert_eq!(requests("GetModels", "OK"), 1.0);
    assert_eq!(
        value(
            &after,
            "article_analyzer_rpc_duration_seconds_count{rpc=\"AnalyzeDocument\"}"
        ),
        4.0
    );
    for rpc in ["AnalyzeDocument", "Analyze", "GetModels"] {
        assert_eq!(
            value(
                &after,
                &format!("article_analyzer_rpc_in_flight{{rpc=\"{rpc}\"}}")
            ),
            0.0,
            "{rpc}"
        );
    }
    // Four analyses ran (the invalid request never reached the queue).
    assert_eq!(
        value(&after, "article_analyzer_analyses_total{outcome=\"ok\"}"),
        4.0
    );
    assert_eq!(
        value(&after, "article_analyzer_queue_wait_seconds_count"),
        4.0
    );
    assert!(value(&after, "article_analyzer_tokens_total") >= 4.0 * 5.0);
    assert_eq!(value(&after, "article_analyzer_queue_depth"), 0.0);
    assert_eq!(value(&after, "article_analyzer_workers_busy"), 0.0);

    exporter.abort();
}

#[tokio::test]
async fn a_full_queue_counts_as_resource_exhausted() {
    let metrics = Arc::new(Metrics::new());
    let limits = Limits {
        workers: 1,
        queue: 0,
        ..Limits::default()
    };
    let server = common::start_with_metrics(limits, metrics.clone()).await;
    let article = common::long_article();
    let mut client = server.client().await;
    // The first call holds the only slot (it is not read, so it pauses);
    // the second is turned away.
    let _held = client
        .analyze(request(&article))
        .await
        .expect("first call admitted")
        .into_inner();
    let mut rejected = None;
    for _ in 0..50 {
        match client.analyze_document(request("Paris.")).await {
            Err(status) if status.code() == Code::ResourceExhausted => {
                rejected = Some(status);
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    assert!(rejected.is_some(), "the queue never filled");
    let text = metrics.render();
    assert!(
        value(
            &text,
            "article_analyzer_rpc_requests_total{code=\"RESOURCE_EXHAUSTED\",rpc=\"AnalyzeDocument\"}"
        ) >= 1.0
    );
    assert_eq!(
        value(&text, "article_analyzer_rpc_in_flight{rpc=\"Analyze\"}"),
        1.0
    );
}

/// A long article recognized window by window: only the wait for its first
/// worker turn is queue time; the windows' recognition is not.
#[tokio::test]
async fn windowed_recognition_is_not_counted_as_queue_wait() {
    let metrics = Arc::new(Metrics::new());
    let limits = Limits {
        window_chars: 2_000,
        ..Limits::default()
    };
    let server = common::start_with_metrics(limits, metrics.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = listener.local_addr().unwrap();
    let exporter = tokio::spawn(serve_http(listener, metrics.clone()));

    let started = std::time::Instant::now();
    server
        .client()
        .await
        .analyze_document(request(&common::sample_article()))
        .await
        .expect("AnalyzeDocument");
    let elapsed = started.elapsed().as_secs_f64();

    let after = scrape(metrics_addr).await.expect("scraping /metrics");
    assert_eq!(
        value(&after, "article_analyzer_queue_wait_seconds_count"),
        1.0
    );
    let waited = value(&after, "article_analyzer_queue_wait_seconds_sum");
    assert!(
        waited < elapsed / 4.0,
        "an idle server queued the call {waited:.3} s of its {elapsed:.3} s"
    );
    exporter.abort();
}
