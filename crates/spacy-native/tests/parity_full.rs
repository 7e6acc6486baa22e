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

use golden::{
    doc_ents, golden_batch, golden_ents, golden_sents, read_json, strs, usizes, GOLDEN, SM,
};
use serde_json::Value;
use spacy_native::language::{Components, Doc, Language};

fn language() -> &'static Language {
    static LANG: OnceLock<Language> = OnceLock::new();
    LANG.get_or_init(|| {
        Language::load_with(&SM.dir(), Components::FULL).expect("loading the model")
    })
}

#[derive(Default, Debug)]
struct Tally {
    texts: usize,
    texts_equal: usize,
    sents: (usize, usize),
    tags: (usize, usize),
    heads: (usize, usize),
    deps: (usize, usize),
    pos: (usize, usize),
    lemmas: (usize, usize),
    ents: (usize, usize),
    mismatches: Vec<String>,
}

/// Counts matches of `got` against `want` position by position.
fn count<T: PartialEq + std::fmt::Debug>(
    what: &str,
    name: &str,
    got: &[T],
    want: &[T],
    acc: &mut (usize, usize),
    mism: &mut Vec<String>,
) -> bool {
    acc.1 += want.len();
    let mut ok = got.len() == want.len();
    for (i, w) in want.iter().enumerate() {
        if got.get(i) == Some(w) {
            acc.0 += 1;
        } else {
            if ok && mism.len() < 40 {
                mism.push(format!(
                    "{name}: {what}[{i}] got {:?} want {w:?}",
                    got.get(i)
                ));
            }
            ok = false;
        }
    }
    ok
}

fn check(tally: &mut Tally, name: &str, golden: &Value, doc: &Doc) {
    let full = &golden["full"];
    let want_sents = golden_sents(&full["sents"]);
    let want_heads = usizes(&full["head"]);
    let want_ents = golden_ents(&full["ents"]);
    let got_sents = doc.sents().unwrap_or_default();
    let got_tags: Vec<String> = doc.tags.iter().flatten().map(|t| t.to_string()).collect();
    let got_deps: Vec<String> = doc.deps.iter().flatten().map(|t| t.to_string()).collect();
    let got_pos: Vec<String> = doc.pos.iter().flatten().map(|t| t.to_string()).collect();
    let got_lemmas: Vec<String> = doc.lemmas.iter().flatten().map(|t| t.to_string()).collect();
    let got_heads = doc.heads.clone().unwrap_or_default();
    let got_ents = doc_ents(doc);
    let m = &mut tally.mismatches;
    let mut ok = true;
    ok &= count("sents", name, &got_sents, &want_sents, &mut tally.sents, m);
    ok &= count(
        "tag",
        name,
        &got_tags,
        &strs(&full["tag"]),
        &mut tally.tags,
        m,
    );
    ok &= count("head", name, &got_heads, &want_heads, &mut tally.heads, m);
    ok &= count(
        "dep",
        name,
        &got_deps,
        &strs(&full["dep"]),
        &mut tally.deps,
        m,
    );
    ok &= count(
        "pos",
        name,
        &got_pos,
        &strs(&full["pos"]),
        &mut tally.pos,
        m,
    );
    ok &= count(
        "lemma",
        name,
        &got_lemmas,
        &strs(&full["lemma"]),
        &mut tally.lemmas,
        m,
    );
    // Entities: an entity counts when it is in both lists.
    tally.ents.1 += want_ents.len().max(got_ents.len());
    tally.ents.0 += want_ents.iter().filter(|e| got_ents.contains(e)).count();
    if got_ents != want_ents {
        ok = false;
        if m.len() < 40 {
            m.push(format!("{name}: ents got {got_ents:?} want {want_ents:?}"));
        }
    }
    tally.texts += 1;
    tally.texts_equal += usize::from(ok);
}

fn report(what: &str, t: &Tally) {
    println!(
        "{what}: sentences: {}/{}, tags: {}/{}, heads: {}/{}, deps: {}/{}, pos: {}/{}, lemmas: {}/{}, ents(full): {}/{} over {} texts ({} fully equal)",
        t.sents.0,
        t.sents.1,
        t.tags.0,
        t.tags.1,
        t.heads.0,
        t.heads.1,
        t.deps.0,
        t.deps.1,
        t.pos.0,
        t.pos.1,
        t.lemmas.0,
        t.lemmas.1,
        t.ents.0,
        t.ents.1,
        t.texts,
        t.texts_equal
    );
    for m in &t.mismatches {
        println!("  {m}");
    }
}

fn assert_all(what: &str, t: &Tally) {
    report(what, t);
    assert!(t.texts > 0);
    assert_eq!(t.sents.0, t.sents.1, "{what}: sentence parity");
    assert_eq!(t.tags.0, t.tags.1, "{what}: tag parity");
    assert_eq!(t.heads.0, t.heads.1, "{what}: head parity");
    assert_eq!(t.deps.0, t.deps.1, "{what}: dep parity");
    assert_eq!(t.pos.0, t.pos.1, "{what}: pos parity");
    assert_eq!(t.lemmas.0, t.lemmas.1, "{what}: lemma parity");
    assert_eq!(t.ents.0, t.ents.1, "{what}: full-pipeline entity parity");
    assert_eq!(t.texts_equal, t.texts, "{what}: texts fully equal");
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
        check(&mut tally, name, g, doc);
    }
    assert_all("spacy tokens", &tally);
}

#[test]
fn full_pipeline_end_to_end() {
    let lang = language();
    let mut tally = Tally::default();
    for path in GOLDEN.files() {
        let g = read_json(&path);
        let doc = lang.process(g["text"].as_str().expect("text"));
        check(&mut tally, &path.display().to_string(), &g, &doc);
    }
    assert_all("end to end", &tally);
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
