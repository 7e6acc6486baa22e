//! Prometheus metrics: the registry and its series here, the HTTP endpoint
//! in [`http`], reading an exposition back (tests, the load driver) in
//! [`scrape`].
//!
//! [`Metrics`] owns its own registry (not the process-wide default one), so
//! several servers in one process, as in the tests, each count their own.
//! The names and labels:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `article_analyzer_rpc_requests_total` | counter | `rpc`, `code` (gRPC status name, `OK`, `INVALID_ARGUMENT`, ...) |
//! | `article_analyzer_rpc_duration_seconds` | histogram | `rpc` (until the last message of the call) |
//! | `article_analyzer_rpc_in_flight` | gauge | `rpc` |
//! | `article_analyzer_queue_wait_seconds` | histogram | admitted analyses, time until a worker took them |
//! | `article_analyzer_queue_depth` | gauge | admitted analyses waiting for a worker |
//! | `article_analyzer_workers_busy` | gauge | analyses running on a worker |
//! | `article_analyzer_analyses_total` | counter | `outcome`: `ok`, `error`, `cancelled` |
//! | `article_analyzer_tokens_total` | counter | tokens of completed analyses |
//! | `article_analyzer_batch_documents` | histogram | documents per recognizer batch |
//! | `article_analyzer_connections_refused_total` | counter | `reason`: `max_connections`, `out_of_descriptors` |
//!
//! Nothing here knows about gRPC: the server names the RPCs and codes.

mod http;
mod scrape;

pub use http::{serve_http, MAX_CONNECTIONS as MAX_SCRAPERS};
pub use scrape::{sample, scrape};

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

const NS: &str = "article_analyzer";

/// Latency buckets, seconds: 1 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    rpc_requests: IntCounterVec,
    rpc_duration: HistogramVec,
    rpc_in_flight: IntGaugeVec,
    queue_wait: Histogram,
    queue_depth: IntGauge,
    workers_busy: IntGauge,
    analyses: IntCounterVec,
    tokens: IntCounter,
    batch_documents: Histogram,
    connections_refused: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(NS);
        let hopts = |name: &str, help: &str, buckets: &[f64]| {
            HistogramOpts::new(name, help)
                .namespace(NS)
                .buckets(buckets.to_vec())
        };
        let rpc_requests = IntCounterVec::new(
            opts(
                "rpc_requests_total",
                "Finished RPCs by method and gRPC status code.",
            ),
            &["rpc", "code"],
        )
        .expect("valid metric");
        let rpc_duration = HistogramVec::new(
            hopts(
                "rpc_duration_seconds",
                "RPC latency by method, from the call's start to its last message.",
                LATENCY_BUCKETS,
            ),
            &["rpc"],
        )
        .expect("valid metric");
        let rpc_in_flight = IntGaugeVec::new(
            opts("rpc_in_flight", "RPCs in progress by method."),
            &["rpc"],
        )
        .expect("valid metric");
        let queue_wait = Histogram::with_opts(hopts(
            "queue_wait_seconds",
            "Time an admitted analysis waited for a worker.",
            LATENCY_BUCKETS,
        ))
        .expect("valid metric");
        let queue_depth = IntGauge::with_opts(opts(
            "queue_depth",
            "Admitted analyses waiting for a worker.",
        ))
        .expect("valid metric");
        let workers_busy =
            IntGauge::with_opts(opts("workers_busy", "Analyses running on a worker thread."))
                .expect("valid metric");
        let analyses = IntCounterVec::new(
            opts(
                "analyses_total",
                "Analyses that ran on a worker, by outcome (ok, error, cancelled).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let tokens =
            IntCounter::with_opts(opts("tokens_total", "Tokens of the completed analyses."))
                .expect("valid metric");
        let batch_documents = Histogram::with_opts(hopts(
            "batch_documents",
            "Documents per entity-recognizer batch.",
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
        ))
        .expect("valid metric");
        let connections_refused = IntCounterVec::new(
            opts(
                "connections_refused_total",
                "Connections closed on accept (max_connections) or not accepted \
                 for lack of descriptors (out_of_descriptors, counted per retry).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for c in [
            Box::new(rpc_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rpc_duration.clone()),
            Box::new(rpc_in_flight.clone()),
            Box::new(queue_wait.clone()),
            Box::new(queue_depth.clone()),
            Box::new(workers_busy.clone()),
            Box::new(analyses.clone()),
            Box::new(tokens.clone()),
            Box::new(batch_documents.clone()),
            Box::new(connections_refused.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            rpc_requests,
            rpc_duration,
            rpc_in_flight,
            queue_wait,
            queue_depth,
            workers_busy,
            analyses,
            tokens,
            batch_documents,
            connections_refused,
        }
    }

    /// Counts one call of `rpc` refused before its handler ran.
    pub fn call_refused(&self, rpc: &'static str, code: &'static str) {
        self.rpc_requests.with_label_values(&[rpc, code]).inc();
    }

    /// Counts one connection refused at the accept loop.
    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused.with_label_values(&[reason]).inc();
    }

    /// Starts timing one call of `rpc`; it counts as in flight until the
    /// returned guard finishes or drops.
    pub fn start_call(self: &Arc<Self>, rpc: &'static str) -> CallGuard {
        self.rpc_in_flight.with_label_values(&[rpc]).inc();
        CallGuard {
            metrics: self.clone(),
            rpc,
            started: Instant::now(),
            done: false,
        }
    }

    /// An analysis entered the queue; it leaves it when the guard drops.
    pub fn enter_queue(self: &Arc<Self>) -> QueueGuard {
        self.queue_depth.inc();
        QueueGuard {
            metrics: self.clone(),
            entered: Instant::now(),
        }
    }

    /// An analysis runs on a worker until the guard drops.
    pub fn worker_busy(self: &Arc<Self>) -> BusyGuard {
        self.workers_busy.inc();
        BusyGuard {
            metrics: self.clone(),
        }
    }

    /// Counts one analysis that ran on a worker.
    pub fn analysis_finished(&self, outcome: Outcome, tokens: usize) {
        self.analyses.with_label_values(&[outcome.as_str()]).inc();
        self.tokens.inc_by(tokens as u64);
    }

    /// Records the size of one recognizer batch.
    pub fn observe_batch(&self, documents: usize) {
        self.batch_documents.observe(documents as f64);
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail for valid metrics");
        out
    }

    /// The registry, to add process-specific collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// How an analysis on a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One call in flight. [`CallGuard::finish`] records its status code; a guard
/// dropped without it (the caller went away) records `CANCELLED`.
#[derive(Debug)]
pub struct CallGuard {
    metrics: Arc<Metrics>,
    rpc: &'static str,
    started: Instant,
    done: bool,
}

impl CallGuard {
    /// Records the call as ended with status `code` (such as `OK`).
    pub fn finish(mut self, code: &str) {
        self.record(code);
    }

    fn record(&mut self, code: &str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let m = &self.metrics;
        m.rpc_in_flight.with_label_values(&[self.rpc]).dec();
        m.rpc_requests.with_label_values(&[self.rpc, code]).inc();
        m.rpc_duration
            .with_label_values(&[self.rpc])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.record("CANCELLED");
    }
}

/// An analysis waiting for a worker.
#[derive(Debug)]
pub struct QueueGuard {
    metrics: Arc<Metrics>,
    entered: Instant,
}

impl QueueGuard {
    /// The analysis got a worker: records how long it waited.
    pub fn dequeued(self) -> Duration {
        let waited = self.entered.elapsed();
        self.metrics.queue_wait.observe(waited.as_secs_f64());
        waited
    }
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        self.metrics.queue_depth.dec();
    }
}

/// An analysis running on a worker.
#[derive(Debug)]
pub struct BusyGuard {
    metrics: Arc<Metrics>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.metrics.workers_busy.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_count_by_code_and_cancel_on_drop() {
        let m = Arc::new(Metrics::new());
        m.start_call("Analyze").finish("OK");
        m.start_call("Analyze").finish("INVALID_ARGUMENT");
        let g = m.start_call("Analyze");
        let text = m.render();
        assert_eq!(
            sample(&text, "article_analyzer_rpc_in_flight{rpc=\"Analyze\"}"),
            Some(1.0)
        );
        drop(g);
        let text = m.render();
        for code in ["OK", "INVALID_ARGUMENT", "CANCELLED"] {
            let series =
                format!("article_analyzer_rpc_requests_total{{code=\"{code}\",rpc=\"Analyze\"}}");
            assert_eq!(sample(&text, &series), Some(1.0), "{series}\n{text}");
        }
        assert_eq!(
            sample(&text, "article_analyzer_rpc_in_flight{rpc=\"Analyze\"}"),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                "article_analyzer_rpc_duration_seconds_count{rpc=\"Analyze\"}"
            ),
            Some(3.0)
        );
    }

    #[test]
    fn queue_and_workers_gauges_return_to_zero() {
        let m = Arc::new(Metrics::new());
        let q = m.enter_queue();
        assert_eq!(
            sample(&m.render(), "article_analyzer_queue_depth"),
            Some(1.0)
        );
        q.dequeued();
        let busy = m.worker_busy();
        m.analysis_finished(Outcome::Ok, 42);
        drop(busy);
        let text = m.render();
        assert_eq!(sample(&text, "article_analyzer_queue_depth"), Some(0.0));
        assert_eq!(sample(&text, "article_analyzer_workers_busy"), Some(0.0));
        assert_eq!(sample(&text, "article_analyzer_tokens_total"), Some(42.0));
        assert_eq!(
            sample(&text, "article_analyzer_queue_wait_seconds_count"),
            Some(1.0)
        );
    }
}
