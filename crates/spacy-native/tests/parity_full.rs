//! Full-pipeline parity with Python spaCy 3.8 (`en_core_web_sm` 3.8.0,
//! `nlp(text)`): for every golden file, `full.sents`, `full.tag`,
//! `full.head`, `full.dep`, `full.pos`, `full.lemma` and `full.ents` must
//! equal what `Language::load_with(.., Components::FULL)` produces (tok2vec +
//! tagger + parser + attribute_ruler + lemmatizer + NER constrained by the
//! parser's sentences). Every component of the package is compared (the
//! `senter` is disabled in `en_core_web_sm`).
//!
//! It runs twice: on spaCy's own tokens (isolates the components from the
//! tokenizer) and end to end on our tokenizer. Environment as in
//! `tests/parity_ner.rs` (`ARTICLE_ANALYZER_MODELS`, `ARTICLE_ANALYZER_GOLDEN`).

mod golden;

use std::sync::OnceLock;

use golden::{check_full, golden_batch, read_json, Tally, GOLDEN, SM};
use serde_json::Value;
use spacy_native::language::{Components, Language};

fn language() -> &'static Language {
    static LANG: OnceLock<Language> = OnceLock::new();
    LANG.get_or_init(|| {
        Language::load_with(&SM.dir(), Components::FULL).expect("loading the model")
    })
}

#[test]
fn full_pipeline_on_spacy_tokens() {
    let lang = language();
    assert_eq!(lang.components(), golden::FULL_COMPONENTS);
    let names: Vec<String> = lang
        .parser()
        .expect("parser")
        .actions()
        .iter()
        .map(|a| a.name())
        .collect();
    assert_eq!(names.len(), 106);
    assert_eq!(names[..4], ["S", "D", "L-det", "L-nsubj"]);
    assert_eq!(names[30], "L-pobj||prep");
    assert_eq!(names[49], "R-punct");
    assert_eq!(names[105], "B-ROOT");
    let mut tally = Tally::default();
    let goldens: Vec<(String, Value)> = GOLDEN
        .files()
        .iter()
        .map(|p| (p.display().to_string(), read_json(p)))
        .collect();
    let (texts, tokens) = golden_batch(lang, &goldens);
    // One batch, as spaCy's nlp.pipe would; results must not depend on it.
    let docs = lang.process_tokens_batch(&texts, tokens);
    for ((name, g), doc) in goldens.iter().zip(&docs) {
        check_full(&mut tally, name, g, doc);
    }
    tally.assert_all("en_core_web_sm full pipeline, spaCy tokens");
}

#[test]
fn full_pipeline_end_to_end() {
    let lang = language();
    let mut tally = Tally::default();
    for path in GOLDEN.files() {
        let g = read_json(&path);
        let doc = lang.process(g["text"].as_str().expect("text"));
        check_full(&mut tally, &path.display().to_string(), &g, &doc);
    }
    tally.assert_all("en_core_web_sm full pipeline, end to end");
}

/// Tagger + parser without the rule components: same tags, heads, deps,
/// sentences and entities; no POS or lemmas.
#[test]
fn tagger_parser_only() {
    let lang = Language::load_with(&SM.dir(), Components::TAGGER_PARSER).expect("loading");
    assert_eq!(lang.components(), ["tok2vec", "tagger", "parser", "ner"]);
    let full = language();
    let text = "Hi, what are you looking for?\n\nChina reaffirms 'rock solid' friendship with Russia. It is gonna rain.";
    let a = lang.process(text);
    let b = full.process(text);
    assert!(a.pos.is_none() && a.lemmas.is_none());
    assert!(b.pos.is_some() && b.lemmas.is_some());
    assert_eq!(a.heads, b.heads);
    assert_eq!(a.sent_starts, b.sent_starts);
    assert_eq!(a.ents, b.ents);
}

/// The parser alone (no tagger) gives the same parse and entities.
#[test]
fn parser_without_tagger() {
    let lang = Language::load_with(
        &SM.dir(),
        Components {
            parser: true,
            ..Components::default()
        },
    )
    .expect("loading");
    assert_eq!(lang.components(), ["tok2vec", "parser", "ner"]);
    let text = "I flew to New York City yesterday. Then I went home.";
    let a = lang.process(text);
    let b = language().process(text);
    assert!(a.tags.is_none());
    assert_eq!(a.heads, b.heads);
    assert_eq!(a.sents(), b.sents());
    assert_eq!(a.sents(), Some(vec![(0, 8), (8, 13)]));
    assert_eq!(a.ents, b.ents);
    // The rule components need the tagger and the parser.
    let err = Language::load_with(
        &SM.dir(),
        Components {
            parser: true,
            attribute_ruler: true,
            ..Components::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("attribute_ruler"), "{err}");
}

/// With the NER off (another model gives the entities), the tokens and the
/// parse are unchanged and there are no entities.
#[test]
fn ner_can_be_switched_off() {
    let lang = Language::load_with(
        &SM.dir(),
        Components {
            ner: false,
            ..Components::TAGGER_PARSER
        },
    )
    .expect("loading");
    assert_eq!(lang.components(), ["tok2vec", "tagger", "parser"]);
    let text = "I flew to New York City yesterday. Then I went home with Apple's CEO.";
    let a = lang.process(text);
    let b = language().process(text);
    assert!(a.ents.is_empty());
    assert!(!b.ents.is_empty());
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.heads, b.heads);
    assert_eq!(a.sents(), b.sents());
}

#[test]
fn ner_only_language_has_no_parse() {
    let lang = Language::load(&SM.dir()).expect("loading");
    assert_eq!(lang.components(), ["ner"]);
    let doc = lang.process("Apple is looking at buying U.K. startup for $1 billion.");
    assert!(doc.tags.is_none() && doc.heads.is_none() && doc.sent_starts.is_none());
    assert_eq!(doc.ents.len(), 3);
}
