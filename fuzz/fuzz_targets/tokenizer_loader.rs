//! Corrupt `tokenizer` files (seed the corpus with the real one): loading
//! returns an error that names the file, or a working tokenizer; it never
//! panics.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use spacy_native::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| article_analyzer_fuzz::scratch_dir().join("tokenizer"))
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("writing the scratch file");
    match Tokenizer::load(path) {
        Ok(tokenizer) => {
            // Whatever rules it holds, it must still tokenize.
            let _ = tokenizer.tokenize("Dr. Smith's U.S.A. trip (2024) cost $5.50!");
        }
        Err(e) => assert!(e.to_string().contains(&path.display().to_string()), "{e}"),
    }
});
