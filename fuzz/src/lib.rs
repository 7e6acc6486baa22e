//! Shared set-up of the fuzz targets.

use std::path::PathBuf;

use article_analyzer::config::DEFAULT_MODEL;

/// The `en_core_web_sm-3.8.0` pipeline directory, from
/// `ARTICLE_ANALYZER_MODELS` or the repository's `models/`.
pub fn pipeline_dir() -> PathBuf {
    let root = std::env::var_os("ARTICLE_ANALYZER_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"));
    let dir = root.join(DEFAULT_MODEL);
    assert!(
        dir.join("config.cfg").is_file(),
        "the model is missing at {}; run scripts/fetch-models first",
        dir.display()
    );
    dir
}

/// A scratch directory for this fuzzing process.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("article-analyzer-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    dir
}
