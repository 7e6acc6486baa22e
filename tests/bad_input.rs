//! Hostile and odd input against the real server: every case gets either the
//! documented status or an OK result whose offsets slice the text, and after
//! each one the server is still SERVING and answers a control request from
//! another client correctly. Also: a panic inside a model worker fails only
//! its own call.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use article_analyzer::backend::spacy::SpacyRecognizer;
use article_analyzer::config::Limits;
use article_analyzer::pipeline::{
    AnalysisError, EntityRecognizer, ModelInfo, Pipeline, Recognized,
};
use article_analyzer::proto as pb;
use article_analyzer::proto::article_analyzer_client::ArticleAnalyzerClient;
use common::request;
use pb::analyze_event::Event;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

const CONTROL_TEXT: &str = "Barack Obama was born in Hawaii.";

fn with_options(id: &str, text: &str, options: pb::AnalyzeOptions) -> pb::AnalyzeRequest {
    pb::AnalyzeRequest {
        options: Some(options),
        ..request(id, text)
    }
}

fn stance(mode: i32, targets: &[&str], max_targets: u32) -> pb::AnalyzeOptions {
    pb::AnalyzeOptions {
        entity_labels: vec![],
        stance: Some(pb::StanceOptions {
            mode,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            max_targets,
        }),
    }
}

/// A client that accepts large responses (a 1 MB sentence comes back whole).
async fn client(server: &common::TestServer) -> ArticleAnalyzerClient<Channel> {
    server
        .client()
        .await
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// Every span of `doc` slices `text` consistently by chars and by bytes,
/// and sentence and mention texts are exactly their slices.
fn assert_offsets(name: &str, text: &str, doc: &pb::AnalyzeResponse) {
    // Byte offset of every char boundary, indexed by char offset.
    let byte_of: Vec<usize> = text
        .char_indices()
        .map(|(b, _)| b)
        .chain([text.len()])
        .collect();
    let check = |what: &str, span: Option<&pb::Span>| -> &str {
        let s = span.unwrap_or_else(|| panic!("{name}: {what} has no span"));
        let (sc, ec) = (s.start_char as usize, s.end_char as usize);
        let (sb, eb) = (s.start_byte as usize, s.end_byte as usize);
        assert!(sc <= ec && ec < byte_of.len(), "{name}: {what} {s:?}");
        assert_eq!(byte_of[sc], sb, "{name}: {what} start {s:?}");
        assert_eq!(byte_of[ec], eb, "{name}: {what} end {s:?}");
        &text[sb..eb]
    };
    for sentence in &doc.sentences {
        assert_eq!(
            check("sentence", sentence.span.as_ref()),
            sentence.text,
            "{name}"
        );
        for m in &sentence.entities {
            assert_eq!(check("mention", m.span.as_ref()), m.text, "{name}");
        }
    }
    for e in &doc.entities {
        for span in &e.spans {
            check("entity", Some(span));
        }
    }
    for s in &doc.stances {
        for ev in &s.evidence {
            check("evidence", ev.span.as_ref());
        }
    }
    let completed = doc
        .completed
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no Completed"));
    assert_eq!(completed.sentence_count as usize, doc.sentences.len());
}

/// The server is SERVING and a fresh client gets the right entities.
async fn assert_healthy(server: &common::TestServer, after: &str) {
    use tonic_health::pb::health_check_response::ServingStatus;
    for service in ["", article_analyzer::server::SERVICE_NAME] {
        assert_eq!(
            common::health_status(server, service).await,
            ServingStatus::Serving as i32,
            "after {after}: health of {service:?}"
        );
    }
    let doc = client(server)
        .await
        .analyze_document(request("control", CONTROL_TEXT))
        .await
        .unwrap_or_else(|e| panic!("after {after}: control request failed: {e:?}"))
        .into_inner();
    let mentions: Vec<(&str, &str)> = doc
        .sentences
        .iter()
        .flat_map(|s| s.entities.iter())
        .map(|m| (m.text.as_str(), m.label.as_str()))
        .collect();
    assert_eq!(
        mentions,
        [("Barack Obama", "PERSON"), ("Hawaii", "GPE")],
        "after {after}"
    );
    assert_eq!(doc.request_id, "control");
}

enum Expect {
    /// An OK result; at least this many sentences.
    Ok { min_sentences: usize },
    /// This status, whose message contains the needle.
    Status(Code, &'static str),
}

fn one_char_per_plane() -> String {
    // Plane 0 (BMP), 1 (SMP), 2 (SIP), 3 (TIP), 4..=13 (unassigned), 14
    // (SSP: a tag character), 15 and 16 (private use).
    let mut s = String::from("Plane test: A é 中 ");
    for plane in 1u32..=16 {
        let c = char::from_u32(plane << 16 | 0x0041).unwrap();
        s.push(c);
        s.push(' ');
    }
    s.push_str("\u{E0041} \u{FFFD} \u{10FFFF} Angela Merkel visited Paris.");
    s
}

#[tokio::test]
async fn bad_input_gets_a_clear_status_or_a_well_formed_result() {
    let started = Instant::now();
    // One worker: every case must give its slot back for the next one.
    let server = common::start(Limits {
        workers: 1,
        ..Limits::default()
    })
    .await;
    let mut c = client(&server).await;
    use pb::stance_options::Mode;

    let control_chars: String = (0u8..0x20)
        .chain([0x7f])
        .map(char::from)
        .chain(('\u{80}'..='\u{9f}').take(32))
        .collect::<String>()
        .repeat(50);
    let thirty_three: Vec<String> = (0..33).map(|i| format!("Target {i}")).collect();
    let thirty_three: Vec<&str> = thirty_three.iter().map(String::as_str).collect();

    let cases: Vec<(&str, pb::AnalyzeRequest, Expect)> = vec![
        (
            "empty text",
            request("e", ""),
            Expect::Status(Code::InvalidArgument, "empty"),
        ),
        (
            "whitespace only",
            request("w", " \t\r\n\u{a0}\u{2003}\u{3000} \n"),
            Expect::Status(Code::InvalidArgument, "empty"),
        ),
        (
            "a single 1,000,000-char token",
            request("tok", &"a".repeat(1_000_000)),
            Expect::Ok { min_sentences: 1 },
        ),
        (
            "1,000,001 chars (over max_text_chars)",
            request("over", &"a".repeat(1_000_001)),
            Expect::Status(Code::InvalidArgument, "max_text_chars"),
        ),
        (
            "binary-looking text (control characters)",
            request("bin", &control_chars),
            Expect::Ok { min_sentences: 0 },
        ),
        (
            "one character from every Unicode plane",
            request("planes", &one_char_per_plane()),
            Expect::Ok { min_sentences: 1 },
        ),
        (
            "combining marks",
            request(
                "comb",
                "Zo\u{308}e\u{301} Sa\u{301}nchez met Jose\u{301} in Me\u{301}xico. \
                 a\u{300}\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}\u{307} \u{301}\u{301}\u{301}.",
            ),
            Expect::Ok { min_sentences: 1 },
        ),
        (
            "RTL and bidi marks",
            request(
                "rtl",
                "\u{202E}Angela Merkel\u{202C} met \u{200F}بنيامين نتنياهو\u{200E} in \
                 \u{2067}ירושלים\u{2069}. \u{200F}\u{200F}",
            ),
            Expect::Ok { min_sentences: 1 },
        ),
        (
            "NUL and control characters inside words",
            request(
                "nul",
                "Angela\0Merkel met\u{1}Emmanuel Macron\u{7}\u{8} in \0Paris\0.\u{1b}[31m red\u{0b}\u{0c}",
            ),
            Expect::Ok { min_sentences: 1 },
        ),
        (
            "only NUL characters",
            request("nul-only", &"\0".repeat(1000)),
            Expect::Ok { min_sentences: 0 },
        ),
        (
            "CRLF line endings",
            request(
                "crlf",
                "Angela Merkel met Emmanuel Macron.\r\n\r\nThey spoke in Paris.\r\nThen Berlin.\r\n",
            ),
            Expect::Ok { min_sentences: 2 },
        ),
        (
            "a very long sentence (20,000 words, no full stop)",
            request("long-sentence", &"Merkel and Macron talked ".repeat(5_000)),
            Expect::Ok { min_sentences: 1 },
        ),
        (
            "10,000 tiny sentences",
            request("tiny", &"Hi. ".repeat(10_000)),
            Expect::Ok {
                min_sentences: 5_000,
            },
        ),
        (
            "unknown stance mode 42",
            with_options("mode42", CONTROL_TEXT, stance(42, &[], 0)),
            Expect::Status(Code::InvalidArgument, "unknown stance mode 42"),
        ),
        (
            "negative stance mode",
            with_options("mode-1", CONTROL_TEXT, stance(-1, &[], 0)),
            Expect::Status(Code::InvalidArgument, "unknown stance mode"),
        ),
        (
            "unknown entity label",
            with_options(
                "label",
                CONTROL_TEXT,
                pb::AnalyzeOptions {
                    entity_labels: vec!["PERSON".into(), "PEOPLE".into()],
                    stance: None,
                },
            ),
            Expect::Status(Code::InvalidArgument, "PEOPLE"),
        ),
        (
            "lower-case entity label",
            with_options(
                "label-case",
                CONTROL_TEXT,
                pb::AnalyzeOptions {
                    entity_labels: vec!["person".into()],
                    stance: None,
                },
            ),
            Expect::Status(Code::InvalidArgument, "person"),
        ),
        (
            "33 explicit targets",
            with_options(
                "t33",
                CONTROL_TEXT,
                stance(Mode::Explicit as i32, &thirty_three, 0),
            ),
            Expect::Status(Code::InvalidArgument, "33 stance targets"),
        ),
        (
            "32 explicit targets (the limit)",
            with_options(
                "t32",
                CONTROL_TEXT,
                stance(Mode::Explicit as i32, &thirty_three[..32], 0),
            ),
            Expect::Ok { min_sentences: 1 },
        ),
        (
            "automatic max_targets 33",
            with_options("m33", CONTROL_TEXT, stance(Mode::Automatic as i32, &[], 33)),
            Expect::Status(Code::InvalidArgument, "max_targets"),
        ),
        (
            "targets with AUTOMATIC mode",
            with_options(
                "auto-targets",
                CONTROL_TEXT,
                stance(Mode::Automatic as i32, &["Obama"], 0),
            ),
            Expect::Status(Code::InvalidArgument, "EXPLICIT"),
        ),
        (
            "blank explicit target",
            with_options(
                "blank",
                CONTROL_TEXT,
                stance(Mode::Explicit as i32, &["Obama", " \t"], 0),
            ),
            Expect::Status(Code::InvalidArgument, "empty"),
        ),
        (
            "missing options",
            request("no-options", CONTROL_TEXT),
            Expect::Ok { min_sentences: 1 },
        ),
        (
            "options without stance",
            with_options(
                "no-stance",
                CONTROL_TEXT,
                pb::AnalyzeOptions {
                    entity_labels: vec![],
                    stance: None,
                },
            ),
            Expect::Ok { min_sentences: 1 },
        ),
        (
            "missing request id",
            request("", CONTROL_TEXT),
            Expect::Ok { min_sentences: 1 },
        ),
    ];

    for (name, req, expect) in cases {
        let t = Instant::now();
        let result = c.analyze_document(req.clone()).await;
        match (&expect, result) {
            (Expect::Ok { min_sentences }, Ok(doc)) => {
                let doc = doc.into_inner();
                assert_offsets(name, &req.text, &doc);
                assert!(
                    doc.sentences.len() >= *min_sentences,
                    "{name}: {} sentences",
                    doc.sentences.len()
                );
                if req.request_id.is_empty() {
                    assert!(!doc.request_id.is_empty(), "{name}: no request id made up");
                } else {
                    assert_eq!(doc.request_id, req.request_id, "{name}");
                }
            }
            (Expect::Status(code, needle), Err(status)) => {
                assert_eq!(status.code(), *code, "{name}: {status:?}");
                assert!(
                    status.message().contains(needle),
                    "{name}: {:?} lacks {needle:?}",
                    status.message()
                );
                // The streaming form refuses it the same way.
                let err = c.analyze(req.clone()).await.expect_err(name);
                assert_eq!(err.code(), *code, "{name} (Analyze): {err:?}");
            }
            (Expect::Ok { .. }, Err(status)) => panic!("{name}: expected OK, got {status:?}"),
            (Expect::Status(code, _), Ok(_)) => panic!("{name}: expected {code:?}, got OK"),
        }
        eprintln!("{name}: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
        assert_healthy(&server, name).await;
    }

    // 10 MB in one message: over the default 8 MiB message limit, tonic
    // refuses it before our code runs.
    let ten_mb = "word ".repeat(2 * 1024 * 1024);
    let err = c
        .analyze_document(request("10mb", &ten_mb))
        .await
        .expect_err("10 MB over the message limit");
    assert_eq!(
        err.code(),
        Code::ResourceExhausted,
        "10 MB message: {err:?}"
    );
    assert!(err.message().contains("max_message_bytes"), "{err:?}");
    let err = c
        .analyze(request("10mb-stream", &ten_mb))
        .await
        .expect_err("10 MB over the message limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "Analyze: {err:?}");
    // In AnalyzeStream the over-limit message ends the call with the status.
    let outcome = match c
        .analyze_stream(tokio_stream::iter(vec![request("10mb-bulk", &ten_mb)]))
        .await
    {
        Err(status) => Err(status),
        Ok(events) => events.into_inner().collect::<Result<Vec<_>, _>>().await,
    };
    let err = outcome.expect_err("10 MB over the message limit");
    assert_eq!(
        err.code(),
        Code::ResourceExhausted,
        "AnalyzeStream: {err:?}"
    );
    assert_healthy(&server, "a 10 MB message").await;

    eprintln!(
        "bad input cases took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn ten_mb_under_a_raised_message_limit_hits_max_text_chars() {
    let server = common::start(Limits {
        max_message_bytes: 16 << 20,
        max_text_chars: 1_000_000,
        ..Limits::default()
    })
    .await;
    let ten_mb = "word ".repeat(2 * 1024 * 1024);
    let err = client(&server)
        .await
        .analyze_document(request("10mb", &ten_mb))
        .await
        .expect_err("10 MB is over max_text_chars");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("max_text_chars") && err.message().contains("1000000"),
        "{}",
        err.message()
    );
    assert_healthy(&server, "10 MB over max_text_chars").await;
}

#[tokio::test]
async fn callers_that_vanish_mid_stream_leave_the_server_healthy() {
    // One worker and a tiny buffer, so an abandoned analysis would hold the
    // only slot if it were not stopped.
    let server = common::start(Limits {
        workers: 1,
        event_buffer: 1,
        stream_concurrency: 2,
        ..Limits::default()
    })
    .await;
    let text = common::long_article();

    // Analyze: read the first event, then drop the response stream.
    {
        let mut c = client(&server).await;
        let mut events = c
            .analyze(request("vanish-1", &text))
            .await
            .unwrap()
            .into_inner();
        let first = events.message().await.unwrap().unwrap();
        assert!(matches!(first.event, Some(Event::Started(_))));
    }
    assert_healthy(&server, "Analyze dropped mid-stream").await;

    // AnalyzeStream: send requests, read one event, then drop the request
    // sender (without ending the stream cleanly), the responses and the
    // channel.
    {
        let mut c = client(&server).await;
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::AnalyzeRequest>(4);
        for i in 0..3 {
            tx.send(request(&format!("bulk-{i}"), &text)).await.unwrap();
        }
        let mut events = c
            .analyze_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let first = events.message().await.unwrap().unwrap();
        assert!(first.request_id.starts_with("bulk-"));
        drop(events);
        drop(c);
        // The sender outlives the response stream: the request half stays
        // open until it is dropped here.
        drop(tx);
    }
    assert_healthy(&server, "AnalyzeStream dropped mid-stream").await;

    // AnalyzeStream whose request half stays open while the caller stops
    // reading and vanishes: the server must not wait on it forever.
    {
        let mut c = client(&server).await;
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::AnalyzeRequest>(4);
        tx.send(request("open-1", &text)).await.unwrap();
        let events = c
            .analyze_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let mut events = events.take(2);
        while let Some(e) = events.next().await {
            e.unwrap();
        }
        drop(events);
        drop(c);
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(tx);
    }
    assert_healthy(
        &server,
        "AnalyzeStream abandoned with its request half open",
    )
    .await;
}

// ---- fault isolation --------------------------------------------------------

const PANIC_MARKER: &str = "TRIGGER-TEST-PANIC";

/// The real recognizer, except that it panics on texts holding the marker.
struct PanickyRecognizer {
    inner: Arc<SpacyRecognizer>,
}

impl EntityRecognizer for PanickyRecognizer {
    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }

    fn recognize(&self, text: &str) -> Result<Recognized, AnalysisError> {
        if text.contains(PANIC_MARKER) {
            panic!("test-only panic inside the model worker");
        }
        self.inner.recognize(text)
    }
}

fn panicky_pipeline() -> Pipeline {
    static RECOGNIZER: OnceLock<Arc<SpacyRecognizer>> = OnceLock::new();
    let inner = RECOGNIZER
        .get_or_init(|| {
            Arc::new(
                SpacyRecognizer::load(
                    &common::model_config().pipeline_dir(),
                    common::model_config().components,
                )
                .expect("loading the model"),
            )
        })
        .clone();
    let stance = article_analyzer::stance::LexiconStance::embedded().expect("stance lexicons");
    Pipeline::new(
        Arc::new(PanickyRecognizer { inner }),
        Some(Arc::new(stance)),
    )
}

#[tokio::test]
async fn a_panic_in_a_model_worker_fails_only_its_own_call() {
    // One worker and no queue: if the panicking job kept its worker or queue
    // slot, the next request would wait forever or get RESOURCE_EXHAUSTED.
    let limits = Limits {
        workers: 1,
        queue: 0,
        stream_concurrency: 1,
        ..Limits::default()
    };
    let server = common::start_with(limits, || Ok(panicky_pipeline())).await;
    common::wait_serving(&server).await;
    let mut c = client(&server).await;
    let boom = format!("Angela Merkel said {PANIC_MARKER} in Berlin.");

    for round in 0..3 {
        // Unary.
        let err = c
            .analyze_document(request("boom", &boom))
            .await
            .expect_err("the worker panicked");
        assert_eq!(err.code(), Code::Internal, "round {round}: {err:?}");
        assert!(!err.message().contains("test-only"), "{}", err.message());
        assert_healthy(&server, "a panic in AnalyzeDocument").await;

        // Server streaming: the stream ends with INTERNAL.
        let events: Vec<_> = c
            .analyze(request("boom-stream", &boom))
            .await
            .unwrap()
            .into_inner()
            .collect()
            .await;
        let last = events.last().expect("at least the error");
        assert_eq!(
            last.as_ref().map_err(|s| s.code()).err(),
            Some(Code::Internal),
            "round {round}: {events:?}"
        );
        assert_healthy(&server, "a panic in Analyze").await;
    }

    // Bidi: the panicking request gets a Failed event with INTERNAL, its
    // neighbours in the same stream complete.
    let reqs = vec![
        request("before", CONTROL_TEXT),
        request("boom", &boom),
        request("after", CONTROL_TEXT),
    ];
    let events: Vec<pb::AnalyzeEvent> = c
        .analyze_stream(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .expect("the stream itself does not fail");
    let failed: Vec<(&str, i32)> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Failed(f)) => Some((e.request_id.as_str(), f.code)),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [("boom", Code::Internal as i32)]);
    for id in ["before", "after"] {
        assert!(
            events
                .iter()
                .any(|e| e.request_id == id && matches!(e.event, Some(Event::Completed(_)))),
            "{id} did not complete"
        );
    }
    assert_healthy(&server, "a panic in AnalyzeStream").await;
}

// ---- the command line -------------------------------------------------------

/// `analyze --json -` with `text` on stdin: the JSON on success, or stderr.
fn cli_analyze(args: &[&str], text: &str) -> Result<serde_json::Value, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_article-analyzer"))
        .env("ARTICLE_ANALYZER_MODELS", common::models_dir())
        .arg("analyze")
        .args(args)
        .args(["--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = text.as_bytes().to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("one JSON object on stdout"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn the_cli_handles_odd_text_and_rejects_bad_options_with_a_reason() {
    let texts = [
        ("empty", String::new()),
        ("whitespace", " \r\n\t\u{3000}".to_string()),
        (
            "NUL and controls",
            "Angela\0Merkel met\u{1}Emmanuel Macron\u{7} in \0Paris\0.\u{1b}[0m".to_string(),
        ),
        ("every plane", one_char_per_plane()),
        (
            "combining marks",
            "Zo\u{308}e\u{301} Sa\u{301}nchez met Jose\u{301}. \u{301}\u{301}".to_string(),
        ),
        (
            "RTL marks",
            "\u{202E}Angela Merkel\u{202C} met \u{200F}بنيامين نتنياهو\u{200E}.".to_string(),
        ),
        (
            "CRLF",
            "Angela Merkel met Emmanuel Macron.\r\n\r\nThey spoke in Paris.\r\n".to_string(),
        ),
    ];
    for (name, text) in &texts {
        let v = cli_analyze(&[], text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let byte_of: Vec<usize> = text
            .char_indices()
            .map(|(b, _)| b)
            .chain([text.len()])
            .collect();
        let spans = v["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .chain(v["entities"].as_array().unwrap());
        for s in spans {
            let n = |k: &str| s[k].as_u64().unwrap() as usize;
            assert_eq!(byte_of[n("start_char")], n("start_byte"), "{name}: {s}");
            assert_eq!(byte_of[n("end_char")], n("end_byte"), "{name}: {s}");
            assert_eq!(
                &text[n("start_byte")..n("end_byte")],
                s["text"].as_str().unwrap(),
                "{name}"
            );
        }
    }
    let err = cli_analyze(&["--labels", "PEOPLE"], CONTROL_TEXT).unwrap_err();
    assert!(err.contains("PEOPLE"), "{err}");
    let many: Vec<String> = (0..33).map(|i| format!("T{i}")).collect();
    let err = cli_analyze(&["--targets", &many.join(",")], CONTROL_TEXT).unwrap_err();
    assert!(err.contains("33 stance targets"), "{err}");
}
