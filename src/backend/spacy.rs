//! The native spaCy runtime as an [`EntityRecognizer`].

use std::ops::Range;
use std::path::Path;

use crate::config::ComponentSet;
use crate::pipeline::{
    AnalysisError, EntityRecognizer, Mention, ModelInfo, Recognized, Sentence, TokenInfo,
};
use crate::spacy::language::{Components, Doc, Language};
use crate::spacy::unicode::py_str_isspace;
use crate::spacy::{sentencizer, ModelError};
use crate::text::OffsetMap;

/// Entities from the native spaCy NER; sentences from the dependency parse
/// when the parser runs, else from the rule-based sentencizer.
pub struct SpacyRecognizer {
    language: Language,
}

impl From<ComponentSet> for Components {
    fn from(set: ComponentSet) -> Components {
        match set {
            ComponentSet::Ner => Components::NER_ONLY,
            ComponentSet::Parser => Components {
                parser: true,
                ..Components::NER_ONLY
            },
            ComponentSet::Full => Components::FULL,
        }
    }
}

impl SpacyRecognizer {
    pub fn load(dir: &Path, components: ComponentSet) -> Result<Self, ModelError> {
        Self::load_components(dir, components.into())
    }

    /// Tokens, sentences and (with the parser) the parse, without running
    /// spaCy's NER: for when another model gives the entities.
    pub fn load_without_ner(dir: &Path, components: ComponentSet) -> Result<Self, ModelError> {
        Self::load_components(
            dir,
            Components {
                ner: false,
                ..components.into()
            },
        )
    }

    fn load_components(dir: &Path, components: Components) -> Result<Self, ModelError> {
        Ok(SpacyRecognizer {
            language: Language::load_with(dir, components)?,
        })
    }

    pub fn language(&self) -> &Language {
        &self.language
    }

    fn sentence_ranges(&self, text: &str, doc: &Doc) -> Vec<Range<usize>> {
        match doc.sents() {
            Some(sents) => sents.into_iter().map(|(s, e)| s..e).collect(),
            None => sentencizer::sentences(text, &doc.tokens),
        }
    }
}

fn token_infos(text: &str, doc: &Doc, map: &OffsetMap, range: Range<usize>) -> Vec<TokenInfo> {
    let get =
        |v: &Option<Vec<std::sync::Arc<str>>>, i: usize| v.as_ref().and_then(|v| v.get(i)).cloned();
    range
        .map(|i| {
            let t = &doc.tokens[i];
            TokenInfo {
                text: t.text(text).to_string(),
                span: map.span(t.start, t.end),
                whitespace: t.whitespace,
                tag: get(&doc.tags, i),
                pos: get(&doc.pos, i),
                dep: get(&doc.deps, i),
                head: doc.heads.as_ref().and_then(|h| h.get(i).copied()),
                lemma: get(&doc.lemmas, i),
            }
        })
        .collect()
}

impl EntityRecognizer for SpacyRecognizer {
    fn model_info(&self) -> ModelInfo {
        let meta = self.language.meta();
        let mut components: Vec<String> = std::iter::once("tokenizer")
            .chain(self.language.components())
            .map(String::from)
            .collect();
        if self.language.parser().is_none() {
            components.push("sentencizer".into());
        }
        ModelInfo {
            task: "ner".into(),
            name: meta.name.clone(),
            version: meta.version.clone(),
            backend: "spacy-native".into(),
            labels: meta.ner_labels.clone(),
            components,
            sha256: None,
            training_data: None,
        }
    }

    fn recognize(&self, text: &str) -> Result<Recognized, AnalysisError> {
        self.recognized(text, self.language.process(text))
    }

    /// One pass of every network layer over the tokens of all the texts.
    fn recognize_batch(&self, texts: &[&str]) -> Vec<Result<Recognized, AnalysisError>> {
        self.language
            .process_batch(texts)
            .into_iter()
            .zip(texts)
            .map(|(doc, text)| self.recognized(text, doc))
            .collect()
    }
}

impl SpacyRecognizer {
    /// Sentences, mentions and tokens of a processed `doc` of `text`.
    fn recognized(&self, text: &str, doc: Doc) -> Result<Recognized, AnalysisError> {
        let map = OffsetMap::new(text);
        let tokens = &doc.tokens;
        let mut ents = doc.ents.iter().peekable();
        let mut sentences = Vec::new();
        for range in self.sentence_ranges(text, &doc) {
            let mut mentions = Vec::new();
            while let Some(e) = ents.peek() {
                if e.start >= range.end {
                    break;
                }
                let start = tokens[e.start].start;
                let end = tokens[e.end - 1].end;
                mentions.push(Mention {
                    text: text[start..end].to_string(),
                    label: e.label.to_string(),
                    span: map.span(start, end),
                });
                ents.next();
            }
            // The sentence's span leaves out whitespace tokens at its edges.
            let mut words = tokens[range.clone()]
                .iter()
                .filter(|t| !py_str_isspace(t.text(text)));
            let (Some(first), last) = (words.next(), words.next_back()) else {
                // A whitespace-only stretch; entities cannot start on
                // whitespace, so it holds none.
                continue;
            };
            let last = last.unwrap_or(first);
            let span = map.span(first.start, last.end);
            sentences.push(Sentence {
                index: sentences.len(),
                text: text[span.start_byte..span.end_byte].to_string(),
                span,
                mentions,
                first_token: range.start,
                tokens: token_infos(text, &doc, &map, range),
            });
        }
        Ok(Recognized {
            token_count: tokens.len(),
            sentences,
        })
    }
}
