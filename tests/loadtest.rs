//! The load driver against an in-process server, with small numbers.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use article_analyzer::config::Limits;
use article_analyzer::server::client::loadtest::{load_requests, run, Plan, Rpc};
use article_analyzer::server::client::Connect;
use serde_json::Value;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parity/corpus")
}

fn plan(addr: String, rpc: Rpc) -> Plan {
    Plan {
        connect: Connect::plain(addr),
        rpc,
        concurrency: 2,
        total: None,
        duration: Duration::from_secs(30),
        rps: None,
        timeout: Duration::from_secs(30),
        requests: load_requests(&[corpus()], true).unwrap(),
    }
}

#[test]
fn a_corpus_directory_gives_one_request_per_text() {
    let requests = load_requests(&[corpus()], true).unwrap();
    assert_eq!(requests.len(), 23);
    assert!(requests.iter().all(|r| !r.text.is_empty()));
    let mode = requests[0]
        .options
        .as_ref()
        .unwrap()
        .stance
        .as_ref()
        .unwrap()
        .mode;
    assert_eq!(
        mode,
        article_analyzer::proto::stance_options::Mode::Disabled as i32
    );
}

#[tokio::test]
async fn stops_at_the_total_and_counts_codes() {
    let server = common::start(Limits::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("requests.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            r#"{"text": "Angela Merkel met Emmanuel Macron in Paris.", "options": {"stance": {"mode": "DISABLED"}}}"#,
            "\n",
            r#"{"text": " "}"#,
            "\n"
        ),
    )
    .unwrap();
    let mut p = plan(server.url(), Rpc::AnalyzeDocument);
    p.total = Some(6);
    p.requests = load_requests(&[jsonl], false).unwrap();
    let report = run(&p).await.expect("load run");
    assert_eq!(report.requests, 6);
    assert_eq!(report.ok, 3);
    assert_eq!(report.errors, 3);
    assert_eq!(report.status_codes.get("OK"), Some(&3));
    assert_eq!(report.status_codes.get("INVALID_ARGUMENT"), Some(&3));
    assert!(report.tokens == 3 * 8, "{report:?}");
    assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.p50 <= report.latency_ms.max);
    assert!(report.rps > 0.0);
}

#[tokio::test]
async fn stops_at_the_duration_under_a_rate_limit() {
    let server = common::start(Limits::default()).await;
    let mut p = plan(server.addr.to_string(), Rpc::Analyze);
    p.duration = Duration::from_millis(1500);
    p.rps = Some(4.0);
    p.requests = vec![article_analyzer::proto::AnalyzeRequest {
        request_id: String::new(),
        text: "The EU condemned Russia.".into(),
        options: None,
    }];
    let report = run(&p).await.expect("load run");
    // Calls start at 0, 0.25, ..., 1.25 s: six, none after the duration.
    assert!(
        (4..=6).contains(&report.requests),
        "{} calls: {report:?}",
        report.requests
    );
    assert_eq!(report.ok, report.requests);
    assert!(report.elapsed_s < 15.0);
}

#[test]
fn the_subcommand_prints_a_json_report() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(common::start(Limits::default()));
    let sample =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/china-russia-friendship.txt");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_article-analyzer"))
        .args([
            "loadtest",
            "--addr",
            &server.url(),
            "--total",
            "3",
            "-c",
            "2",
        ])
        .args(["--no-stance", "--json", "--input"])
        .arg(&sample)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loadtest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["requests"], 3);
    assert_eq!(report["ok"], 3);
    assert_eq!(report["status_codes"]["OK"], 3);
    assert_eq!(report["rpc"], "AnalyzeDocument");
    for key in ["p50", "p90", "p99", "max"] {
        assert!(report["latency_ms"][key].as_f64().unwrap() > 0.0, "{key}");
    }
    drop(server);
}
