//! What can go wrong loading the stance lexicons.

use std::path::PathBuf;

/// A lexicon or gazetteer file that could not be read or is malformed, or a
/// configuration value out of range.
#[derive(Debug, thiserror::Error)]
pub enum StanceError {
    /// A line of a data file is wrong; `line` counts from 1.
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    /// A data file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is out of range.
    #[error("stance config: {0}")]
    Config(String),
}

impl StanceError {
    pub(crate) fn parse(file: &str, line: usize, message: impl Into<String>) -> Self {
        StanceError::Parse {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}
