//! The native spaCy runtime as an [`EntityRecognizer`].

use std::path::Path;

use crate::pipeline::{AnalysisError, EntityRecognizer, Mention, ModelInfo, Recognized, Sentence};
use crate::spacy::language::Language;
use crate::spacy::sentencizer;
use crate::spacy::ModelError;
use crate::text::OffsetMap;

/// Entities from the native spaCy NER; sentences from the rule-based
/// sentencizer (the dependency parser is not ported yet).
pub struct SpacyRecognizer {
    language: Language,
}

impl SpacyRecognizer {
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        Ok(SpacyRecognizer {
            language: Language::load(dir)?,
        })
    }

    pub fn language(&self) -> &Language {
        &self.language
    }
}

impl EntityRecognizer for SpacyRecognizer {
    fn model_info(&self) -> ModelInfo {
        let meta = self.language.meta();
        ModelInfo {
            task: "ner".into(),
            name: meta.name.clone(),
            version: meta.version.clone(),
            backend: "spacy-native".into(),
            labels: meta.ner_labels.clone(),
            components: vec!["tokenizer".into(), "ner".into(), "sentencizer".into()],
        }
    }

    fn recognize(&self, text: &str) -> Result<Recognized, AnalysisError> {
        let doc = self.language.process(text);
        let map = OffsetMap::new(text);
        let tokens = &doc.tokens;
        let mut ents = doc.ents.iter().peekable();
        let mut sentences = Vec::new();
        for range in sentencizer::sentences(text, tokens) {
            // Trim whitespace tokens off the sentence's edges for its span.
            let words: Vec<_> = tokens[range.clone()]
                .iter()
                .filter(|t| !crate::spacy::unicode::py_str_isspace(t.text(text)))
                .collect();
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
            let (Some(first), Some(last)) = (words.first(), words.last()) else {
                // A whitespace-only stretch; entities cannot start on
                // whitespace, so it holds none.
                continue;
            };
            let span = map.span(first.start, last.end);
            sentences.push(Sentence {
                index: sentences.len(),
                text: text[span.start_byte..span.end_byte].to_string(),
                span,
                mentions,
            });
        }
        Ok(Recognized {
            token_count: tokens.len(),
            sentences,
        })
    }
}
