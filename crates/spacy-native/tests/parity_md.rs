//! Parity with Python spaCy 3.8 on `en_core_web_md` 3.8.0, the pipeline with
//! static word vectors (`vocab/vectors`, MultiHashEmbed with
//! `include_static_vectors = true` in both tok2vec layers), on a subset of
//! the corpus: `tests/parity/golden_md/<name>.json`, written by
//! `tests/parity/make_golden_md.py` (same schema as `tests/parity/golden`).
//!
//! Checked at 100%: tokens (our tokenizer against spaCy's), the NER feature
//! ids, NER-only entities, and the full pipeline's sentences, tags, heads,
//! deps, POS, lemmas and entities, both on spaCy's tokens and end to end.
//!
//! The model comes from `ARTICLE_ANALYZER_MODELS` (the directory holding
//! `en_core_web_md-3.8.0`) or `models/` (`scripts/fetch-models md`); the
//! golden directory can be overridden with `ARTICLE_ANALYZER_GOLDEN_MD`.

mod golden;

use std::sync::OnceLock;
use std::time::Instant;

use golden::{
    check_full, doc_ents, golden_batch, golden_ents, golden_tokens, Tally, GOLDEN_MD, MD,
};
use spacy_native::language::{Components, Language};
use spacy_native::ner::NerInput;
use spacy_native::unicode::py_str_isspace;

fn load(components: Components) -> Language {
    let t = Instant::now();
    let lang = Language::load_with(&MD.dir(), components).expect("loading en_core_web_md");
    println!("en_core_web_md {components:?} loaded in {:?}", t.elapsed());
    lang
}

fn full() -> &'static Language {
    static LANG: OnceLock<Language> = OnceLock::new();
    LANG.get_or_init(|| load(Components::FULL))
}

fn ner_only() -> &'static Language {
    static LANG: OnceLock<Language> = OnceLock::new();
    LANG.get_or_init(|| load(Components::NER_ONLY))
}

#[test]
fn meta_and_vectors() {
    let lang = ner_only();
    assert_eq!(lang.meta().name, "en_core_web_md");
    assert_eq!(lang.meta().version, "3.8.0");
    assert_eq!(lang.meta().lang, "en");
    assert_eq!(lang.components(), ["ner"]);
    assert!(lang.ner().uses_static_vectors());
    let v = lang.vectors().expect("md loads its static vectors");
    assert_eq!((v.n_rows(), v.width(), v.n_keys()), (20000, 300, 684830));
    assert_eq!(lang.ner().actions().len(), 74);
}

#[test]
fn ner_only_parity() {
    let lang = ner_only();
    let mut spacy_toks = Tally::default();
    let mut e2e = Tally::default();
    // Texts whose entities change when every token gets the zero vector:
    // shows that the vectors are read at all.
    let mut vectors_matter = 0;
    for (name, g) in GOLDEN_MD.goldens() {
        let text = g["text"].as_str().expect("text");
        let g_tokens = g["tokens"].as_array().expect("tokens");
        let want = golden_ents(&g["ents_ner_only"]);
        // On spaCy's tokens: features and entities.
        let tokens = golden_tokens(lang, text, g_tokens);
        let rows = lang.vocab().feature_rows(text, &tokens);
        let want_attrs: Vec<Vec<u64>> = g_tokens
            .iter()
            .map(|t| {
                t["attrs"]
                    .as_array()
                    .expect("attrs")
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect()
            })
            .collect();
        let got_attrs: Vec<Vec<u64>> = rows.iter().map(|r| r.to_vec()).collect();
        spacy_toks.add("attrs", &name, &got_attrs, &want_attrs);
        let is_space: Vec<bool> = tokens
            .iter()
            .map(|t| py_str_isspace(&text[t.start..t.end]))
            .collect();
        let blind = lang.ner().predict(&[NerInput {
            rows: &rows,
            is_space: &is_space,
            sent_starts: None,
            orths: None,
        }]);
        let ents = lang.ner_tokens_batch(&[text], &[tokens], None).remove(0);
        vectors_matter += usize::from(blind[0] != ents);
        let got: Vec<(usize, usize, String)> = ents
            .iter()
            .map(|e| (e.start, e.end, e.label.to_string()))
            .collect();
        spacy_toks.add("ents(ner only)", &name, &got, &want);
        // End to end: our tokenizer, then the entities.
        let doc = lang.process(text);
        let got_toks: Vec<(usize, &str)> = doc
            .tokens
            .iter()
            .map(|t| (text[..t.start].chars().count(), &text[t.start..t.end]))
            .collect();
        let want_toks: Vec<(usize, &str)> = g_tokens
            .iter()
            .map(|t| {
                (
                    t["idx"].as_u64().unwrap() as usize,
                    t["text"].as_str().unwrap(),
                )
            })
            .collect();
        e2e.add("tokens", &name, &got_toks, &want_toks);
        e2e.add("ents(ner only)", &name, &doc_ents(&doc), &want);
    }
    spacy_toks.assert_all("en_core_web_md NER only, spaCy tokens");
    assert!(
        vectors_matter > 0,
        "zero static vectors gave the same entities on every text"
    );
    println!(
        "en_core_web_md without its static vectors: entities differ on {vectors_matter} texts"
    );
    e2e.assert_all("en_core_web_md NER only, end to end");
}

#[test]
fn full_pipeline_parity() {
    let lang = full();
    assert_eq!(lang.components(), golden::FULL_COMPONENTS);
    let goldens = GOLDEN_MD.goldens();
    // On spaCy's tokens, all texts as one batch.
    let (texts, tokens) = golden_batch(lang, &goldens);
    let docs = lang.process_tokens_batch(&texts, tokens);
    let mut batch = Tally::default();
    for ((name, g), doc) in goldens.iter().zip(&docs) {
        check_full(&mut batch, name, g, doc);
    }
    batch.assert_all("en_core_web_md full pipeline, spaCy tokens");
    // End to end, one text at a time.
    let mut e2e = Tally::default();
    for ((name, g), text) in goldens.iter().zip(&texts) {
        check_full(&mut e2e, name, g, &lang.process(text));
    }
    e2e.assert_all("en_core_web_md full pipeline, end to end");
}
