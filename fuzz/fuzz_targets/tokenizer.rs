//! Arbitrary UTF-8 through the real en_core_web_sm tokenizer: it never
//! panics and its tokens tile the text (each token's text, plus one space
//! where `whitespace` is set, concatenate back to the input).
#![no_main]

use std::sync::OnceLock;

use spacy_native::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = article_analyzer_fuzz::pipeline_dir().join("tokenizer");
        Tokenizer::load(&path).unwrap_or_else(|e| panic!("{e}"))
    })
}

fuzz_target!(|text: &str| {
    let tokens = tokenizer().tokenize(text);
    let mut at = 0;
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(t.start, at, "token {i} does not start where the last ended");
        assert!(t.end > t.start, "token {i} is empty");
        assert!(text.is_char_boundary(t.start) && text.is_char_boundary(t.end));
        at = t.end;
        if t.whitespace {
            assert_eq!(
                text.as_bytes().get(at),
                Some(&b' '),
                "token {i} claims a following space"
            );
            at += 1;
        }
    }
    assert_eq!(at, text.len(), "the tokens do not cover the text");
});
