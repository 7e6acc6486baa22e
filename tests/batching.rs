//! Dynamic batching: documents of concurrent calls share recognizer
//! batches, and every call still gets exactly its own result.

mod common;

use std::sync::Arc;

use article_analyzer::config::Limits;
use article_analyzer::metrics::{sample, Metrics};
use article_analyzer::pipeline::StanceMode;
use article_analyzer::proto as pb;

fn corpus_texts(n: usize) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/corpus");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
        .iter()
        .take(n)
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn no_stance(text: &str) -> pb::AnalyzeRequest {
    pb::AnalyzeRequest {
        request_id: String::new(),
        text: text.to_string(),
        options: Some(pb::AnalyzeOptions {
            entity_labels: Vec::new(),
            stance: Some(pb::StanceOptions {
                mode: pb::stance_options::Mode::Disabled as i32,
                targets: Vec::new(),
                max_targets: 0,
            }),
        }),
    }
}

#[tokio::test]
async fn concurrent_calls_share_batches_and_get_their_own_entities() {
    let metrics = Arc::new(Metrics::new());
    let limits = Limits {
        workers: 1,
        batch_max_tokens: 1 << 20,
        batch_max_wait_ms: 200,
        ..Limits::default()
    };
    let server = common::start_with_metrics(limits, metrics.clone()).await;
    let texts = corpus_texts(6);
    let client = server.client().await;
    // Every call starts before any finishes: one worker, and the first
    // batch waits up to 200 ms for more documents.
    let handles: Vec<_> = texts
        .iter()
        .map(|text| {
            let mut client = client.clone();
            let request = no_stance(text);
            tokio::spawn(async move { client.analyze_document(request).await })
        })
        .collect();
    let mut responses = Vec::new();
    for h in handles {
        responses.push(h.await.unwrap());
    }

    let pipeline = common::pipeline();
    let options = article_analyzer::pipeline::AnalyzeOptions {
        entity_labels: Vec::new(),
        stance: StanceMode::Disabled,
    };
    for (text, response) in texts.iter().zip(responses) {
        let response = response.expect("AnalyzeDocument").into_inner();
        let expected = pipeline.analyze_collect(text, &options).unwrap();
        let got: Vec<(String, String, u32)> = response
            .sentences
            .iter()
            .flat_map(|s| &s.entities)
            .map(|e| (e.text.clone(), e.label.clone(), e.span.unwrap().start_byte))
            .collect();
        let want: Vec<(String, String, u32)> = expected
            .entities
            .iter()
            .map(|m| (m.text.clone(), m.label.clone(), m.span.start_byte as u32))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            response.completed.unwrap().token_count as usize,
            expected.completed.unwrap().token_count
        );
    }
    let text = metrics.render();
    let batches = sample(&text, "article_analyzer_batch_documents_count").unwrap();
    let documents = sample(&text, "article_analyzer_batch_documents_sum").unwrap();
    assert_eq!(documents, 6.0, "{text}");
    assert!(
        batches < 6.0,
        "no two documents shared a batch: {batches} batches"
    );
    assert_eq!(
        sample(&text, "article_analyzer_analyses_total{outcome=\"ok\"}"),
        Some(6.0)
    );
}

#[tokio::test]
async fn a_batched_call_keeps_stance_and_deadlines() {
    let limits = Limits {
        workers: 1,
        queue: 4,
        event_buffer: 1,
        batch_max_tokens: 4096,
        ..Limits::default()
    };
    let server = common::start_with_metrics(limits, Arc::new(Metrics::new())).await;
    let article = common::sample_article();
    let mut client = server.client().await;
    let response = client
        .analyze_document(pb::AnalyzeRequest {
            request_id: "b1".into(),
            text: article.clone(),
            options: None,
        })
        .await
        .expect("AnalyzeDocument")
        .into_inner();
    let expected = common::pipeline()
        .analyze_collect(&article, &Default::default())
        .unwrap();
    let targets: Vec<&str> = response.stances.iter().map(|s| s.target.as_str()).collect();
    let want: Vec<&str> = expected.stances.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, want);
    assert!(!targets.is_empty());

    // Occupy the only worker with a caller that does not read; a second
    // call then waits for the recognizer until its deadline passes.
    let _held = client
        .analyze(no_stance(&common::long_article()))
        .await
        .unwrap();
    let mut late = tonic::Request::new(no_stance("Hi Bob."));
    late.set_timeout(std::time::Duration::from_millis(300));
    let stream = client.analyze(late).await.unwrap().into_inner();
    let status = tokio_stream::StreamExt::collect::<Result<Vec<_>, _>>(stream)
        .await
        .expect_err("the deadline passes while waiting");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
}
