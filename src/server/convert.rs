//! Mapping between pipeline values and protobuf messages.

use tonic::Status;

use crate::pipeline::{self as p, AnalysisError};
use crate::proto as pb;
use crate::text::TextSpan;

pub fn span(s: &TextSpan) -> pb::Span {
    pb::Span {
        start_char: s.start_char as u32,
        end_char: s.end_char as u32,
        start_byte: s.start_byte as u32,
        end_byte: s.end_byte as u32,
    }
}

pub fn model(m: &p::ModelInfo) -> pb::ModelInfo {
    pb::ModelInfo {
        task: m.task.clone(),
        name: m.name.clone(),
        version: m.version.clone(),
        backend: m.backend.clone(),
        labels: m.labels.clone(),
        components: m.components.clone(),
        sha256: m.sha256.clone().unwrap_or_default(),
        training_data: m.training_data.clone().unwrap_or_default(),
    }
}

pub fn sentence(s: &p::Sentence) -> pb::Sentence {
    pb::Sentence {
        index: s.index as u32,
        span: Some(span(&s.span)),
        text: s.text.clone(),
        entities: s
            .mentions
            .iter()
            .map(|m| pb::EntityMention {
                text: m.text.clone(),
                label: m.label.clone(),
                span: Some(span(&m.span)),
            })
            .collect(),
    }
}

pub fn entity(r: &p::Referent) -> pb::Entity {
    let e = &r.entity;
    pb::Entity {
        canonical_text: e.canonical_text.clone(),
        label: e.label.clone(),
        mention_count: e.mention_count as u32,
        spans: e.spans.iter().map(span).collect(),
        id: r.id.to_string(),
        aliases: r.aliases.clone(),
        uncertain_aliases: r.uncertain_aliases.clone(),
        salience: r.salience,
    }
}

fn label(l: p::StanceLabel) -> i32 {
    let label = match l {
        p::StanceLabel::Favor => pb::StanceLabel::Favor,
        p::StanceLabel::Against => pb::StanceLabel::Against,
        p::StanceLabel::Neutral => pb::StanceLabel::Neutral,
    };
    label as i32
}

fn probabilities(p: &p::Probabilities) -> pb::Probabilities {
    pb::Probabilities {
        favor: p.favor,
        against: p.against,
        neutral: p.neutral,
    }
}

fn evidence(e: &p::Evidence) -> pb::Evidence {
    pb::Evidence {
        span: Some(span(&e.span)),
        text: e.text.clone(),
        contribution: e.contribution,
        reason: e.reason.clone(),
        mentions: e.mentions.iter().map(span).collect(),
        model: e.model.as_ref().map(probabilities),
    }
}

pub fn stance(s: &p::Stance) -> pb::Stance {
    pb::Stance {
        target: s.target.clone(),
        label: label(s.label),
        score: s.score,
        favor: s.probabilities.favor,
        against: s.probabilities.against,
        neutral: s.probabilities.neutral,
        evidence: s.evidence.iter().map(evidence).collect(),
        entity_id: s
            .entity_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        mentions: s
            .mentions
            .iter()
            .map(|m| pb::MentionSentiment {
                span: Some(span(&m.span)),
                label: label(m.label),
                score: m.score,
                probabilities: Some(probabilities(&m.probabilities)),
            })
            .collect(),
    }
}

pub fn relation(r: &p::Relation) -> pb::Relation {
    pb::Relation {
        holder_id: r.holder_id.to_string(),
        holder: r.holder.clone(),
        target: r.target.name().to_string(),
        target_entity_id: r
            .target
            .entity_id()
            .map(ToString::to_string)
            .unwrap_or_default(),
        label: label(r.label),
        score: r.score,
        evidence: r.evidence.iter().map(evidence).collect(),
    }
}

pub fn completed(s: &p::Summary) -> pb::Completed {
    pb::Completed {
        sentence_count: s.sentence_count as u32,
        token_count: s.token_count as u32,
        mention_count: s.mention_count as u32,
        entity_count: s.entity_count as u32,
        stance_count: s.stance_count as u32,
        relation_count: s.relation_count as u32,
        timings: s
            .timings
            .iter()
            .map(|t| pb::StageTiming {
                stage: t.stage.clone(),
                ms: t.ms,
            })
            .collect(),
        total_ms: s.total_ms,
    }
}

/// One pipeline event as a protobuf event of request `request_id`.
pub fn event(request_id: &str, e: &p::Event) -> pb::AnalyzeEvent {
    use pb::analyze_event::Event as E;
    let event = match e {
        p::Event::Started(models) => E::Started(pb::Started {
            models: models.iter().map(model).collect(),
        }),
        p::Event::Sentence(s) => E::Sentence(sentence(s)),
        p::Event::Entities(es) => E::Entities(pb::Entities {
            entities: es.iter().map(entity).collect(),
        }),
        p::Event::Stance(s) => E::Stance(stance(s)),
        p::Event::Relations(rs) => E::Relations(pb::Relations {
            relations: rs.iter().map(relation).collect(),
        }),
        p::Event::Completed(s) => E::Completed(completed(s)),
    };
    pb::AnalyzeEvent {
        request_id: request_id.to_string(),
        event: Some(event),
    }
}

/// Request options from protobuf, rejecting values we do not know.
pub fn options(o: Option<&pb::AnalyzeOptions>) -> Result<p::AnalyzeOptions, Status> {
    let Some(o) = o else {
        return Ok(p::AnalyzeOptions::default());
    };
    let stance = match &o.stance {
        None => p::StanceMode::default(),
        Some(s) => {
            let mode = pb::stance_options::Mode::try_from(s.mode)
                .map_err(|_| Status::invalid_argument(format!("unknown stance mode {}", s.mode)))?;
            match mode {
                pb::stance_options::Mode::Unspecified | pb::stance_options::Mode::Automatic => {
                    if !s.targets.is_empty() {
                        return Err(Status::invalid_argument(
                            "stance targets are given but the mode is not EXPLICIT",
                        ));
                    }
                    p::StanceMode::Automatic {
                        max_targets: s.max_targets as usize,
                    }
                }
                pb::stance_options::Mode::Explicit => p::StanceMode::Explicit(s.targets.clone()),
                pb::stance_options::Mode::Disabled => p::StanceMode::Disabled,
            }
        }
    };
    Ok(p::AnalyzeOptions {
        entity_labels: o.entity_labels.clone(),
        stance,
    })
}

/// The gRPC status for a pipeline error.
pub fn status(e: &AnalysisError) -> Status {
    match e {
        AnalysisError::InvalidArgument(m) => Status::invalid_argument(m.clone()),
        AnalysisError::LimitExceeded(m) => Status::resource_exhausted(m.clone()),
        AnalysisError::Cancelled => Status::cancelled("the analysis was cancelled"),
        AnalysisError::Model(m) => Status::internal(m.clone()),
        AnalysisError::Overloaded(m) => Status::resource_exhausted(m.clone()),
        AnalysisError::DeadlineExceeded(m) => Status::deadline_exceeded(*m),
        AnalysisError::ShuttingDown => {
            Status::unavailable("the server is shutting down; retry on another replica")
        }
    }
}

/// A per-request failure inside `AnalyzeStream`.
pub fn failed(request_id: &str, status: &Status) -> pb::AnalyzeEvent {
    pb::AnalyzeEvent {
        request_id: request_id.to_string(),
        event: Some(pb::analyze_event::Event::Failed(pb::Failed {
            code: status.code() as i32,
            message: status.message().to_string(),
        })),
    }
}
