//! The gRPC service, end to end: a real server on 127.0.0.1 with the real
//! model, called with a tonic client. These tests are the specification of
//! what callers can rely on.

mod common;

use std::time::Duration;

use article_analyzer::config::Limits;
use article_analyzer::proto as pb;
use common::request;
use pb::analyze_event::Event;
use tokio_stream::StreamExt;
use tonic::Code;

fn kind(e: &pb::AnalyzeEvent) -> &'static str {
    match e.event.as_ref().expect("every event has a body") {
        Event::Started(_) => "started",
        Event::Sentence(_) => "sentence",
        Event::Entities(_) => "entities",
        Event::Stance(_) => "stance",
        Event::Relations(_) => "relations",
        Event::Completed(_) => "completed",
        Event::Failed(_) => "failed",
    }
}

async fn collect(
    stream: tonic::Streaming<pb::AnalyzeEvent>,
) -> Result<Vec<pb::AnalyzeEvent>, tonic::Status> {
    stream.collect::<Result<Vec<_>, _>>().await
}

/// Checks the `Analyze` event grammar: started sentence* entities stance*
/// relations? completed.
fn assert_event_order(events: &[pb::AnalyzeEvent]) {
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"completed"), "{kinds:?}");
    let rank = |k: &str| match k {
        "started" => 0,
        "sentence" => 1,
        "entities" => 2,
        "stance" => 3,
        "relations" => 4,
        "completed" => 5,
        _ => 9,
    };
    for w in kinds.windows(2) {
        assert!(rank(w[0]) <= rank(w[1]), "out of order: {kinds:?}");
    }
    assert_eq!(kinds.iter().filter(|k| **k == "entities").count(), 1);
    assert!(kinds.iter().filter(|k| **k == "relations").count() <= 1);
    assert_eq!(kinds.iter().filter(|k| **k == "started").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "completed").count(), 1);
    let indices: Vec<u32> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Sentence(s)) => Some(s.index),
            _ => None,
        })
        .collect();
    assert_eq!(indices, (0..indices.len() as u32).collect::<Vec<_>>());
}

#[tokio::test]
async fn health_is_not_serving_until_the_models_are_loaded() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let server = common::start_with(Limits::default(), move || {
        gate.recv().ok();
        Ok(common::pipeline())
    })
    .await;

    for service in ["", "article_analyzer.v1.ArticleAnalyzer"] {
        assert_eq!(
            common::health_status(&server, service).await,
            ServingStatus::NotServing as i32,
            "service {service:?} before load"
        );
    }
    let early = server
        .client()
        .await
        .analyze_document(request("early", "Angela Merkel visited Paris."))
        .await
        .expect_err("no analysis before the models are loaded");
    assert_eq!(early.code(), Code::Unavailable);

    release.send(()).unwrap();
    common::wait_serving(&server).await;
    assert_eq!(
        common::health_status(&server, "article_analyzer.v1.ArticleAnalyzer").await,
        ServingStatus::Serving as i32
    );
}

/// Lists the services through one reflection protocol version (the v1 and
/// v1alpha APIs are the same messages in two packages).
macro_rules! list_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut resp = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let msg = resp.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
            panic!("unexpected reflection response");
        };
        list.service
            .into_iter()
            .map(|s| s.name)
            .collect::<Vec<String>>()
    }};
}

#[tokio::test]
async fn reflection_lists_the_service_in_v1_and_v1alpha() {
    let server = common::start(Limits::default()).await;
    let channel = server.channel().await;
    let v1 = list_services!(v1, channel.clone());
    let v1alpha = list_services!(v1alpha, channel);
    for names in [&v1, &v1alpha] {
        for service in [
            "article_analyzer.v1.ArticleAnalyzer",
            "grpc.health.v1.Health",
        ] {
            assert!(
                names.iter().any(|n| n == service),
                "{service} not in {names:?}"
            );
        }
    }
}

#[tokio::test]
async fn analyze_streams_started_sentences_entities_stances_completed_in_order() {
    let server = common::start(Limits::default()).await;
    let text = common::sample_article();
    let events = collect(
        server
            .client()
            .await
            .analyze(request("sample-1", &text))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap();
    assert_event_order(&events);
    assert!(events.iter().all(|e| e.request_id == "sample-1"));

    let Some(Event::Started(started)) = &events[0].event else {
        unreachable!()
    };
    let ner = started.models.iter().find(|m| m.task == "ner").unwrap();
    assert_eq!(
        (ner.name.as_str(), ner.version.as_str()),
        ("en_core_web_sm", "3.8.0")
    );

    let mentions: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Sentence(s)) => Some(s.entities.clone()),
            _ => None,
        })
        .flatten()
        .map(|m| (m.text, m.label))
        .collect();
    for (text, label) in [("China", "GPE"), ("Russia", "GPE"), ("Moscow", "GPE")] {
        assert!(
            mentions.contains(&(text.to_string(), label.to_string())),
            "{text}/{label} not in {mentions:?}"
        );
    }
    // One stance per automatic target, aliases merged (Moscow is Russia),
    // each with evidence that slices the text.
    let stances = common::stances(&events);
    let label_of = |target: &str| {
        stances
            .iter()
            .find(|s| s.target == target)
            .map(|s| pb::StanceLabel::try_from(s.label).unwrap())
    };
    assert_eq!(label_of("China"), Some(pb::StanceLabel::Favor));
    // The lexicon engine is borderline on Russia (see eval/stance for its
    // measured quality); the service contract is that it is a target.
    assert!(
        matches!(label_of("Russia"), Some(l) if l != pb::StanceLabel::Against),
        "{:?}",
        label_of("Russia")
    );
    assert_eq!(label_of("United States"), Some(pb::StanceLabel::Against));
    assert_eq!(label_of("Moscow"), None, "Moscow is merged into Russia");
    for s in &stances {
        assert!(!s.evidence.is_empty(), "{} has no evidence", s.target);
        assert!((s.favor + s.against + s.neutral - 1.0).abs() < 1e-4);
        for e in &s.evidence {
            let span = e.span.unwrap();
            assert_eq!(
                &text[span.start_byte as usize..span.end_byte as usize],
                e.text
            );
        }
    }

    let Some(Event::Completed(done)) = &events.last().unwrap().event else {
        unreachable!()
    };
    assert_eq!(done.mention_count as usize, mentions.len());
    assert_eq!(done.stance_count as usize, stances.len());
    assert!(done.token_count > 1000);
    assert!(done.timings.iter().any(|t| t.stage == "ner"));
}

#[tokio::test]
async fn analyze_document_returns_what_analyze_streams() {
    let server = common::start(Limits::default()).await;
    let text = common::sample_article();
    let mut client = server.client().await;
    let doc = client
        .analyze_document(request("doc-1", &text))
        .await
        .unwrap()
        .into_inner();
    let events = collect(
        client
            .analyze(request("doc-1", &text))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap();
    let streamed: Vec<pb::Sentence> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Sentence(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(doc.request_id, "doc-1");
    assert_eq!(doc.sentences, streamed);
    assert!(!doc.entities.is_empty());
    assert!(doc.completed.is_some());
    assert!(doc.models.iter().any(|m| m.task == "ner"));
}

#[tokio::test]
async fn analyze_stream_tags_every_event_with_its_request_id_and_keeps_each_in_order() {
    let server = common::start(Limits::default()).await;
    let texts = [
        "Angela Merkel met Emmanuel Macron in Berlin on Monday.",
        "Apple is looking at buying U.K. startup for $1 billion.",
        "The United Nations condemned the attack in Kabul.",
        "Tesla shares rose 5% after Elon Musk spoke in Austin, Texas.",
        "",
        "NASA launched the Artemis I mission from Florida in November 2022.",
    ];
    let requests: Vec<pb::AnalyzeRequest> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| request(&format!("req-{i}"), t))
        .collect();
    let events = collect(
        server
            .client()
            .await
            .analyze_stream(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap();

    for (i, text) in texts.iter().enumerate() {
        let id = format!("req-{i}");
        let mine: Vec<pb::AnalyzeEvent> = events
            .iter()
            .filter(|e| e.request_id == id)
            .cloned()
            .collect();
        if text.is_empty() {
            assert_eq!(mine.len(), 1, "{mine:?}");
            let Some(Event::Failed(f)) = &mine[0].event else {
                panic!("empty text must fail: {mine:?}")
            };
            assert_eq!(f.code, Code::InvalidArgument as i32);
        } else {
            assert_event_order(&mine);
        }
    }
    assert!(events.iter().all(|e| e.request_id.starts_with("req-")));
}

#[tokio::test]
async fn offsets_in_chars_and_bytes_agree_with_the_text() {
    let server = common::start(Limits::default()).await;
    let text = "“Bonjour,” said François Hollande in Zürich. 北京 hosted Xi Jinping 🎉 and \
                Vladimir Putin on 12 May 2022, says Reuters.";
    let doc = server
        .client()
        .await
        .analyze_document(request("", text))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !doc.request_id.is_empty(),
        "the server makes up a request id"
    );
    let chars: Vec<char> = text.chars().collect();
    let mut checked = 0;
    for sentence in &doc.sentences {
        let spans = std::iter::once((sentence.text.clone(), sentence.span.unwrap())).chain(
            sentence
                .entities
                .iter()
                .map(|m| (m.text.clone(), m.span.unwrap())),
        );
        for (expected, span) in spans {
            let by_char: String = chars[span.start_char as usize..span.end_char as usize]
                .iter()
                .collect();
            let by_byte = &text[span.start_byte as usize..span.end_byte as usize];
            assert_eq!(by_char, expected);
            assert_eq!(by_byte, expected);
            checked += 1;
        }
    }
    let names: Vec<&str> = doc
        .sentences
        .iter()
        .flat_map(|s| s.entities.iter().map(|m| m.text.as_str()))
        .collect();
    assert!(names.contains(&"François Hollande"), "{names:?}");
    assert!(checked >= 4, "{names:?}");
}

#[tokio::test]
async fn get_models_reports_the_loaded_model_and_its_labels() {
    let server = common::start(Limits::default()).await;
    let models = server.models().await;
    let ner = models
        .iter()
        .find(|m| m.task == "ner")
        .expect("a NER model");
    assert_eq!(ner.name, "en_core_web_sm");
    assert_eq!(ner.version, "3.8.0");
    assert_eq!(ner.backend, "spacy-native");
    assert_eq!(ner.labels.len(), 18);
    for label in ["PERSON", "ORG", "GPE", "DATE", "MONEY"] {
        assert!(ner.labels.iter().any(|l| l == label), "{label}");
    }
}

#[tokio::test]
async fn entity_label_filter_keeps_only_the_requested_labels() {
    let server = common::start(Limits::default()).await;
    let mut req = request("f", &common::sample_article());
    req.options = Some(pb::AnalyzeOptions {
        entity_labels: vec!["PERSON".into()],
        stance: None,
    });
    let doc = server
        .client()
        .await
        .analyze_document(req)
        .await
        .unwrap()
        .into_inner();
    let labels: Vec<&str> = doc
        .sentences
        .iter()
        .flat_map(|s| s.entities.iter().map(|m| m.label.as_str()))
        .collect();
    assert!(!labels.is_empty());
    assert!(labels.iter().all(|l| *l == "PERSON"), "{labels:?}");
}

#[tokio::test]
async fn bad_requests_get_invalid_argument_with_a_reason() {
    let server = common::start(Limits {
        max_text_chars: 1000,
        ..Limits::default()
    })
    .await;
    let mut client = server.client().await;
    let explicit_without_targets = pb::AnalyzeOptions {
        entity_labels: vec![],
        stance: Some(pb::StanceOptions {
            mode: pb::stance_options::Mode::Explicit as i32,
            targets: vec![],
            max_targets: 0,
        }),
    };
    let cases: Vec<(&str, pb::AnalyzeRequest, &str)> = vec![
        ("empty", request("a", ""), "empty"),
        ("whitespace", request("b", " \n\t "), "empty"),
        (
            "too long",
            request("c", &"word ".repeat(300)),
            "max_text_chars",
        ),
        (
            "unknown label",
            pb::AnalyzeRequest {
                options: Some(pb::AnalyzeOptions {
                    entity_labels: vec!["PEOPLE".into()],
                    stance: None,
                }),
                ..request("d", "Hi Bob.")
            },
            "PEOPLE",
        ),
        (
            "explicit without targets",
            pb::AnalyzeRequest {
                options: Some(explicit_without_targets),
                ..request("e", "Hi Bob.")
            },
            "EXPLICIT",
        ),
        (
            "unknown stance mode",
            pb::AnalyzeRequest {
                options: Some(pb::AnalyzeOptions {
                    entity_labels: vec![],
                    stance: Some(pb::StanceOptions {
                        mode: 42,
                        targets: vec![],
                        max_targets: 0,
                    }),
                }),
                ..request("f", "Hi Bob.")
            },
            "mode",
        ),
    ];
    for (name, req, needle) in cases {
        let err = client.analyze_document(req.clone()).await.expect_err(name);
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
        assert!(err.message().contains(needle), "{name}: {}", err.message());
        let err = client.analyze(req).await.expect_err(name);
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{name} (stream): {err:?}"
        );
    }
    // The server is still serving, and answers a good request.
    let ok = client
        .analyze_document(request("ok", "Barack Obama was born in Hawaii."))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.completed.is_some());
}

/// One worker, no queue, one event of buffer: a single caller takes the
/// whole server.
async fn single_slot_server() -> common::TestServer {
    common::start(Limits {
        workers: 1,
        queue: 0,
        event_buffer: 1,
        ..Limits::default()
    })
    .await
}

/// Whether a short request is answered within `attempts` tries 20 ms apart;
/// until then it may only be refused for capacity.
async fn answered_within(
    client: &mut article_analyzer::proto::article_analyzer_client::ArticleAnalyzerClient<
        tonic::transport::Channel,
    >,
    attempts: usize,
) -> bool {
    for _ in 0..attempts {
        match client.analyze_document(request("next", "Hi Bob.")).await {
            Ok(_) => return true,
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_full_queue_fails_fast_with_resource_exhausted() {
    // A caller that does not read keeps the only slot busy.
    let server = single_slot_server().await;
    let mut client = server.client().await;
    let text = common::long_article();
    let held = client.analyze(request("slow-reader", &text)).await.unwrap();
    server
        .until_metric("article_analyzer_workers_busy", 1.0)
        .await;
    let err = client
        .analyze_document(request("second", "Hi Bob."))
        .await
        .expect_err("the queue is full");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("capacity"), "{}", err.message());

    // Once the first caller reads its events the slot comes back.
    let events = collect(held.into_inner()).await.unwrap();
    assert_event_order(&events);
    assert!(
        answered_within(&mut client, 500).await,
        "the slot was not freed"
    );
}

#[tokio::test]
async fn a_caller_that_goes_away_frees_its_slot() {
    let server = single_slot_server().await;
    let mut client = server.client().await;
    let held = client
        .analyze(request("vanishing", &common::long_article()))
        .await
        .unwrap();
    drop(held);
    // The analysis notices at its next window or event that nobody listens;
    // the model stage in progress finishes first, which can take seconds in
    // a debug build on a busy machine.
    assert!(
        answered_within(&mut client, 1500).await,
        "the abandoned analysis kept its slot"
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_calls_in_flight() {
    let mut server = common::start(Limits {
        event_buffer: 1,
        ..Limits::default()
    })
    .await;
    let mut client = server.client().await;
    let mut stream = client
        .analyze(request("inflight", &common::long_article()))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(kind(&first), "started");

    server.shutdown();
    let mut rest = vec![first];
    while let Some(e) = stream
        .message()
        .await
        .expect("the call in flight completes")
    {
        rest.push(e);
    }
    assert_event_order(&rest);
    tokio::time::timeout(Duration::from_secs(15), &mut server.done)
        .await
        .expect("the server stops after draining")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_expired_deadline_gives_deadline_exceeded() {
    // No windows: the busy caller keeps the only worker the whole time.
    let server = common::start(Limits {
        workers: 1,
        queue: 4,
        event_buffer: 1,
        window_chars: 0,
        ..Limits::default()
    })
    .await;
    let mut client = server.client().await;
    // Occupy the only worker with a caller that does not read.
    let _held = client
        .analyze(request("busy", &common::long_article()))
        .await
        .unwrap();
    let mut req = tonic::Request::new(request("late", "Hi Bob."));
    req.set_timeout(Duration::from_millis(300));
    let stream = client.analyze(req).await.unwrap().into_inner();
    let err = collect(stream)
        .await
        .expect_err("the deadline passes in the queue");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
}

#[tokio::test]
async fn a_huge_article_does_not_starve_a_short_one() {
    // One worker; the huge article is recognized in windows of 10,000
    // characters, one worker turn each, so the short call queued behind it
    // gets a turn long before the huge one is done.
    let server = common::start(Limits {
        workers: 1,
        window_chars: 10_000,
        ..Limits::default()
    })
    .await;
    let huge_text = common::sample_article().repeat(10);
    let mut huge_client = server.client().await;
    let huge = tokio::spawn(async move {
        let events = collect(
            huge_client
                .analyze(request("huge", &huge_text))
                .await
                .unwrap()
                .into_inner(),
        )
        .await
        .unwrap();
        (std::time::Instant::now(), events)
    });
    // The huge article is on the worker before the short one arrives.
    server
        .until_metric("article_analyzer_workers_busy", 1.0)
        .await;
    let small = server
        .client()
        .await
        .analyze_document(request(
            "small",
            "Angela Merkel met Emmanuel Macron in Paris.",
        ))
        .await
        .unwrap()
        .into_inner();
    let small_done = std::time::Instant::now();
    let (huge_done, events) = huge.await.unwrap();
    assert!(small.completed.is_some());
    assert!(
        small_done < huge_done,
        "the short call waited for the whole huge article"
    );
    // The windows join into one coherent analysis of the whole text.
    assert_event_order(&events);
    let text = common::sample_article().repeat(10);
    let mut sentences = 0;
    for e in &events {
        if let Some(Event::Sentence(s)) = &e.event {
            let span = s.span.unwrap();
            assert_eq!(
                &text[span.start_byte as usize..span.end_byte as usize],
                s.text
            );
            for m in &s.entities {
                let span = m.span.unwrap();
                assert_eq!(
                    &text[span.start_byte as usize..span.end_byte as usize],
                    m.text
                );
            }
            sentences += 1;
        }
    }
    assert!(sentences > 400, "{sentences} sentences");
}

#[tokio::test]
async fn a_long_article_says_started_before_its_windows_are_recognized() {
    let server = common::start(Limits {
        window_chars: 2_000,
        ..Limits::default()
    })
    .await;
    let text = common::sample_article().repeat(4);
    let mut stream = server
        .client()
        .await
        .analyze(request("long", &text))
        .await
        .unwrap()
        .into_inner();
    let mut arrivals = Vec::new();
    while let Some(event) = stream.next().await {
        arrivals.push((std::time::Instant::now(), event.unwrap()));
    }
    let events: Vec<_> = arrivals.iter().map(|(_, e)| e.clone()).collect();
    assert_event_order(&events);
    assert_eq!(
        events.iter().filter(|e| kind(e) == "started").count(),
        1,
        "Started comes once"
    );
    // Started arrives while the windows are still being recognized, not in
    // the same burst as the first sentence.
    let first_sentence = arrivals
        .iter()
        .find(|(_, e)| kind(e) == "sentence")
        .unwrap()
        .0;
    let gap = first_sentence - arrivals[0].0;
    assert!(
        gap > Duration::from_millis(20),
        "Started only {gap:?} before the first sentence"
    );
}
