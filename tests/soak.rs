//! A bounded soak against an in-process server: mixed RPCs (AnalyzeDocument,
//! Analyze, AnalyzeStream) over mixed texts for `SOAK_SECS` (default 50 s),
//! checking that every request gets exactly one complete answer or a clean
//! status, that memory stays flat after warm-up and that health stays
//! SERVING. Then a graceful shutdown under load: every accepted call ends with
//! its `Completed` or a clean UNAVAILABLE/CANCELLED status, never a stream cut
//! without one.
//!
//! The two tests share the process's memory, so they run one at a time.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use article_analyzer::config::Limits;
use article_analyzer::proto as pb;
use article_analyzer::proto::article_analyzer_client::ArticleAnalyzerClient;
use pb::analyze_event::Event;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Resident set size of this process (server and clients), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn soak_secs() -> u64 {
    std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
        .max(10)
}

/// The parity corpus (263 B to 8.7 KB articles), a few short texts, and two
/// that must get INVALID_ARGUMENT (marked `false`).
fn texts() -> Vec<(String, bool)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parity/corpus");
    let mut out: Vec<(String, bool)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| (std::fs::read_to_string(p).unwrap(), true))
        .collect();
    out.sort();
    assert!(out.len() >= 10, "the parity corpus is missing");
    out.push(("Angela Merkel met Emmanuel Macron in Paris.".into(), true));
    out.push(("x".into(), true));
    out.push(("Tokyo\u{0}\u{202e}Berlin 東京 🚀\r\n".into(), true));
    out.push((String::new(), false));
    out.push((" \n\t ".into(), false));
    out
}

fn request(id: String, text: &str, i: usize) -> pb::AnalyzeRequest {
    let options = (i % 4 == 1).then(|| pb::AnalyzeOptions {
        entity_labels: vec!["PERSON".into(), "GPE".into()],
        stance: None,
    });
    pb::AnalyzeRequest {
        request_id: id,
        text: text.to_string(),
        options,
    }
}

#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    invalid: u64,
}

/// One call of the given kind; panics on anything but one complete answer per
/// request or the expected INVALID_ARGUMENT.
async fn one_call(
    client: &mut ArticleAnalyzerClient<Channel>,
    texts: &[(String, bool)],
    i: usize,
    tally: &mut Tally,
) {
    let (text, valid) = &texts[i % texts.len()];
    let id = format!("r{i}");
    match i % 3 {
        0 => match client.analyze_document(request(id.clone(), text, i)).await {
            Ok(doc) => {
                let doc = doc.into_inner();
                assert!(valid, "{id}: an invalid text was accepted");
                assert_eq!(doc.request_id, id);
                assert!(doc.completed.is_some(), "{id}: no Completed");
                tally.ok += 1;
            }
            Err(s) if !valid && s.code() == Code::InvalidArgument => tally.invalid += 1,
            Err(s) => panic!("{id}: AnalyzeDocument: {s:?}"),
        },
        1 => match client.analyze(request(id.clone(), text, i)).await {
            Ok(stream) => {
                assert!(valid, "{id}: an invalid text was accepted");
                let mut stream = stream.into_inner();
                let mut completed = 0;
                while let Some(event) = stream.next().await {
                    let event = event.unwrap_or_else(|s| panic!("{id}: Analyze: {s:?}"));
                    assert_eq!(event.request_id, id);
                    assert_eq!(completed, 0, "{id}: an event after Completed");
                    if let Some(Event::Completed(_)) = event.event {
                        completed += 1;
                    }
                }
                assert_eq!(completed, 1, "{id}: Completed {completed} times");
                tally.ok += 1;
            }
            Err(s) if !valid && s.code() == Code::InvalidArgument => tally.invalid += 1,
            Err(s) => panic!("{id}: Analyze: {s:?}"),
        },
        _ => {
            // Three requests on one stream, the next texts in turn.
            let mut expected = HashMap::new();
            let mut requests = Vec::new();
            for k in 0..3 {
                let (text, valid) = &texts[(i + k) % texts.len()];
                let rid = format!("{id}-{k}");
                expected.insert(rid.clone(), *valid);
                requests.push(request(rid, text, i + k));
            }
            let mut stream = client
                .analyze_stream(tokio_stream::iter(requests))
                .await
                .unwrap_or_else(|s| panic!("{id}: AnalyzeStream: {s:?}"))
                .into_inner();
            let mut ends: HashMap<String, Vec<&'static str>> = HashMap::new();
            while let Some(event) = stream.next().await {
                let event = event.unwrap_or_else(|s| panic!("{id}: AnalyzeStream: {s:?}"));
                let valid = *expected
                    .get(&event.request_id)
                    .unwrap_or_else(|| panic!("{id}: unknown id {}", event.request_id));
                let end = ends.entry(event.request_id.clone()).or_default();
                assert!(
                    end.is_empty(),
                    "{}: an event after its end",
                    event.request_id
                );
                match event.event {
                    Some(Event::Completed(_)) => {
                        assert!(valid, "{}: invalid text completed", event.request_id);
                        end.push("completed");
                    }
                    Some(Event::Failed(f)) => {
                        assert!(
                            !valid && f.code == Code::InvalidArgument as i32,
                            "{}: Failed {f:?}",
                            event.request_id
                        );
                        end.push("failed");
                    }
                    _ => {}
                }
            }
            for (rid, valid) in &expected {
                let end = ends.get(rid).map(Vec::as_slice).unwrap_or_default();
                assert_eq!(end.len(), 1, "{rid}: ends {end:?}");
                if *valid {
                    tally.ok += 1;
                } else {
                    tally.invalid += 1;
                }
            }
        }
    }
}

#[test]
fn soak_mixed_rpcs_every_request_answered_memory_flat_serving() {
    let _serial = serial();
    runtime().block_on(async {
        use tonic_health::pb::health_check_response::ServingStatus;
        let secs = soak_secs();
        let server = common::start(Limits::default()).await;
        let texts = Arc::new(texts());
        let start = Instant::now();
        let end = start + Duration::from_secs(secs);
        let next = Arc::new(AtomicUsize::new(0));

        let mut callers = Vec::new();
        for _ in 0..4 {
            let mut client = server.client().await.max_decoding_message_size(64 << 20);
            let (texts, next) = (texts.clone(), next.clone());
            callers.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < end {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    one_call(&mut client, &texts, i, &mut tally).await;
                }
                tally
            }));
        }

        // Sample memory twice a second and health every 5 s.
        let mut samples: Vec<(f64, u64)> = Vec::new();
        let mut last_health = Instant::now();
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(500)).await;
            samples.push((start.elapsed().as_secs_f64(), rss_kib()));
            if last_health.elapsed() >= Duration::from_secs(5) {
                last_health = Instant::now();
                assert_eq!(
                    common::health_status(&server, "").await,
                    ServingStatus::Serving as i32,
                    "health left SERVING during the soak"
                );
            }
        }
        let mut total = Tally::default();
        for caller in callers {
            let t = caller.await.expect("a caller panicked");
            total.ok += t.ok;
            total.invalid += t.invalid;
        }
        assert_eq!(
            common::health_status(&server, "").await,
            ServingStatus::Serving as i32
        );

        // Warm-up is the first fifth; growth is measured over the second half.
        let half = secs as f64 / 2.0;
        let warm = secs as f64 / 5.0;
        let mid = samples
            .iter()
            .filter(|(t, _)| *t >= warm && *t <= half)
            .map(|&(_, r)| r)
            .max()
            .expect("samples before the midpoint");
        let late = samples
            .iter()
            .filter(|(t, _)| *t > half)
            .map(|&(_, r)| r)
            .max()
            .expect("samples after the midpoint");
        let after_warmup = samples
            .iter()
            .find(|(t, _)| *t >= warm)
            .map(|&(_, r)| r)
            .unwrap();
        let last = samples.last().unwrap().1;
        println!(
            "soak {secs} s: {} calls ({} answered, {} INVALID_ARGUMENT as expected); \
             RSS after warm-up {} KiB, peak to the midpoint {mid} KiB, \
             peak in the second half {late} KiB, at the end {last} KiB ({:+.1}%)",
            next.load(Ordering::Relaxed),
            total.ok,
            total.invalid,
            after_warmup,
            (late as f64 / mid as f64 - 1.0) * 100.0
        );
        assert!(total.ok > 0 && total.invalid > 0, "{total:?}");
        assert!(
            late as f64 <= mid as f64 * 1.25,
            "RSS grew from {mid} KiB to {late} KiB over the second half"
        );
    });
}

/// How one call of the shutdown test ended.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Outcome {
    Completed,
    RefusedAtStart(Code),
    EndedWithStatus(Code),
}

/// One Analyze call of the shutdown test, to its end.
async fn shutdown_call(
    mut client: ArticleAnalyzerClient<Channel>,
    id: String,
    text: Arc<String>,
    started: Arc<AtomicUsize>,
) -> Outcome {
    let req = request(id.clone(), &text, 0);
    let mut stream = match client.analyze(req).await {
        Ok(s) => s.into_inner(),
        Err(s) => return Outcome::RefusedAtStart(s.code()),
    };
    let mut completed = 0;
    let mut first = true;
    loop {
        match stream.next().await {
            Some(Ok(event)) => {
                if first {
                    started.fetch_add(1, Ordering::SeqCst);
                    first = false;
                }
                assert_eq!(event.request_id, id);
                assert_eq!(completed, 0, "{id}: an event after Completed");
                if let Some(Event::Completed(_)) = event.event {
                    completed += 1;
                }
            }
            Some(Err(s)) => {
                assert_eq!(completed, 0, "{id}: a status after Completed: {s:?}");
                return Outcome::EndedWithStatus(s.code());
            }
            None => {
                assert_eq!(completed, 1, "{id}: the stream ended without Completed");
                return Outcome::Completed;
            }
        }
    }
}

#[test]
fn graceful_shutdown_under_load_ends_every_call_cleanly() {
    let _serial = serial();
    runtime().block_on(async {
        let mut server = common::start(Limits {
            workers: 2,
            ..Limits::default()
        })
        .await;
        let text = Arc::new(common::sample_article());
        let channel = server.channel().await;
        let started = Arc::new(AtomicUsize::new(0));

        let mut calls = Vec::new();
        for i in 0..16 {
            let client = ArticleAnalyzerClient::new(channel.clone());
            let call = shutdown_call(client, format!("s{i}"), text.clone(), started.clone());
            calls.push(tokio::spawn(call));
        }

        // Shut down while calls are running and others are queued.
        let wait = Instant::now();
        while started.load(Ordering::SeqCst) < 2 {
            assert!(wait.elapsed() < Duration::from_secs(60), "no call started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.shutdown();
        let shutdown_at = Instant::now();
        // Calls made after it find the server gone or refusing.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for i in 0..4 {
            let client = ArticleAnalyzerClient::new(channel.clone());
            let call = shutdown_call(client, format!("late{i}"), text.clone(), started.clone());
            calls.push(tokio::spawn(call));
        }

        let mut outcomes: HashMap<Outcome, usize> = HashMap::new();
        let mut late_outcomes: HashMap<Outcome, usize> = HashMap::new();
        for (i, call) in calls.into_iter().enumerate() {
            let outcome = tokio::time::timeout(Duration::from_secs(30), call)
                .await
                .expect("a call hung after shutdown")
                .expect("a call panicked");
            if i >= 16 {
                // Sent after the shutdown began: the server never accepted
                // them, so how the transport refuses them (GOAWAY, a closed
                // connection, a failed reconnect) is the client's business;
                // what matters is that they end instead of hanging.
                *late_outcomes.entry(outcome).or_default() += 1;
                continue;
            }
            match outcome {
                Outcome::Completed => {}
                Outcome::RefusedAtStart(code) | Outcome::EndedWithStatus(code) => assert!(
                    matches!(code, Code::Unavailable | Code::Cancelled),
                    "unclean end of an accepted call: {outcome:?}"
                ),
            }
            *outcomes.entry(outcome).or_default() += 1;
        }
        println!("calls sent after the shutdown began: {late_outcomes:?}");
        let result = tokio::time::timeout(Duration::from_secs(30), &mut server.done)
            .await
            .expect("the server did not stop")
            .unwrap();
        result.expect("the server stopped with an error");
        println!(
            "shutdown under load: {outcomes:?}; drained in {:.2} s",
            shutdown_at.elapsed().as_secs_f64()
        );
        assert!(
            outcomes.get(&Outcome::Completed).copied().unwrap_or(0) >= 2,
            "the running calls did not complete: {outcomes:?}"
        );
    });
}
