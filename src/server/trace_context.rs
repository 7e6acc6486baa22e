//! W3C Trace Context (`traceparent`) from incoming gRPC metadata.
//!
//! Every build reads the caller's `traceparent` and records its trace id on
//! the request's `analysis` span, so JSON logs can be joined with the
//! caller's trace. With the `otel` feature the header (and `tracestate`) is
//! also extracted by OpenTelemetry's `TraceContextPropagator` and set as the
//! parent of that span, so the exported trace continues the caller's.

use tonic::metadata::MetadataMap;

/// A parsed, valid `traceparent` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub version: u8,
    pub trace_id: u128,
    pub parent_id: u64,
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value as the W3C Trace Context spec says:
    /// `version-traceid-parentid-flags` in lowercase hex; version `ff` and
    /// all-zero ids are invalid; version `00` has exactly four fields, a
    /// later version may append more after a `-`.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        let bytes = value.as_bytes();
        if bytes.len() < 55 || !bytes[..55].is_ascii() {
            return None;
        }
        let (head, rest) = value.split_at(55);
        let version = hex(&head[0..2])? as u8;
        if version == 0xff || &head[2..3] != "-" || &head[35..36] != "-" || &head[52..53] != "-" {
            return None;
        }
        match (version, rest.as_bytes().first()) {
            (_, None) => {}
            (0, Some(_)) => return None,
            (_, Some(b'-')) => {}
            (_, Some(_)) => return None,
        }
        let trace_id = hex(&head[3..35])?;
        let parent_id = hex(&head[36..52])? as u64;
        let flags = hex(&head[53..55])? as u8;
        if trace_id == 0 || parent_id == 0 {
            return None;
        }
        Some(TraceParent {
            version,
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// Lowercase hex only (the spec forbids uppercase).
fn hex(s: &str) -> Option<u128> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

/// The caller's trace context, carried from the RPC handler to the job that
/// runs the analysis.
#[derive(Clone, Default)]
pub struct RemoteParent {
    traceparent: Option<TraceParent>,
    #[cfg(feature = "otel")]
    context: Option<opentelemetry::Context>,
}

impl RemoteParent {
    /// Reads `traceparent` (and, with `otel`, `tracestate`) from `metadata`.
    /// A missing or invalid header gives an empty parent: the request then
    /// starts a new trace.
    pub fn from_metadata(metadata: &MetadataMap) -> Self {
        let traceparent = metadata
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        RemoteParent {
            traceparent,
            #[cfg(feature = "otel")]
            context: traceparent.and_then(|_| otel::extract(metadata)),
        }
    }

    /// Records the trace id on `span` (which must declare a `trace_id`
    /// field) and, with `otel`, makes the caller's span its parent.
    pub fn apply(&self, span: &tracing::Span) {
        if let Some(tp) = &self.traceparent {
            span.record("trace_id", tp.trace_id_hex().as_str());
        }
        #[cfg(feature = "otel")]
        if let Some(context) = &self.context {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            // Fails only when no OpenTelemetry layer is installed (no
            // `--otlp-endpoint`); the span then has no exported parent.
            let _ = span.set_parent(context.clone());
        }
    }
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tonic::metadata::{KeyRef, MetadataMap};

    /// tonic metadata as an OpenTelemetry carrier.
    struct MetadataExtractor<'a>(&'a MetadataMap);

    impl Extractor for MetadataExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0
                .keys()
                .map(|k| match k {
                    KeyRef::Ascii(k) => k.as_str(),
                    KeyRef::Binary(k) => k.as_str(),
                })
                .collect()
        }
    }

    /// The remote span context in `metadata`, if it holds a valid one.
    pub fn extract(metadata: &MetadataMap) -> Option<opentelemetry::Context> {
        let context = TraceContextPropagator::new().extract(&MetadataExtractor(metadata));
        context.span().span_context().is_valid().then_some(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_a_valid_traceparent() {
        let tp = TraceParent::parse(VALID).unwrap();
        assert_eq!(tp.version, 0);
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id, 0x00f0_67aa_0ba9_02b7);
        assert_eq!(tp.flags, 1);
        let unsampled = TraceParent::parse(&VALID.replace("-01", "-00")).unwrap();
        assert_eq!(unsampled.flags, 0);
        // Surrounding blanks are tolerated; a later version may add fields.
        assert!(TraceParent::parse(&format!(" {VALID} ")).is_some());
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        assert_eq!(TraceParent::parse(future).unwrap().version, 0xcc);
    }

    #[test]
    fn rejects_invalid_traceparents() {
        for bad in [
            "",
            "garbage",
            // Uppercase hex.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            // All-zero trace id, all-zero parent id.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Version ff is forbidden; version 00 takes no extra fields.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            // Wrong separators and lengths, non-hex digits.
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Multi-byte text must not split a character.
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn extracts_from_grpc_metadata() {
        let mut metadata = MetadataMap::new();
        assert!(RemoteParent::from_metadata(&metadata).traceparent.is_none());
        metadata.insert("traceparent", "not-a-trace".parse().unwrap());
        assert!(RemoteParent::from_metadata(&metadata).traceparent.is_none());
        metadata.insert("traceparent", VALID.parse().unwrap());
        let parent = RemoteParent::from_metadata(&metadata);
        assert_eq!(
            parent.traceparent.unwrap().trace_id_hex(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        #[cfg(feature = "otel")]
        {
            use opentelemetry::trace::TraceContextExt;
            let context = parent.context.as_ref().expect("extracted context");
            let span = context.span();
            let remote = span.span_context();
            assert!(remote.is_remote());
            assert_eq!(
                remote.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
        }
    }
}
