//! A small gRPC client: the `client` subcommand and a reference for callers.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{json, Value};
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

/// How to reach a server that uses TLS and/or bearer tokens.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    /// PEM CA certificate to trust (TLS when set, or when the address is
    /// `https://`).
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key, for mutual TLS.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of
    /// the address).
    pub domain: Option<String>,
    /// Sent as `authorization: Bearer <token>`.
    pub auth_token: Option<String>,
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// A channel to `addr`, over TLS when `security` asks for it.
pub async fn connect(addr: &str, security: &ClientSecurity) -> anyhow::Result<Channel> {
    let tls_wanted = security.ca.is_some() || security.cert.is_some() || addr.starts_with("https:");
    let addr = match (tls_wanted, addr.strip_prefix("http://")) {
        (true, Some(rest)) => format!("https://{rest}"),
        _ => addr.to_string(),
    };
    let mut endpoint = Channel::from_shared(addr)?;
    if tls_wanted {
        // No system roots (tonic's `tls-roots` is off): trust `--ca` only.
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &security.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&security.cert, &security.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => anyhow::bail!("a client certificate needs both --cert and --key"),
        }
        if let Some(domain) = &security.domain {
            tls = tls.domain_name(domain.clone());
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint.connect().await?)
}

/// Calls `Analyze` on `addr` and hands each event, as JSON, to `on_event`.
pub async fn analyze(
    addr: &str,
    request: &ClientRequest,
    on_event: impl FnMut(Value),
) -> anyhow::Result<()> {
    analyze_with(addr, &ClientSecurity::default(), request, on_event).await
}

/// [`analyze`] over TLS and/or with a bearer token.
pub async fn analyze_with(
    addr: &str,
    security: &ClientSecurity,
    request: &ClientRequest,
    mut on_event: impl FnMut(Value),
) -> anyhow::Result<()> {
    let channel = connect(addr, security).await?;
    let mut client = ArticleAnalyzerClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let mut call = tonic::Request::new(request.to_proto());
    if let Some(token) = &security.auth_token {
        let value = format!("Bearer {}", token.trim())
            .parse()
            .context("the auth token cannot be sent in a header")?;
        call.metadata_mut().insert("authorization", value);
    }
    let mut stream = client.analyze(call).await?.into_inner();
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
                "canonical_text": e.canonical_text,
                "label": e.label,
                "mention_count": e.mention_count,
                "spans": e.spans.iter().map(|s| span_json(Some(s))).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        Some(E::Stance(s)) => json!({
            "type": "stance",
            "target": s.target,
            "label": pb::StanceLabel::try_from(s.label)
                .map(|l| l.as_str_name())
                .unwrap_or("STANCE_LABEL_UNSPECIFIED"),
            "score": s.score,
            "probabilities": {"FAVOR": s.favor, "AGAINST": s.against, "NEUTRAL": s.neutral},
            "evidence": s.evidence.iter().map(|e| with_span(
                json!({"text": e.text, "contribution": e.contribution, "reason": e.reason}),
                e.span.as_ref(),
            )).collect::<Vec<_>>(),
        }),
        Some(E::Completed(c)) => json!({
            "type": "completed",
            "sentence_count": c.sentence_count,
            "token_count": c.token_count,
            "mention_count": c.mention_count,
            "entity_count": c.entity_count,
            "stance_count": c.stance_count,
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
