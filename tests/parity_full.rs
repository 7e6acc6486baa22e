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

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use article_analyzer::spacy::language::{Components, Doc, Language};
use article_analyzer::spacy::Token;
use serde_json::Value;

fn model_dir() -> PathBuf {
    let dir = std::env::var_os("ARTICLE_ANALYZER_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
        .join("en_core_web_sm-3.8.0");
    assert!(
        dir.join("config.cfg").is_file(),
        "the model is missing at {}; run scripts/fetch-models first",
        dir.display()
    );
    dir
}

fn golden_dir() -> PathBuf {
    std::env::var_os("ARTICLE_ANALYZER_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parity/golden"))
}

fn language() -> &'static Language {
    static LANG: OnceLock<Language> = OnceLock::new();
    LANG.get_or_init(|| {
        Language::load_with(&model_dir(), Components::FULL).expect("loading the model")
    })
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn golden_files() -> Vec<PathBuf> {
    let dir = golden_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ner_scores-"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    files
}

/// spaCy's tokens of a golden file as our `Token`s (token-level norm where
/// spaCy's norm differs from the lexeme norm).
fn golden_tokens(lang: &Language, text: &str, tokens: &[Value]) -> Vec<Token> {
    let mut c2b: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    c2b.push(text.len());
    tokens
        .iter()
        .map(|t| {
            let start = c2b[t["idx"].as_u64().expect("idx") as usize];
            let tok_text = t["text"].as_str().expect("text");
            let end = start + tok_text.len();
            let whitespace = match &t["whitespace"] {
                Value::Bool(b) => *b,
                Value::String(s) => s == " ",
                _ => false,
            };
            let norm = t["norm"].as_str().expect("norm");
            let lex = lang.vocab().lex_norm(tok_text);
            Token {
                start,
                end,
                whitespace,
                norm: (norm != lex).then(|| norm.into()),
            }
        })
        .collect()
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

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
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
    let want_sents: Vec<(usize, usize)> = full["sents"]
        .as_array()
        .expect("sents")
        .iter()
        .map(|s| {
            (
                s[0].as_u64().unwrap() as usize,
                s[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let want_heads: Vec<usize> = full["head"]
        .as_array()
        .expect("head")
        .iter()
        .map(|h| h.as_u64().unwrap() as usize)
        .collect();
    let want_ents: Vec<(usize, usize, String)> = full["ents"]
        .as_array()
        .expect("ents")
        .iter()
        .map(|e| {
            (
                e["start"].as_u64().unwrap() as usize,
                e["end"].as_u64().unwrap() as usize,
                e["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let got_sents = doc.sents().unwrap_or_default();
    let got_tags: Vec<String> = doc.tags.iter().flatten().map(|t| t.to_string()).collect();
    let got_deps: Vec<String> = doc.deps.iter().flatten().map(|t| t.to_string()).collect();
    let got_pos: Vec<String> = doc.pos.iter().flatten().map(|t| t.to_string()).collect();
    let got_lemmas: Vec<String> = doc.lemmas.iter().flatten().map(|t| t.to_string()).collect();
    let got_heads = doc.heads.clone().unwrap_or_default();
    let got_ents: Vec<(usize, usize, String)> = doc
        .ents
        .iter()
        .map(|e| (e.start, e.end, e.label.to_string()))
        .collect();
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
    assert_eq!(
        lang.components(),
        [
            "tok2vec",
            "tagger",
            "parser",
            "attribute_ruler",
            "lemmatizer",
            "ner"
        ]
    );
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
    let goldens: Vec<(String, Value)> = golden_files()
        .iter()
        .map(|p| (p.display().to_string(), read_json(p)))
        .collect();
    let texts: Vec<&str> = goldens
        .iter()
        .map(|(_, g)| g["text"].as_str().expect("text"))
        .collect();
    let tokens: Vec<Vec<Token>> = goldens
        .iter()
        .zip(&texts)
        .map(|((_, g), text)| golden_tokens(lang, text, g["tokens"].as_array().expect("tokens")))
        .collect();
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
    for path in golden_files() {
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
    let lang = Language::load_with(&model_dir(), Components::TAGGER_PARSER).expect("loading");
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
        &model_dir(),
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
        &model_dir(),
        Components {
            parser: true,
            attribute_ruler: true,
            ..Components::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("attribute_ruler"), "{err}");
}

#[test]
fn ner_only_language_has_no_parse() {
    let lang = Language::load(&model_dir()).expect("loading");
    assert_eq!(lang.components(), ["ner"]);
    let doc = lang.process("Apple is looking at buying U.K. startup for $1 billion.");
    assert!(doc.tags.is_none() && doc.heads.is_none() && doc.sent_starts.is_none());
    assert_eq!(doc.ents.len(), 3);
}
