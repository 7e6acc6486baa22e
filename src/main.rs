//! The `article-analyzer` binary; everything lives in the library.
fn main() -> std::process::ExitCode {
    article_analyzer::cli::main()
}
