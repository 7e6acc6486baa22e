//! Logging and spans through `tracing`.
//!
//! Logs go to stderr so that stdout stays clean for the JSON the CLI prints.
//! Article text is never logged: spans carry request ids and sizes only.
//!
//! An analysis runs in an `analysis` span (request id, text size, the
//! caller's `trace_id`) with `queue`, `ner` (tokenizer, recognizer and, when
//! loaded, the parser), `grouping` and `stance` spans inside. With the `otel`
//! build feature and `--otlp-endpoint`, these spans are also exported as
//! OpenTelemetry traces over OTLP/gRPC.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Safe to call more than once (later calls
/// do nothing), which tests rely on. An invalid `--log` filter is an error
/// naming it, not a quiet fall back to `info`.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let filter = || {
        EnvFilter::try_new(&config.log)
            .map_err(|e| anyhow::anyhow!("invalid --log filter {:?}: {e}", config.log))
    };
    let filter = filter()?;
    #[cfg(feature = "otel")]
    if let Some(endpoint) = &config.otlp_endpoint {
        return match otel::init(config, endpoint, filter) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.context(format!("exporting traces to {endpoint}"))),
        };
    }
    init_fmt(config, filter);
    Ok(())
}

fn init_fmt(config: &LogConfig, filter: EnvFilter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Flushes and stops the trace exporter, if one runs; call before exiting.
pub fn shutdown() {
    #[cfg(feature = "otel")]
    otel::shutdown();
}

#[cfg(feature = "otel")]
mod otel {
    use std::sync::OnceLock;

    use anyhow::Context;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    use crate::config::{LogConfig, LogFormat};

    /// The exporter's own runtime: tracing starts before (and outside) the
    /// server's runtime, and the `analyze` command has none.
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    pub fn init(config: &LogConfig, endpoint: &str, filter: EnvFilter) -> anyhow::Result<()> {
        if PROVIDER.get().is_some() {
            return Ok(());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .context("starting the exporter runtime")?;
        let provider = {
            // The tonic channel and the batch task start on this runtime.
            let _guard = runtime.enter();
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .context("building the OTLP exporter")?;
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder_empty()
                        .with_service_name(config.otel_service_name.clone())
                        .build(),
                )
                .build()
        };
        let tracer = provider.tracer(env!("CARGO_PKG_NAME"));
        let fmt = match config.log_format {
            LogFormat::Human => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(std::io::stderr)
                .boxed(),
        };
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            .try_init()
            .is_ok();
        if installed {
            let _ = RUNTIME.set(runtime);
            let _ = PROVIDER.set(provider);
            tracing::info!(endpoint, "exporting traces over OTLP/gRPC");
        } else {
            // Another subscriber is already installed (tests): export nothing.
            let _ = provider.shutdown();
            runtime.shutdown_background();
        }
        Ok(())
    }

    pub fn shutdown() {
        if let Some(provider) = PROVIDER.get() {
            if let Err(e) = provider.shutdown() {
                eprintln!("article-analyzer: flushing traces: {e}");
            }
        }
    }
}
