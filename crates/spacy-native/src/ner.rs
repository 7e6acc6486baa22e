//! spaCy's `EntityRecognizer` at inference: TransitionBasedParser.v2 with
//! the BILUO transition system (`ner.pyx`), greedy decoding (beam width 1).
//!
//! The network is the NER's own tok2vec (see [`super::tok2vec`]), a
//! "precomputable affine" lower layer evaluated once for every token and
//! feature slot, and an upper linear layer scoring the 74 actions per state.
//! The decoder picks the best *valid* action at every token, exactly as
//! `arg_max_if_valid` in spaCy does (ties go to the lowest class index).

use std::path::Path;
use std::sync::Arc;

use super::error::ModelError;
use super::thinc::ThincModel;
use super::tok2vec::Tok2Vec;
use super::transition::{arg_max_if_valid, moves_from_bytes, Scratch, StateNet};
use super::vectors::Vectors;
use super::vocab::FeatureRow;

/// Number of state features of the NER state (`nF`): `b0`, the start of the
/// open entity and the token before `b0`.
pub const N_FEATURES: usize = 3;

/// The BILUO move types, numbered as in spaCy's `ner.pyx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Begin = 1,
    In = 2,
    Last = 3,
    Unit = 4,
    Out = 5,
}

impl Move {
    fn from_code(code: u32) -> Option<Move> {
        match code {
            1 => Some(Move::Begin),
            2 => Some(Move::In),
            3 => Some(Move::Last),
            4 => Some(Move::Unit),
            5 => Some(Move::Out),
            _ => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Move::Begin => "B",
            Move::In => "I",
            Move::Last => "L",
            Move::Unit => "U",
            Move::Out => "O",
        }
    }
}

/// One output class of the model: a move and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub mv: Move,
    /// Entity label; empty for `O` and for the never-valid `U-`.
    pub label: Arc<str>,
}

impl Action {
    /// spaCy's class name, e.g. `B-ORG`, `U-`, `O`.
    pub fn name(&self) -> String {
        match self.mv {
            Move::Out => "O".to_owned(),
            mv => format!("{}-{}", mv.prefix(), self.label),
        }
    }
}

/// An entity as token indices `[start, end)` and a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub start: usize,
    pub end: usize,
    pub label: Arc<str>,
}

/// Reads `ner/moves` and returns the classes in spaCy's order: move types in
/// ascending code, labels of one type by (frequency, label) descending;
/// MISSING is skipped and `O` only exists with the empty label.
pub fn load_actions(path: &Path) -> Result<Vec<Action>, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    actions_from_bytes(&bytes).map_err(|what| ModelError::format(path, what))
}

fn actions_from_bytes(bytes: &[u8]) -> Result<Vec<Action>, String> {
    let mut actions = Vec::new();
    for (code, label) in moves_from_bytes(bytes)? {
        if code == 0 {
            continue; // MISSING
        }
        let mv = Move::from_code(code).ok_or_else(|| format!("unknown move type {code}"))?;
        if mv == Move::Out && !label.is_empty() {
            continue;
        }
        let action = Action {
            mv,
            label: label.into(),
        };
        if !actions.contains(&action) {
            actions.push(action);
        }
    }
    if actions.is_empty() {
        return Err("the moves file defines no actions".into());
    }
    Ok(actions)
}

/// The NER component: tok2vec, state network and action table.
#[derive(Debug, Clone)]
pub struct Ner {
    tok2vec: Tok2Vec,
    net: StateNet,
    actions: Vec<Action>,
    /// Index of `O`, always valid when no entity is open.
    labels: Vec<Arc<str>>,
}

/// One document for the decoder.
#[derive(Debug, Clone, Copy)]
pub struct NerInput<'a> {
    /// `[NORM, PREFIX, SUFFIX, SHAPE]` ids per token.
    pub rows: &'a [FeatureRow],
    /// Whether each token is whitespace (`IS_SPACE`); such tokens cannot
    /// start an entity.
    pub is_space: &'a [bool],
    /// Sentence starts from a parser, if any: `B-`/`I-` are invalid when the
    /// next token starts a sentence, so no entity crosses a boundary. `None`
    /// (NER alone) means no token is marked.
    pub sent_starts: Option<&'a [bool]>,
    /// ORTH id per token, for a tok2vec with static vectors
    /// ([`Ner::uses_static_vectors`], e.g. `en_core_web_md`); ignored
    /// otherwise. Without it every token gets the zero vector, as an
    /// out-of-vocabulary word would.
    pub orths: Option<&'a [u64]>,
}

impl Ner {
    /// Loads `<ner_dir>/model` and `<ner_dir>/moves`.
    pub fn load(ner_dir: &Path) -> Result<Ner, ModelError> {
        Self::load_with_vectors(ner_dir, None)
    }

    /// As [`Ner::load`], with the pipeline's static vectors for a tok2vec
    /// that includes them (`en_core_web_md`).
    pub fn load_with_vectors(
        ner_dir: &Path,
        vectors: Option<&Arc<Vectors>>,
    ) -> Result<Ner, ModelError> {
        let model = ThincModel::load(&ner_dir.join("model"))?;
        let actions = load_actions(&ner_dir.join("moves"))?;
        Self::from_parts_with_vectors(&model, actions, vectors)
    }

    /// Builds the component from a decoded model and its action table.
    pub fn from_parts(model: &ThincModel, actions: Vec<Action>) -> Result<Ner, ModelError> {
        Self::from_parts_with_vectors(model, actions, None)
    }

    /// As [`Ner::from_parts`], with the pipeline's static vectors.
    pub fn from_parts_with_vectors(
        model: &ThincModel,
        actions: Vec<Action>,
        vectors: Option<&Arc<Vectors>>,
    ) -> Result<Ner, ModelError> {
        let tok2vec = Tok2Vec::from_thinc_with_vectors(model, vectors)?;
        if tok2vec.n_columns() != 4 || !tok2vec.has_projection() {
            return Err(model.error(format!(
                "the NER tok2vec must have 4 feature columns and a projection, found {} columns",
                tok2vec.n_columns()
            )));
        }
        let net = StateNet::from_thinc(model, N_FEATURES, actions.len())?;
        if net.n_in != tok2vec.output_width() {
            return Err(model.error(format!(
                "lower layer nI {} does not match tok2vec width {}",
                net.n_in,
                tok2vec.output_width()
            )));
        }
        let mut labels: Vec<Arc<str>> = actions
            .iter()
            .filter(|a| !a.label.is_empty())
            .map(|a| a.label.clone())
            .collect();
        labels.sort();
        labels.dedup();
        Ok(Ner {
            tok2vec,
            net,
            actions,
            labels,
        })
    }

    /// The classes in model order (74 for en_core_web_sm).
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Entity labels, sorted (as spaCy's `ner.labels`).
    pub fn labels(&self) -> &[Arc<str>] {
        &self.labels
    }

    /// Whether the tok2vec reads static vectors (then [`NerInput::orths`]
    /// matters).
    pub fn uses_static_vectors(&self) -> bool {
        self.tok2vec.has_static_vectors()
    }

    /// The tok2vec of the component.
    pub fn tok2vec(&self) -> &Tok2Vec {
        &self.tok2vec
    }

    /// Entities of every document. All tokens of the batch go through each
    /// layer as one matrix product; decoding then runs per document.
    pub fn predict(&self, docs: &[NerInput<'_>]) -> Vec<Vec<Entity>> {
        self.predict_traced(docs, None)
    }

    /// As [`Ner::predict`]; with `trace`, appends the scores of every greedy
    /// step (all classes, doc after doc) for parity tests.
    pub fn predict_traced(
        &self,
        docs: &[NerInput<'_>],
        mut trace: Option<&mut Vec<f32>>,
    ) -> Vec<Vec<Entity>> {
        // With static vectors each token's ids are its row and its ORTH.
        let with_orth: Vec<Vec<u64>> = if self.tok2vec.has_static_vectors() {
            docs.iter()
                .map(|d| {
                    let mut ids = Vec::with_capacity(d.rows.len() * 5);
                    for (i, r) in d.rows.iter().enumerate() {
                        ids.extend_from_slice(r);
                        ids.push(d.orths.and_then(|o| o.get(i).copied()).unwrap_or(0));
                    }
                    ids
                })
                .collect()
        } else {
            Vec::new()
        };
        let rows: Vec<&[u64]> = if with_orth.is_empty() {
            docs.iter().map(|d| d.rows.as_flattened()).collect()
        } else {
            with_orth.iter().map(Vec::as_slice).collect()
        };
        let tokvecs = self.tok2vec.forward_batch(&rows, None);
        drop(with_orth);
        let total: usize = docs.iter().map(|d| d.rows.len()).sum();
        let width = self.net.cached_width();
        let cached = self.net.precompute(total, &tokvecs);
        drop(tokvecs);
        let mut scratch = self.net.scratch();
        let mut out = Vec::with_capacity(docs.len());
        let mut offset = 0;
        for doc in docs {
            let n = doc.rows.len();
            let doc_cached = &cached[offset * width..(offset + n) * width];
            out.push(self.decode(doc_cached, doc, &mut scratch, trace.as_deref_mut()));
            offset += n;
        }
        out
    }

    /// Greedy BILUO decoding of one document (see `ner.pyx` `is_valid`).
    fn decode(
        &self,
        cached: &[f32],
        doc: &NerInput<'_>,
        s: &mut Scratch,
        mut trace: Option<&mut Vec<f32>>,
    ) -> Vec<Entity> {
        let n = doc.rows.len();
        let is_space = |i: usize| doc.is_space.get(i).copied().unwrap_or(false);
        let sent_start = |i: usize| {
            doc.sent_starts
                .and_then(|s| s.get(i).copied())
                .unwrap_or(false)
        };
        let mut ents = Vec::new();
        // The open entity: (start token, action index of its label).
        let mut open: Option<(usize, &Arc<str>)> = None;
        let mut b0 = 0usize;
        while b0 < n {
            let ids = [
                b0 as isize,
                open.map_or(-1, |(st, _)| st as isize),
                if open.is_some() && b0 > 0 {
                    b0 as isize - 1
                } else {
                    -1
                },
            ];
            self.net.score_state(cached, &ids, s);
            if let Some(t) = trace.as_deref_mut() {
                t.extend_from_slice(&s.scores);
            }
            let two_left = b0 + 1 < n;
            let next_starts = sent_start(b0 + 1);
            let space = is_space(b0);
            let best = arg_max_if_valid(&s.scores, |c| {
                let a = &self.actions[c];
                match a.mv {
                    Move::Begin => {
                        open.is_none() && two_left && !a.label.is_empty() && !next_starts && !space
                    }
                    Move::In => {
                        matches!(open, Some((_, l)) if **l == *a.label) && two_left && !next_starts
                    }
                    Move::Last => matches!(open, Some((_, l)) if **l == *a.label),
                    Move::Unit => open.is_none() && !a.label.is_empty() && !space,
                    Move::Out => open.is_none(),
                }
            });
            let Some(best) = best else {
                // spaCy's `force_final`: stop; an open entity is dropped.
                return ents;
            };
            let a = &self.actions[best];
            match a.mv {
                Move::Begin => open = Some((b0, &a.label)),
                Move::In | Move::Out => {}
                Move::Last => {
                    if let Some((start, label)) = open.take() {
                        ents.push(Entity {
                            start,
                            end: b0 + 1,
                            label: label.clone(),
                        });
                    }
                }
                Move::Unit => ents.push(Entity {
                    start: b0,
                    end: b0 + 1,
                    label: a.label.clone(),
                }),
            }
            b0 += 1;
        }
        ents
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_parse_in_spacy_class_order() {
        let json = r#"{"0":{},"1":{"ORG":5,"DATE":7},"2":{"ORG":5,"DATE":7},"3":{"ORG":5,"DATE":7},"4":{"ORG":5,"DATE":7,"":1},"5":{"":1}}"#;
        let mut buf = Vec::new();
        let v = rmpv::Value::Map(vec![(rmpv::Value::from("moves"), rmpv::Value::from(json))]);
        rmpv::encode::write_value(&mut buf, &v).unwrap();
        let names: Vec<String> = actions_from_bytes(&buf)
            .unwrap()
            .iter()
            .map(Action::name)
            .collect();
        assert_eq!(
            names,
            [
                "B-DATE", "B-ORG", "I-DATE", "I-ORG", "L-DATE", "L-ORG", "U-DATE", "U-ORG", "U-",
                "O"
            ]
        );
        assert!(actions_from_bytes(b"\x80").is_err());
    }

    // ---- Test vectors of the runtime notes (§4, §6), on the real model ----

    use crate::doc::Token;
    use crate::vocab::Vocab;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    /// The pipeline directory ([`crate::sm_model_dir`]). Fails (never
    /// skips) when the model is missing.
    fn model_dir() -> PathBuf {
        let dir = crate::sm_model_dir();
        assert!(
            dir.join("ner").join("model").is_file(),
            "the model is missing at {}; run scripts/fetch-models first",
            dir.display()
        );
        dir
    }

    fn model() -> &'static (Ner, Vocab) {
        static M: OnceLock<(Ner, Vocab)> = OnceLock::new();
        M.get_or_init(|| {
            let dir = model_dir();
            (
                Ner::load(&dir.join("ner")).expect("loading ner"),
                Vocab::load(&dir.join("vocab")).expect("loading vocab"),
            )
        })
    }

    /// Tokens for `text` given spaCy's token strings in order.
    fn tokens(text: &str, words: &[&str]) -> Vec<Token> {
        let mut pos = 0;
        let mut out: Vec<Token> = Vec::new();
        for w in words {
            let start = pos + text[pos..].find(w).expect("word in text");
            if let Some(prev) = out.last_mut() {
                prev.whitespace = text[prev.end..start] == *" ";
            }
            out.push(Token {
                start,
                end: start + w.len(),
                whitespace: false,
                norm: None,
            });
            pos = start + w.len();
        }
        out
    }

    fn run(text: &str, words: &[&str]) -> Vec<(usize, usize, String)> {
        let (ner, vocab) = model();
        let toks = tokens(text, words);
        let rows = vocab.feature_rows(text, &toks);
        let is_space: Vec<bool> = toks
            .iter()
            .map(|t| crate::unicode::py_str_isspace(t.text(text)))
            .collect();
        let input = NerInput {
            rows: &rows,
            is_space: &is_space,
            sent_starts: None,
            orths: None,
        };
        ner.predict(&[input])
            .remove(0)
            .into_iter()
            .map(|e| (e.start, e.end, e.label.to_string()))
            .collect()
    }

    const APPLE: &str = "Apple is looking at buying U.K. startup for $1 billion.";
    const APPLE_WORDS: &[&str] = &[
        "Apple", "is", "looking", "at", "buying", "U.K.", "startup", "for", "$", "1", "billion",
        ".",
    ];

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() < 1e-4,
                "{what}: got {:?}, want {want:?}",
                &got[..want.len()]
            );
        }
    }

    #[test]
    fn class_order_matches_spacy() {
        let names: Vec<String> = model().0.actions().iter().map(Action::name).collect();
        assert_eq!(names.len(), 74);
        assert_eq!(&names[..4], ["B-ORG", "B-DATE", "B-PERSON", "B-GPE"]);
        assert_eq!(names[17], "B-LANGUAGE");
        assert_eq!(names[18], "I-ORG");
        assert_eq!(names[36], "L-ORG");
        assert_eq!(names[54], "U-ORG");
        assert_eq!(names[72], "U-");
        assert_eq!(names[73], "O");
        assert_eq!(model().0.labels().len(), 18);
    }

    #[test]
    fn tok2vec_stages_match_python() {
        let (ner, vocab) = model();
        let toks = tokens(APPLE, APPLE_WORDS);
        let rows = vocab.feature_rows(APPLE, &toks);
        assert_eq!(
            rows[0],
            [
                8566208034543834098,
                14862748245026736845,
                16838316573854262908,
                16072095006890171862
            ]
        );
        let s = ner.tok2vec().stages(rows.as_flattened());
        assert_close(
            &s.embed,
            &[0.021209, -0.932039, -0.214862, 0.414660, -0.431078],
            "embed",
        );
        assert_close(
            &s.encoded,
            &[0.386297, -2.073372, -0.990170, 2.383539, 0.491044],
            "encoder",
        );
        assert_close(
            &s.projected,
            &[-2.044854, 2.760787, 2.040246, 0.501580, -2.898981],
            "linear",
        );
    }

    #[test]
    fn first_state_hidden_and_scores_match_python() {
        let (ner, vocab) = model();
        let toks = tokens(APPLE, APPLE_WORDS);
        let rows = vocab.feature_rows(APPLE, &toks);
        let tokvecs = ner.tok2vec.forward_batch(&[rows.as_flattened()], None);
        let cached = ner.net.precompute(rows.len(), &tokvecs);
        let mut s = ner.net.scratch();
        ner.net.score_state(&cached, &[0, -1, -1], &mut s);
        assert_close(
            &s.hidden,
            &[5.224056, -1.21116, -0.835199, -0.442098, -2.520997],
            "h",
        );
        let mut order: Vec<usize> = (0..74).collect();
        order.sort_by(|&a, &b| s.scores[b].total_cmp(&s.scores[a]));
        let top: Vec<(String, f32)> = order[..3]
            .iter()
            .map(|&c| (ner.actions[c].name(), s.scores[c]))
            .collect();
        assert_eq!(top[0].0, "U-ORG");
        assert_eq!(top[1].0, "O");
        assert_eq!(top[2].0, "U-PERSON");
        for (got, want) in top.iter().zip([10.0345, 5.2476, 1.7366]) {
            assert!((got.1 - want).abs() < 1e-3, "{top:?}");
        }
    }

    #[test]
    fn entities_match_python_on_verified_sentences() {
        assert_eq!(
            run(APPLE, APPLE_WORDS),
            [
                (0, 1, "ORG".to_owned()),
                (5, 6, "GPE".to_owned()),
                (8, 11, "MONEY".to_owned())
            ]
        );
        let xi = "Xi Jinping met Rosselkhozbank officials in Moscow on 12 May 2022.";
        let words = [
            "Xi",
            "Jinping",
            "met",
            "Rosselkhozbank",
            "officials",
            "in",
            "Moscow",
            "on",
            "12",
            "May",
            "2022",
            ".",
        ];
        assert_eq!(
            run(xi, &words),
            [
                (3, 4, "ORG".to_owned()),
                (6, 7, "GPE".to_owned()),
                (8, 11, "DATE".to_owned())
            ]
        );
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let (ner, _) = model();
        assert_eq!(run("", &[]), []);
        assert_eq!(run("  \n\n  ", &["  \n\n  "]), []);
        // Empty docs mixed into a batch, one whitespace-only doc.
        let row = [0u64; 4];
        let rows = vec![row; 3];
        let sp = vec![true; 3];
        let docs = [
            NerInput {
                rows: &[],
                is_space: &[],
                sent_starts: None,
                orths: None,
            },
            NerInput {
                rows: &rows,
                is_space: &sp,
                sent_starts: None,
                orths: None,
            },
            NerInput {
                rows: &[],
                is_space: &[],
                sent_starts: None,
                orths: None,
            },
        ];
        let out = ner.predict(&docs);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(Vec::is_empty));
        // A long document (3,600 tokens) spans several encoder chunks and
        // must still decode, with entities found all along it.
        let (_, vocab) = model();
        let toks = tokens(APPLE, APPLE_WORDS);
        let one = vocab.feature_rows(APPLE, &toks);
        let many: Vec<FeatureRow> = one.iter().copied().cycle().take(one.len() * 300).collect();
        let sp = vec![false; many.len()];
        let got = ner.predict(&[NerInput {
            rows: &many,
            is_space: &sp,
            sent_starts: None,
            orths: None,
        }]);
        assert!(got[0].len() >= 300, "{}", got[0].len());
    }

    /// A sentence start on the next token forbids B-/I-, so "New York City"
    /// cannot be one entity once token 4 starts a sentence (notes §0.2).
    #[test]
    fn sentence_starts_block_entities() {
        let (ner, vocab) = model();
        let text = "I flew to New York City yesterday.";
        let words = ["I", "flew", "to", "New", "York", "City", "yesterday", "."];
        let toks = tokens(text, &words);
        let rows = vocab.feature_rows(text, &toks);
        let sp = vec![false; rows.len()];
        let mut starts = vec![false; rows.len()];
        let free = ner.predict(&[NerInput {
            rows: &rows,
            is_space: &sp,
            sent_starts: None,
            orths: None,
        }]);
        let labels = |e: &[Entity]| -> Vec<(usize, usize, String)> {
            e.iter()
                .map(|e| (e.start, e.end, e.label.to_string()))
                .collect()
        };
        assert_eq!(
            labels(&free[0]),
            [(3, 6, "GPE".to_owned()), (6, 7, "DATE".to_owned())]
        );
        starts[0] = true;
        starts[4] = true;
        let cut = ner.predict(&[NerInput {
            rows: &rows,
            is_space: &sp,
            sent_starts: Some(&starts),
            orths: None,
        }]);
        assert_eq!(labels(&cut[0]), [(6, 7, "DATE".to_owned())]);
    }
}
