//! Compiles `proto/` with tonic-build. protoc comes from the `protoc-bin-vendored`
//! crate unless `PROTOC` is set, so a fresh machine needs nothing installed.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_build::configure()
        .file_descriptor_set_path(out.join("article_analyzer_descriptor.bin"))
        .compile_protos(&["proto/article_analyzer/v1/analyzer.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
