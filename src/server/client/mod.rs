//! The gRPC client room: how to reach a server ([`Connect`], shared by the
//! `client` and `loadtest` subcommands, so both speak TLS, mutual TLS and
//! bearer tokens), the `client` subcommand's call, and the load driver
//! ([`loadtest`]).

pub mod loadtest;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::proto as pb;
use crate::proto::article_analyzer_client::ArticleAnalyzerClient;

/// What to ask the server.
#[derive(Debug, Clone, Default)]
pub struct ClientRequest {
    pub text: String,
    pub request_id: String,
    pub entity_labels: Vec<String>,
    /// Explicit stance targets; empty means automatic.
    pub targets: Vec<String>,
    pub no_stance: bool,
}

impl ClientRequest {
    pub fn to_proto(&self) -> pb::AnalyzeRequest {
        use pb::stance_options::Mode;
        let (mode, targets) = if self.no_stance {
            (Mode::Disabled, Vec::new())
        } else if self.targets.is_empty() {
            (Mode::Automatic, Vec::new())
        } else {
            (Mode::Explicit, self.targets.clone())
        };
        pb::AnalyzeRequest {
            request_id: self.request_id.clone(),
            text: self.text.clone(),
            options: Some(pb::AnalyzeOptions {
                entity_labels: self.entity_labels.clone(),
                stance: Some(pb::StanceOptions {
                    mode: mode as i32,
                    targets,
                    max_targets: 0,
                }),
            }),
        }
    }
}

/// How to reach a server: its address, TLS and a bearer token.
#[derive(Debug, Clone, Default, Args)]
pub struct Connect {
    /// Server address: `http://host:port`, `https://host:port` or `host:port`.
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_CLIENT_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,
    /// PEM CA certificate to trust; connects with TLS (as does an
    /// `https://` address).
    #[arg(long, env = "ARTICLE_ANALYZER_CLIENT_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS (with `--key`).
    #[arg(long, env = "ARTICLE_ANALYZER_CLIENT_CERT", value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(long, env = "ARTICLE_ANALYZER_CLIENT_KEY", value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// Name the server certificate must carry (default: the address's host).
    #[arg(long, env = "ARTICLE_ANALYZER_CLIENT_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
    /// Bearer token to send (prefer the environment variable: flags show in
    /// process listings).
    #[arg(
        long,
        env = "ARTICLE_ANALYZER_CLIENT_AUTH_TOKEN",
        hide_env_values = true
    )]
    pub auth_token: Option<String>,
}

impl Connect {
    /// Plaintext to `addr`, no token.
    pub fn plain(addr: impl Into<String>) -> Self {
        Connect {
            addr: addr.into(),
            ..Connect::default()
        }
    }
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// An open connection to a server, and the credentials its calls carry.
#[derive(Debug, Clone)]
pub struct Connection {
    channel: Channel,
    authorization: Option<AsciiMetadataValue>,
}

impl Connection {
    /// Connects as `connect` says: TLS when it names a CA or a client
    /// certificate or the address is `https://`; no system roots (tonic's
    /// `tls-roots` is off), so `--ca` is the only trust.
    pub async fn open(connect: &Connect) -> anyhow::Result<Connection> {
        let addr = if connect.addr.contains("://") {
            connect.addr.clone()
        } else {
            format!("http://{}", connect.addr)
        };
        let tls_wanted =
            connect.ca.is_some() || connect.cert.is_some() || addr.starts_with("https:");
        let addr = match (tls_wanted, addr.strip_prefix("http://")) {
            (true, Some(rest)) => format!("https://{rest}"),
            _ => addr,
        };
        let authorization = connect
            .auth_token
            .as_ref()
            .map(|token| {
                format!("Bearer {}", token.trim())
                    .parse::<AsciiMetadataValue>()
                    .context("the auth token cannot be sent in a header")
            })
            .transpose()?;
        let mut endpoint = Channel::from_shared(addr.clone())
            .with_context(|| format!("bad address {addr}"))?
            .connect_timeout(std::time::Duration::from_secs(10));
        if tls_wanted {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &connect.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            match (&connect.cert, &connect.key) {
                (Some(cert), Some(key)) => {
                    tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
                }
                (None, None) => {}
                _ => anyhow::bail!("a client certificate needs both --cert and --key"),
            }
            if let Some(domain) = &connect.tls_domain {
                tls = tls.domain_name(domain.clone());
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(Connection {
            channel,
            authorization,
        })
    }

    /// A client on this connection, with no message size limit of its own
    /// (the server's limits apply).
    pub fn client(&self) -> ArticleAnalyzerClient<Channel> {
        ArticleAnalyzerClient::new(self.channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    /// `message` as a call carrying this connection's credentials.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }
}

/// Calls `Analyze` and hands each event, as JSON, to `on_event`.
pub async fn analyze(
    connect: &Connect,
    request: &ClientRequest,
    mut on_event: impl FnMut(Value),
) -> anyhow::Result<()> {
    let connection = Connection::open(connect).await?;
    let mut stream = connection
        .client()
        .analyze(connection.request(request.to_proto()))
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        on_event(event_json(&event));
    }
    Ok(())
}

fn span_json(span: Option<&pb::Span>) -> Value {
    let s = span.cloned().unwrap_or_default();
    json!({
        "start_char": s.start_char,
        "end_char": s.end_char,
        "start_byte": s.start_byte,
        "end_byte": s.end_byte,
    })
}

fn with_span(mut object: Value, span: Option<&pb::Span>) -> Value {
    if let (Value::Object(o), Value::Object(s)) = (&mut object, span_json(span)) {
        o.extend(s);
    }
    object
}

/// One event as a JSON object: `{"request_id", "type", ...fields}`.
fn label_name(label: i32) -> &'static str {
    pb::StanceLabel::try_from(label)
        .map(|l| l.as_str_name())
        .unwrap_or("STANCE_LABEL_UNSPECIFIED")
}

pub fn event_json(event: &pb::AnalyzeEvent) -> Value {
    use pb::analyze_event::Event as E;
    let body = match &event.event {
        Some(E::Started(s)) => json!({
            "type": "started",
            "models": s.models.iter().map(|m| json!({
                "task": m.task, "name": m.name, "version": m.version,
                "backend": m.backend, "labels": m.labels, "components": m.components,
            })).collect::<Vec<_>>(),
        }),
        Some(E::Sentence(s)) => with_span(
            json!({
                "type": "sentence",
                "index": s.index,
                "text": s.text,
                "entities": s.entities.iter().map(|e| with_span(
                    json!({"text": e.text, "label": e.label}), e.span.as_ref()
                )).collect::<Vec<_>>(),
            }),
            s.span.as_ref(),
        ),
        Some(E::Entities(es)) => json!({
            "type": "entities",
            "entities": es.entities.iter().map(|e| json!({
                "id": e.id,
                "canonical_text": e.canonical_text,
                "label": e.label,
                "mention_count": e.mention_count,
                "aliases": e.aliases,
                "uncertain_aliases": e.uncertain_aliases,
                "salience": e.salience,
                "spans": e.spans.iter().map(|s| span_json(Some(s))).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        Some(E::Stance(s)) => json!({
            "type": "stance",
            "target": s.target,
            "entity_id": s.entity_id,
            "label": label_name(s.label),
            "score": s.score,
            "mentions": s.mentions.iter().map(|m| with_span(
                json!({"label": label_name(m.label), "score": m.score}),
                m.span.as_ref(),
            )).collect::<Vec<_>>(),
            "probabilities": {"FAVOR": s.favor, "AGAINST": s.against, "NEUTRAL": s.neutral},
            "evidence": s.evidence.iter().map(|e| with_span(
                json!({"text": e.text, "contribution": e.contribution, "reason": e.reason}),
                e.span.as_ref(),
            )).collect::<Vec<_>>(),
        }),
        Some(E::Relations(rs)) => json!({
            "type": "relations",
            "relations": rs.relations.iter().map(|r| json!({
                "holder_id": r.holder_id,
                "holder": r.holder,
                "target": r.target,
                "target_entity_id": r.target_entity_id,
                "label": label_name(r.label),
                "score": r.score,
                "evidence": r.evidence.iter().map(|e| with_span(
                    json!({"text": e.text, "contribution": e.contribution, "reason": e.reason}),
                    e.span.as_ref(),
                )).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        Some(E::Completed(c)) => json!({
            "type": "completed",
            "sentence_count": c.sentence_count,
            "token_count": c.token_count,
            "mention_count": c.mention_count,
            "entity_count": c.entity_count,
            "stance_count": c.stance_count,
            "relation_count": c.relation_count,
            "timings_ms": c.timings.iter().map(|t| (t.stage.clone(), json!(t.ms)))
                .collect::<serde_json::Map<_, _>>(),
            "total_ms": c.total_ms,
        }),
        Some(E::Failed(f)) => json!({
            "type": "failed",
            "code": f.code,
            "message": f.message,
        }),
        None => json!({"type": "unknown"}),
    };
    let mut out = json!({"request_id": event.request_id});
    if let (Value::Object(o), Value::Object(b)) = (&mut out, body) {
        o.extend(b);
    }
    out
}
