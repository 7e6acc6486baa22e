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
    doc_ents, golden_batch, golden_ents, golden_sents, golden_tokens, strs, usizes, GOLDEN_MD, MD,
};
use serde_json::Value;
use spacy_native::language::{Components, Doc, Language};
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

/// Matches per field: (equal, total), and the first mismatches. Lists
/// (entities included) are compared position by position.
#[derive(Default)]
struct Tally {
    fields: Vec<(&'static str, usize, usize)>,
    mismatches: Vec<String>,
}

impl Tally {
    fn add<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &'static str,
        name: &str,
        got: &[T],
        want: &[T],
    ) {
        let idx = match self.fields.iter().position(|f| f.0 == what) {
            Some(i) => i,
            None => {
                self.fields.push((what, 0, 0));
                self.fields.len() - 1
            }
        };
        let total = want.len().max(got.len());
        let equal = want.iter().zip(got).filter(|(w, g)| w == g).count();
        self.fields[idx].1 += equal;
        self.fields[idx].2 += total;
        if equal != total && self.mismatches.len() < 30 {
            let i = want.iter().zip(got).position(|(w, g)| w != g);
            let i = i.unwrap_or(want.len().min(got.len()));
            self.mismatches.push(format!(
                "{name}: {what}[{i}] got {:?} want {:?} (lengths {} / {})",
                got.get(i),
                want.get(i),
                got.len(),
                want.len()
            ));
        }
    }

    fn assert_all(&self, what: &str) {
        let figures: Vec<String> = self
            .fields
            .iter()
            .map(|(f, e, t)| format!("{f}: {e}/{t}"))
            .collect();
        println!("en_core_web_md {what}: {}", figures.join(", "));
        for m in &self.mismatches {
            println!("  {m}");
        }
        assert!(!self.fields.is_empty());
        for (f, e, t) in &self.fields {
            assert_eq!(e, t, "{what}: {f} parity");
        }
    }
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
    spacy_toks.assert_all("NER only, spaCy tokens");
    assert!(
        vectors_matter > 0,
        "zero static vectors gave the same entities on every text"
    );
    println!(
        "en_core_web_md without its static vectors: entities differ on {vectors_matter} texts"
    );
    e2e.assert_all("NER only, end to end");
}

fn check_full(t: &mut Tally, name: &str, g: &Value, doc: &Doc) {
    let full = &g["full"];
    let want_sents = golden_sents(&full["sents"]);
    let own = |v: &Option<Vec<std::sync::Arc<str>>>| -> Vec<String> {
        v.iter().flatten().map(|s| s.to_string()).collect()
    };
    t.add("sents", name, &doc.sents().unwrap_or_default(), &want_sents);
    t.add("tags", name, &own(&doc.tags), &strs(&full["tag"]));
    t.add(
        "heads",
        name,
        &doc.heads.clone().unwrap_or_default(),
        &usizes(&full["head"]),
    );
    t.add("deps", name, &own(&doc.deps), &strs(&full["dep"]));
    t.add("pos", name, &own(&doc.pos), &strs(&full["pos"]));
    t.add("lemmas", name, &own(&doc.lemmas), &strs(&full["lemma"]));
    t.add(
        "ents(full)",
        name,
        &doc_ents(doc),
        &golden_ents(&full["ents"]),
    );
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
    batch.assert_all("full pipeline, spaCy tokens");
    // End to end, one text at a time.
    let mut e2e = Tally::default();
    for ((name, g), text) in goldens.iter().zip(&texts) {
        check_full(&mut e2e, name, g, &lang.process(text));
    }
    e2e.assert_all("full pipeline, end to end");
}
