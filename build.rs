//! Compiles `proto/` with tonic-prost-build. protoc comes from the `protoc-bin-vendored`
//! crate unless `PROTOC` is set, so a fresh machine needs nothing installed.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("article_analyzer_descriptor.bin"))
        .compile_protos(&["proto/article_analyzer/v1/analyzer.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    libtorch_rpath();
    Ok(())
}

/// With the `rust-bert` feature, records libtorch's `lib/` as an rpath so the
/// binaries and tests run without `LD_LIBRARY_PATH` (torch-sys only adds a
/// link search path). `LIBTORCH` comes from the environment or
/// `.cargo/config.toml` (scripts/fetch-libtorch puts it there).
fn libtorch_rpath() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_RUST_BERT").is_none() {
        return;
    }
    if let Some(libtorch) = std::env::var_os("LIBTORCH") {
        let lib = PathBuf::from(libtorch).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
