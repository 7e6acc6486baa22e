//! The `article-analyzer` command line: `serve`, `analyze`, `client` and
//! `loadtest`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{LogConfig, MetricsConfig, ModelConfig, ServerConfig, StanceEngine};
use crate::pipeline::{Analysis, AnalyzeOptions, StanceMode};
use crate::server::client::{self, ClientRequest, Connect};

/// Named entities and per-target stance for news articles, over gRPC.
#[derive(Debug, Parser)]
#[command(name = "article-analyzer", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogConfig,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve(Box<ServeArgs>),
    /// Analyze a file (or stdin) in-process, without a server.
    Analyze(Box<AnalyzeArgs>),
    /// Call a running server's Analyze and print its events as JSON lines.
    Client(ClientArgs),
    /// Drive load against a running server and report throughput, latency
    /// percentiles and status codes.
    Loadtest(LoadtestArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerConfig,
    #[command(flatten)]
    pub models: ModelConfig,
    #[command(flatten)]
    pub metrics: MetricsConfig,
}

/// What to analyze and how; shared by `analyze` and `client`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The article: a file path, or `-` (the default) for stdin.
    #[arg(value_name = "FILE|-", default_value = "-")]
    pub input: PathBuf,
    /// Stance targets, comma separated (default: chosen automatically).
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Keep only these entity labels, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Skip stance.
    #[arg(long, conflicts_with = "targets")]
    pub no_stance: bool,
}

impl RequestArgs {
    fn read_text(&self) -> anyhow::Result<String> {
        let mut bytes = Vec::new();
        if self.input.as_os_str() == "-" {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading stdin")?;
        } else {
            bytes = std::fs::read(&self.input)
                .with_context(|| format!("reading {}", self.input.display()))?;
        }
        String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{} is not UTF-8 text (invalid byte at offset {})",
                self.input.display(),
                e.utf8_error().valid_up_to()
            )
        })
    }

    fn targets(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn options(&self) -> AnalyzeOptions {
        let targets = self.targets();
        AnalyzeOptions {
            entity_labels: self.labels.clone(),
            stance: if self.no_stance {
                StanceMode::Disabled
            } else if targets.is_empty() {
                StanceMode::default()
            } else {
                StanceMode::Explicit(targets)
            },
        }
    }
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Print one JSON object instead of a readable summary.
    #[arg(long, conflicts_with = "dot")]
    pub json: bool,
    /// Print the holder-to-target graph as Graphviz DOT (render it with
    /// `dot -Tpng`).
    #[arg(long)]
    pub dot: bool,
    #[command(flatten)]
    pub models: ModelConfig,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    #[command(flatten)]
    pub connect: Connect,
    /// Request id to send (default: the server makes one up).
    #[arg(long, default_value = "")]
    pub request_id: String,
}

#[derive(Debug, Args)]
pub struct LoadtestArgs {
    #[command(flatten)]
    pub connect: Connect,
    /// Which RPC to call.
    #[arg(long, value_enum, default_value_t = crate::server::client::loadtest::Rpc::AnalyzeDocument)]
    pub rpc: crate::server::client::loadtest::Rpc,
    /// Calls in flight at once.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub concurrency: usize,
    /// Stop after this many calls.
    #[arg(long, short = 'n')]
    pub total: Option<u64>,
    /// Stop starting calls after this many seconds (default: 10, or 300 as a
    /// safety stop when --total is given).
    #[arg(long, short = 'z', value_name = "SECS")]
    pub duration: Option<f64>,
    /// Overall rate limit, calls per second (default: as fast as possible).
    #[arg(long)]
    pub rps: Option<f64>,
    /// Timeout of each call, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Requests: a text file, a directory of .txt files, or a .jsonl file of
    /// requests (proto JSON shape); repeat for more. Sent round-robin.
    #[arg(long = "input", value_name = "FILE|DIR", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Disable stance in every request.
    #[arg(long)]
    pub no_stance: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command line; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = crate::telemetry::init(&cli.log).and_then(|()| run(cli));
    crate::telemetry::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("article-analyzer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Analyze(args) => analyze(*args),
        Command::Client(args) => run_client(args),
        Command::Loadtest(args) => loadtest(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.server.addr)
            .await
            .with_context(|| format!("binding {}", args.server.addr))?;
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        let exporter = if args.metrics.no_metrics {
            None
        } else {
            let addr = args.metrics.metrics_addr;
            let metrics_listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics address {addr}"))?;
            tracing::info!(
                addr = %metrics_listener.local_addr()?,
                "serving metrics at /metrics"
            );
            Some(tokio::spawn(crate::metrics::serve_http(
                metrics_listener,
                metrics.clone(),
            )))
        };
        let models = args.models.clone();
        let serving = crate::server::serve(
            listener,
            crate::server::ServeOptions {
                config: args.server,
                metrics,
            },
            move || crate::backend::load_pipeline(&models),
            crate::server::shutdown_signal(),
        );
        match exporter {
            None => serving.await,
            // A metrics port that can no longer accept stops the server
            // with its error, rather than leaving a replica nobody sees.
            Some(mut exporter) => {
                let result = tokio::select! {
                    result = serving => result,
                    ended = &mut exporter => Err(match ended {
                        Ok(e) => anyhow::Error::new(e).context("the metrics endpoint stopped accepting"),
                        Err(e) => anyhow::Error::new(e).context("the metrics endpoint task failed"),
                    }),
                };
                exporter.abort();
                result
            }
        }
    });
    // Work still on blocking threads (a model load cut short by SIGTERM, an
    // analysis past the drain time) must not hold the exit: the drain
    // already gave it its time.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

fn loadtest(args: LoadtestArgs) -> anyhow::Result<()> {
    let requests = crate::server::client::loadtest::load_requests(&args.inputs, args.no_stance)?;
    let secs = |s: f64, what: &str| {
        if s.is_finite() && s > 0.0 {
            Ok(std::time::Duration::from_secs_f64(s))
        } else {
            Err(anyhow::anyhow!(
                "--{what} must be a positive number of seconds"
            ))
        }
    };
    let duration = match (args.duration, args.total) {
        (Some(d), _) => secs(d, "duration")?,
        (None, None) => std::time::Duration::from_secs(10),
        (None, Some(_)) => std::time::Duration::from_secs(300),
    };
    let plan = crate::server::client::loadtest::Plan {
        connect: args.connect,
        rpc: args.rpc,
        concurrency: args.concurrency.max(1),
        total: args.total,
        duration,
        rps: args.rps,
        timeout: secs(args.timeout, "timeout")?,
        requests,
    };
    let report = runtime()?.block_on(crate::server::client::loadtest::run(&plan))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.human());
    }
    Ok(())
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    let text = args.request.read_text()?;
    let mut models = args.models.clone();
    if args.request.no_stance && models.stance != StanceEngine::Nli {
        // Without stance the learned model would cost only its load (about
        // a quarter of a second); the lexicon engine, embedded, still gives
        // the gazetteer's names that group the entities.
        models.stance = StanceEngine::Lexicon;
    }
    let pipeline = crate::backend::load_pipeline(&models)?;
    let analysis = pipeline
        .analyze_collect(&text, &args.request.options())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&analysis)?);
    } else if args.dot {
        print!(
            "{}",
            crate::relations::render::dot(&analysis.relations, &analysis.stances)
        );
    } else {
        print_readable(&analysis);
    }
    Ok(())
}

fn print_readable(a: &Analysis) {
    for m in &a.models {
        println!(
            "model  {} {} ({}, {})",
            m.name, m.version, m.task, m.backend
        );
    }
    println!("\nentities ({} mentions):", a.entities.len());
    for r in &a.groups {
        let e = &r.entity;
        println!(
            "  {:<4} {:<32} {:<12} x{:<3} salience {:.3}",
            r.id, e.canonical_text, e.label, e.mention_count, r.salience
        );
    }
    if !a.stances.is_empty() {
        println!("\nstance:");
        for s in &a.stances {
            println!(
                "  {:<32} {:<8} {:.2}  ({} evidence)",
                s.target,
                s.label.as_str(),
                s.score,
                s.evidence.len()
            );
        }
    }
    if !a.relations.is_empty() {
        println!("\nwho stands where:");
        print!("{}", crate::relations::render::table(&a.relations));
    }
    if let Some(c) = &a.completed {
        println!(
            "\n{} sentences, {} tokens, {:.1} ms",
            c.sentence_count, c.token_count, c.total_ms
        );
    }
}

fn run_client(args: ClientArgs) -> anyhow::Result<()> {
    let text = args.request.read_text()?;
    let options = args.request.options();
    let request = ClientRequest {
        text,
        request_id: args.request_id,
        entity_labels: options.entity_labels,
        targets: args.request.targets(),
        no_stance: args.request.no_stance,
    };
    runtime()?.block_on(async move {
        client::analyze(&args.connect, &request, |event| println!("{event}"))
            .await
            .with_context(|| format!("calling Analyze on {}", args.connect.addr))
    })
}
