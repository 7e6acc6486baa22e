//! Generated protobuf and gRPC types of `article_analyzer.v1`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("article_analyzer.v1");

/// Encoded descriptors of the API, served through gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("article_analyzer_descriptor");
