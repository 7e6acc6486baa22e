//! A load driver for a running server (the `loadtest` subcommand), in the
//! spirit of `ghz`: N concurrent callers share one HTTP/2 connection and
//! send requests round-robin from the inputs, optionally at a fixed overall
//! rate, until a request count or a duration is reached, whichever comes
//! first. Every call has a timeout, so a run always ends by itself, at the
//! latest `duration + timeout` after it starts.
//!
//! The report gives throughput, latency percentiles of the successful calls
//! and the count of every status code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Connect, Connection};
use crate::proto as pb;
use crate::server::code_name;
use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::Value;

/// Which RPC to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Rpc {
    /// Unary `AnalyzeDocument`.
    AnalyzeDocument,
    /// Server-streaming `Analyze`; a call ends with its last event.
    Analyze,
}

impl Rpc {
    pub fn name(self) -> &'static str {
        match self {
            Rpc::AnalyzeDocument => "AnalyzeDocument",
            Rpc::Analyze => "Analyze",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The server, and how to reach it.
    pub connect: Connect,
    pub rpc: Rpc,
    /// Callers at once (at least 1).
    pub concurrency: usize,
    /// Stop after this many calls have started.
    pub total: Option<u64>,
    /// Stop starting calls after this long.
    pub duration: Duration,
    /// Overall rate limit, calls per second.
    pub rps: Option<f64>,
    /// Timeout of each call (sent as `grpc-timeout` and enforced here).
    pub timeout: Duration,
    /// Requests to send, round-robin (at least one).
    pub requests: Vec<pb::AnalyzeRequest>,
}

/// Latency statistics in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rpc: &'static str,
    pub concurrency: usize,
    /// Calls that finished (successfully or not).
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Calls by gRPC status code name, `OK` included.
    pub status_codes: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    /// Finished calls per second.
    pub rps: f64,
    /// Latency of the successful calls.
    pub latency_ms: Latency,
    /// Tokens the server reported for the successful calls.
    pub tokens: u64,
    pub tokens_per_s: f64,
}

impl Report {
    /// A readable summary, several lines.
    pub fn human(&self) -> String {
        let l = &self.latency_ms;
        let mut out = format!(
            "rpc          {}\nconcurrency  {}\nrequests     {} (ok {}, errors {})\n\
             elapsed      {:.2} s\nrps          {:.2}\ntokens/s     {:.0}\n\
             latency ms   mean {:.2}  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\nstatus codes\n",
            self.rpc,
            self.concurrency,
            self.requests,
            self.ok,
            self.errors,
            self.elapsed_s,
            self.rps,
            self.tokens_per_s,
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.max
        );
        for (code, n) in &self.status_codes {
            out.push_str(&format!("  {code:<20} {n}\n"));
        }
        out
    }
}

/// The outcome of one call.
struct Sample {
    code: &'static str,
    latency: Duration,
    tokens: u64,
}

/// Runs `plan` against its server and reports.
pub async fn run(plan: &Plan) -> anyhow::Result<Report> {
    if plan.requests.is_empty() {
        bail!("no requests to send");
    }
    if plan.rps.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rps must be a positive number");
    }
    let connection = Connection::open(&plan.connect).await?;

    let requests = Arc::new(plan.requests.clone());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + plan.duration;
    let mut workers = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let connection = connection.clone();
        let requests = requests.clone();
        let next = next.clone();
        let (total, rps, rpc, timeout) = (plan.total, plan.rps, plan.rpc, plan.timeout);
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if total.is_some_and(|t| i >= t) {
                    break;
                }
                if let Some(rps) = rps {
                    let at = start + Duration::from_secs_f64(i as f64 / rps);
                    if at >= end {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                }
                if Instant::now() >= end {
                    break;
                }
                let request = requests[(i % requests.len() as u64) as usize].clone();
                samples.push(call(&connection, rpc, request, timeout).await);
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await.context("a load worker failed")?);
    }
    let elapsed = start.elapsed();
    Ok(report(plan, &samples, elapsed))
}

async fn call(
    connection: &Connection,
    rpc: Rpc,
    request: pb::AnalyzeRequest,
    timeout: Duration,
) -> Sample {
    let started = Instant::now();
    let mut client = connection.client();
    let work = async {
        let mut request = connection.request(request);
        request.set_timeout(timeout);
        match rpc {
            Rpc::AnalyzeDocument => {
                let response = client.analyze_document(request).await?.into_inner();
                Ok::<u64, tonic::Status>(response.completed.map_or(0, |c| u64::from(c.token_count)))
            }
            Rpc::Analyze => {
                use pb::analyze_event::Event as E;
                let mut stream = client.analyze(request).await?.into_inner();
                let mut tokens = 0;
                while let Some(event) = stream.message().await? {
                    match event.event {
                        Some(E::Completed(c)) => tokens = u64::from(c.token_count),
                        Some(E::Failed(f)) => {
                            return Err(tonic::Status::new(f.code.into(), f.message))
                        }
                        _ => {}
                    }
                }
                Ok(tokens)
            }
        }
    };
    // The server enforces the timeout too; this bounds a server that does not.
    let grace = Duration::from_secs(1);
    let outcome = match tokio::time::timeout(timeout + grace, work).await {
        Ok(result) => result,
        Err(_) => Err(tonic::Status::deadline_exceeded("client-side timeout")),
    };
    let latency = started.elapsed();
    match outcome {
        Ok(tokens) => Sample {
            code: "OK",
            latency,
            tokens,
        },
        Err(status) => Sample {
            code: code_name(status.code()),
            latency,
            tokens: 0,
        },
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(plan: &Plan, samples: &[Sample], elapsed: Duration) -> Report {
    let mut status_codes = BTreeMap::new();
    for s in samples {
        *status_codes.entry(s.code.to_string()).or_insert(0) += 1;
    }
    let mut ok_ms: Vec<f64> = samples
        .iter()
        .filter(|s| s.code == "OK")
        .map(|s| s.latency.as_secs_f64() * 1e3)
        .collect();
    ok_ms.sort_by(f64::total_cmp);
    let tokens: u64 = samples.iter().map(|s| s.tokens).sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let ok = ok_ms.len() as u64;
    Report {
        rpc: plan.rpc.name(),
        concurrency: plan.concurrency.max(1),
        requests: samples.len() as u64,
        ok,
        errors: samples.len() as u64 - ok,
        status_codes,
        elapsed_s: secs,
        rps: samples.len() as f64 / secs,
        latency_ms: Latency {
            mean: if ok_ms.is_empty() {
                0.0
            } else {
                ok_ms.iter().sum::<f64>() / ok_ms.len() as f64
            },
            p50: quantile(&ok_ms, 0.50),
            p90: quantile(&ok_ms, 0.90),
            p99: quantile(&ok_ms, 0.99),
            max: ok_ms.last().copied().unwrap_or(0.0),
        },
        tokens,
        tokens_per_s: tokens as f64 / secs,
    }
}

/// Reads requests from files and directories.
///
/// - a directory: every `*.txt` file in it (sorted by name), one request each;
/// - a `.jsonl` / `.ndjson` file: one request per non-empty line, either a
///   JSON string (the text) or an object in the proto's JSON shape,
///   `{"request_id", "text", "options": {"entity_labels": [...],
///   "stance": {"mode": "DISABLED", "targets": [...], "max_targets": 0}}}`;
/// - any other file: its whole text is one request.
///
/// With `no_stance`, every request gets stance mode DISABLED.
pub fn load_requests(
    paths: &[PathBuf],
    no_stance: bool,
) -> anyhow::Result<Vec<pb::AnalyzeRequest>> {
    let mut requests = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "txt"))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{} has no .txt files", path.display());
            }
            for file in files {
                requests.push(text_request(read_text(&file)?));
            }
        } else if path
            .extension()
            .is_some_and(|x| x == "jsonl" || x == "ndjson")
        {
            let text = read_text(path)?;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value: Value = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
                requests.push(
                    json_request(&value)
                        .with_context(|| format!("{}:{}", path.display(), n + 1))?,
                );
            }
        } else {
            requests.push(text_request(read_text(path)?));
        }
    }
    if requests.is_empty() {
        bail!("the inputs hold no requests");
    }
    if no_stance {
        for r in &mut requests {
            let options = r.options.get_or_insert_with(Default::default);
            options.stance = Some(pb::StanceOptions {
                mode: pb::stance_options::Mode::Disabled as i32,
                targets: Vec::new(),
                max_targets: 0,
            });
        }
    }
    Ok(requests)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn text_request(text: String) -> pb::AnalyzeRequest {
    pb::AnalyzeRequest {
        request_id: String::new(),
        text,
        options: None,
    }
}

fn json_request(value: &Value) -> anyhow::Result<pb::AnalyzeRequest> {
    if let Some(text) = value.as_str() {
        return Ok(text_request(text.to_string()));
    }
    let Some(text) = value.get("text").and_then(Value::as_str) else {
        bail!("a request needs a \"text\" string");
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let options = value.get("options");
    let stance = options.and_then(|o| o.get("stance"));
    let mode = match stance.and_then(|s| s.get("mode")) {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0) as i32,
        Some(Value::String(s)) => pb::stance_options::Mode::from_str_name(s)
            .with_context(|| format!("unknown stance mode {s:?}"))?
            as i32,
        Some(other) => bail!("bad stance mode {other}"),
    };
    Ok(pb::AnalyzeRequest {
        request_id: value
            .get("request_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        text: text.to_string(),
        options: options.map(|o| pb::AnalyzeOptions {
            entity_labels: strings(o.get("entity_labels")),
            stance: stance.map(|s| pb::StanceOptions {
                mode,
                targets: strings(s.get("targets")),
                max_targets: s.get("max_targets").and_then(Value::as_u64).unwrap_or(0) as u32,
            }),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.9), 7.0);
        assert_eq!(quantile(&[], 0.9), 0.0);
    }

    #[test]
    fn json_lines_take_the_proto_shape() {
        let v: Value = serde_json::from_str(
            r#"{"request_id":"a","text":"Hi.","options":{"entity_labels":["GPE"],"stance":{"mode":"EXPLICIT","targets":["EU"]}}}"#,
        )
        .unwrap();
        let r = json_request(&v).unwrap();
        assert_eq!(r.request_id, "a");
        let o = r.options.unwrap();
        assert_eq!(o.entity_labels, ["GPE"]);
        let s = o.stance.unwrap();
        assert_eq!(s.mode, pb::stance_options::Mode::Explicit as i32);
        assert_eq!(s.targets, ["EU"]);
        assert!(json_request(&serde_json::json!({"options": {}})).is_err());
        assert_eq!(
            json_request(&serde_json::json!("Text.")).unwrap().text,
            "Text."
        );
    }
}
