//! An explainable, data-driven stance engine: lexicons, a gazetteer and
//! token-distance scoping within sentences.
//!
//! For every sentence that mentions the target (by name, alias, gazetteer
//! form, surname, or one of the target's spans) the engine collects:
//!
//! - **stance cues** from `data/stance/cues.tsv`, each with the side the
//!   target must stand on ("condemn X": object; "X's invasion": subject), a
//!   signed weight and a reason. An attitude cue whose object is another cue
//!   composes with it ("condemned sanctions on X" is FAVOR X);
//! - **general sentiment** from VADER's lexicon, weighted by distance to the
//!   target and shared with closer entities;
//! - **modifiers**: negators flip what follows within a few words, contrast
//!   words weigh the clause after them more, and reported speech (quotes,
//!   "said", "according to") weighs less than the article's own voice.
//!
//! Contributions are summed per sentence (each sentence is an evidence item
//! with a readable reason), then over the document, and turned into
//! probabilities with a softmax that gives NEUTRAL a fixed margin.
//!
//! Scoping uses the dependency parse when the recognizer ran the parser
//! ([`syntax`]: a cue counts for the target only as its object or its doer,
//! and distances are tree edges); without a parse it falls back to sentence
//! and token distance, the rules of v0. [`eval`] scores the engine on the
//! annotated sets in `eval/stance/`.

mod config;
mod error;
pub mod eval;
pub mod learned;
mod lexicon;
mod syntax;
mod targets;
mod tokens;

use std::ops::ControlFlow;
use std::path::Path;

use crate::pipeline::{
    AnalysisError, Evidence, ModelInfo, Probabilities, Recognized, Sentence, Stance,
    StanceClassifier, Target,
};

pub use config::StanceConfig;
pub use error::StanceError;

use lexicon::{Lexicon, Role};
use syntax::Parse;
use targets::{EntityRange, Occurrence, TargetMatcher};
use tokens::{tokenize, Token, TokenKind};

/// The lexicon stance engine.
#[derive(Debug, Clone)]
pub struct LexiconStance {
    lexicon: Lexicon,
    config: StanceConfig,
}

impl LexiconStance {
    /// The lexicons and gazetteer shipped in `data/stance/`, embedded at
    /// compile time.
    pub fn embedded() -> Result<Self, StanceError> {
        Ok(LexiconStance {
            lexicon: Lexicon::embedded()?,
            config: StanceConfig::default(),
        })
    }

    /// The same files (`gazetteer.tsv`, `cues.tsv`, `modifiers.tsv`,
    /// `vader_lexicon.txt`) from a directory.
    pub fn from_dir(dir: &Path) -> Result<Self, StanceError> {
        Ok(LexiconStance {
            lexicon: Lexicon::from_dir(dir)?,
            config: StanceConfig::default(),
        })
    }

    /// Replaces the thresholds and weights. An invalid config (see
    /// [`StanceConfig::validate`]) is replaced by the default at use; call
    /// `validate` first to report it.
    pub fn with_config(mut self, config: StanceConfig) -> Self {
        self.config = config.sanitized();
        self
    }

    pub fn config(&self) -> &StanceConfig {
        &self.config
    }

    /// The stance toward `target`; never fails.
    pub fn stance(&self, doc: &Recognized, text: &str, target: &Target) -> Stance {
        self.decide(target, &self.score_sentences(doc, text, target))
    }

    /// Every sentence that mentions `target`, in text order, with the
    /// engine's reading of it (cues, sentiment, reported speech, where the
    /// mentions are). The learned model reads the same sentences.
    pub(crate) fn score_sentences(
        &self,
        doc: &Recognized,
        text: &str,
        target: &Target,
    ) -> Vec<SentenceScore> {
        let matcher = TargetMatcher::new(&self.lexicon, target, doc);
        let scorer = SentenceScorer {
            lex: &self.lexicon,
            cfg: &self.config,
            matcher: &matcher,
            target,
        };
        doc.sentences
            .iter()
            .enumerate()
            .filter_map(|(order, sentence)| {
                let mut s = scorer.score(sentence, text)?;
                s.order = order;
                Some(s)
            })
            .collect()
    }

    /// The document score of scored sentences: their summed contributions,
    /// length-normalised as configured.
    fn document_score(&self, scored: &[SentenceScore]) -> f32 {
        let n = scored.len().max(1) as f32;
        let sum: f32 = scored.iter().map(|s| s.total).sum();
        sum / n.powf(self.config.length_normalization)
    }

    fn decide(&self, target: &Target, scored: &[SentenceScore]) -> Stance {
        let cfg = &self.config;
        let score = self.document_score(scored);
        let probabilities = softmax(cfg.scale * score, cfg.neutral_margin);
        let (label, p) = probabilities.best();

        let mut strong: Vec<&SentenceScore> = scored
            .iter()
            .filter(|s| s.total.abs() >= cfg.min_evidence_contribution)
            .collect();
        strong.sort_by(|a, b| {
            b.total
                .abs()
                .total_cmp(&a.total.abs())
                .then(a.order.cmp(&b.order))
        });
        let mut evidence: Vec<Evidence> = strong
            .into_iter()
            .take(cfg.max_evidence)
            .map(SentenceScore::evidence)
            .collect();
        if evidence.is_empty() {
            // Nothing moved the decision: show where the target is mentioned.
            evidence = scored
                .iter()
                .take(cfg.max_evidence)
                .map(|s| {
                    let mut e = s.evidence();
                    e.reason = format!("{}; no stance cue or sentiment near it", s.mention_note);
                    e
                })
                .collect();
        }
        Stance {
            target: target.name.clone(),
            label,
            score: p,
            probabilities,
            evidence,
        }
    }
}

impl StanceClassifier for LexiconStance {
    fn model_info(&self) -> ModelInfo {
        ModelInfo {
            task: "stance".into(),
            name: "lexicon-stance".into(),
            version: "0.1.0".into(),
            backend: "lexicon".into(),
            labels: vec!["FAVOR".into(), "AGAINST".into(), "NEUTRAL".into()],
            components: vec![
                "gazetteer".into(),
                "stance-cues".into(),
                "vader-sentiment".into(),
            ],
            sha256: None,
            training_data: None,
        }
    }

    fn classify_all(
        &self,
        doc: &Recognized,
        text: &str,
        targets: &[Target],
        decided: &mut dyn FnMut(Stance) -> ControlFlow<()>,
    ) -> Result<(), AnalysisError> {
        for target in targets {
            if decided(self.stance(doc, text, target)).is_break() {
                return Err(AnalysisError::Cancelled);
            }
        }
        Ok(())
    }

    fn canonical_name(&self, mention: &str) -> Option<String> {
        self.lexicon.canonical_name(mention)
    }
}

/// FAVOR, AGAINST and NEUTRAL from logits `s`, `-s` and `margin`.
pub(crate) fn softmax(s: f32, margin: f32) -> Probabilities {
    let s = if s.is_finite() {
        s.clamp(-60.0, 60.0)
    } else {
        0.0
    };
    let logits = [s, -s, margin];
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let z: f32 = e.iter().sum();
    Probabilities {
        favor: e[0] / z,
        against: e[1] / z,
        neutral: e[2] / z,
    }
}

/// One thing in a sentence that moved the score.
#[derive(Debug, Clone)]
struct Piece {
    contribution: f32,
    note: String,
}

/// A sentence's contribution toward one target.
#[derive(Debug, Clone)]
pub(crate) struct SentenceScore {
    /// Index of the sentence in the document.
    pub order: usize,
    pub span: crate::text::TextSpan,
    pub text: String,
    /// The lexicon engine's contribution (positive toward FAVOR).
    pub total: f32,
    pieces: Vec<Piece>,
    pub mention_note: String,
    flags: Vec<String>,
    /// The target's mentions, as byte ranges of `text`.
    pub mentions: Vec<(usize, usize)>,
    /// Whether the sentence reports someone else's words about the target
    /// (a quote around a mention, or a reporting verb whose speaker is not
    /// the target).
    pub reported: bool,
}

impl SentenceScore {
    pub(crate) fn evidence(&self) -> Evidence {
        let mut pieces: Vec<&Piece> = self.pieces.iter().collect();
        pieces.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        let mut parts: Vec<String> = pieces
            .iter()
            .take(4)
            .map(|p| format!("{} ({:+.2})", p.note, p.contribution))
            .collect();
        if pieces.len() > 4 {
            parts.push(format!("{} more", pieces.len() - 4));
        }
        let mut reason = self.mention_note.clone();
        if !parts.is_empty() {
            reason.push_str(": ");
            reason.push_str(&parts.join("; "));
        }
        if !self.flags.is_empty() {
            reason.push_str(" [");
            reason.push_str(&self.flags.join("; "));
            reason.push(']');
        }
        Evidence {
            span: self.span,
            text: self.text.clone(),
            contribution: self.total,
            reason,
            mentions: self.mention_spans(),
            model: None,
        }
    }

    /// The mentions as document spans (the sentence's text is a slice of
    /// the document starting at `span`).
    pub(crate) fn mention_spans(&self) -> Vec<crate::text::TextSpan> {
        let chars = |b: usize| self.text.get(..b).map(|t| t.chars().count());
        self.mentions
            .iter()
            .filter_map(|&(a, b)| {
                Some(crate::text::TextSpan {
                    start_char: self.span.start_char + chars(a)?,
                    end_char: self.span.start_char + chars(b)?,
                    start_byte: self.span.start_byte + a,
                    end_byte: self.span.start_byte + b,
                })
            })
            .collect()
    }
}

/// A token range with its first and last word positions.
#[derive(Debug, Clone, Copy)]
struct WordRange {
    start: usize,
    end: usize,
    lo: usize,
    hi: usize,
}

fn word_range(tokens: &[Token], start: usize, end: usize) -> WordRange {
    let slice = tokens.get(start..end.min(tokens.len())).unwrap_or(&[]);
    let mut words = slice.iter().filter(|t| t.is_word()).map(|t| t.word);
    let first = words.next();
    let lo = first.or_else(|| slice.first().map(|t| t.word)).unwrap_or(0);
    let hi = words.next_back().unwrap_or(lo);
    WordRange { start, end, lo, hi }
}

/// Words strictly between two ranges (0 when adjacent or overlapping).
fn gap(a: &WordRange, b: &WordRange) -> usize {
    if a.hi < b.lo {
        b.lo - a.hi - 1
    } else if b.hi < a.lo {
        a.lo - b.hi - 1
    } else {
        0
    }
}

/// Maps a byte range of the sentence to the tokens it overlaps.
fn tokens_in(tokens: &[Token], start: usize, end: usize) -> Option<(usize, usize)> {
    let first = tokens.iter().position(|t| t.end > start)?;
    let last = tokens.iter().rposition(|t| t.start < end)?;
    (first <= last).then_some((first, last + 1))
}

struct SentenceScorer<'a> {
    lex: &'a Lexicon,
    cfg: &'a StanceConfig,
    matcher: &'a TargetMatcher,
    target: &'a Target,
}

/// A matched cue phrase.
#[derive(Debug, Clone, Copy)]
struct CueMatch {
    cue: usize,
    range: WordRange,
    /// -1 when negated.
    polarity: f32,
}

/// Everything known about one tokenized sentence.
struct Ctx<'s> {
    text: &'s str,
    tokens: Vec<Token>,
    occurrences: Vec<WordRange>,
    others: Vec<WordRange>,
    contrasts: Vec<usize>,
    in_quote: Vec<bool>,
    has_report: bool,
    target_is_speaker: bool,
    /// The dependency parse, when the recognizer ran the parser.
    parse: Option<Parse>,
}

impl SentenceScorer<'_> {
    fn dist_weight(&self, d: usize) -> f32 {
        1.0 / (1.0 + d as f32 / self.cfg.distance_decay)
    }

    fn score(&self, sentence: &Sentence, text: &str) -> Option<SentenceScore> {
        let span = sentence.span;
        // Trust the sentence's offsets only if they slice the text to it.
        let (stext, offset) = match text.get(span.start_byte..span.end_byte) {
            Some(s) if s == sentence.text => (s, Some(span.start_byte)),
            _ => (sentence.text.as_str(), None),
        };
        let tokens = tokenize(stext);
        if tokens.is_empty() {
            return None;
        }
        let entities: Vec<EntityRange> = match offset {
            Some(off) => sentence
                .mentions
                .iter()
                .filter_map(|m| {
                    let s = m.span.start_byte.checked_sub(off)?;
                    let e = m.span.end_byte.checked_sub(off)?;
                    let (a, b) = tokens_in(&tokens, s, e)?;
                    Some(EntityRange {
                        start: a,
                        end: b,
                        text: m.text.clone(),
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let spans: Vec<(usize, usize)> = match offset {
            Some(off) => self
                .target
                .spans
                .iter()
                .filter(|s| s.start_byte >= off && s.end_byte <= off + stext.len())
                .filter(|s| {
                    let t = text.get(s.start_byte..s.end_byte).unwrap_or("");
                    !t.is_empty()
                        && (t == self.target.name || self.target.aliases.iter().any(|a| a == t))
                })
                .filter_map(|s| tokens_in(&tokens, s.start_byte - off, s.end_byte - off))
                .collect(),
            None => Vec::new(),
        };
        let occ: Vec<Occurrence> = self.matcher.find(stext, &tokens, &entities, &spans);
        if occ.is_empty() {
            return None;
        }
        let occurrences: Vec<WordRange> = occ
            .iter()
            .map(|o| word_range(&tokens, o.start, o.end))
            .collect();
        let others: Vec<WordRange> = entities
            .iter()
            .filter(|e| !self.matcher.is_alias(&e.text))
            .filter(|e| !occ.iter().any(|o| o.start < e.end && e.start < o.end))
            .map(|e| word_range(&tokens, e.start, e.end))
            .collect();

        let mention_note = {
            let o = &occ[0];
            let shown = stext
                .get(tokens[o.start].start..tokens[o.end - 1].end)
                .unwrap_or("")
                .to_string();
            match o.form.and_then(|k| self.matcher.forms.get(k)) {
                Some(f) if f.origin != "the target's name" => {
                    format!("mentions {} as {shown:?} ({})", self.target.name, f.origin)
                }
                _ => format!("mentions {shown:?}"),
            }
        };

        let parse = offset.and_then(|off| Parse::new(sentence, off, &tokens));
        let contrasts = self.positions(&tokens, &self.lex.contrasts);
        let in_quote = quote_mask(&tokens, cfg_min_quote(self.cfg));
        let reports = self.positions(&tokens, &self.lex.reports);
        // A reporting word inside a name ("United States") or used as a
        // noun or modifier does not report speech.
        let reports: Vec<usize> = reports
            .into_iter()
            .filter(|&p| !in_quote[p])
            .filter(|&p| !entities.iter().any(|e| e.start <= p && p < e.end))
            .filter(|&p| parse.as_ref().map_or(true, |pp| pp.is_predicate(p)))
            .collect();
        let has_report = !reports.is_empty();
        // The speaker: with a parse, the target is (in) the subject of a
        // reporting verb; without, the entity nearest it, within 3 words.
        let speaker_by_parse = |p: usize, pp: &Parse| {
            let Some(verb) = pp.node(p) else {
                return false;
            };
            let Some(subject) = pp.subject(verb) else {
                return false;
            };
            occurrences.iter().any(|o| {
                pp.nodes(o.start, o.end)
                    .iter()
                    .any(|&n| pp.within(subject, n))
            })
        };
        let target_is_speaker = reports.iter().any(|&p| {
            if let Some(pp) = &parse {
                return speaker_by_parse(p, pp);
            }
            let verb = word_range(&tokens, p, p + 1);
            let best_target = occurrences.iter().map(|o| gap(o, &verb)).min();
            let best_other = others.iter().map(|o| gap(o, &verb)).min();
            match (best_target, best_other) {
                (Some(t), Some(o)) => t <= 3 && t <= o,
                (Some(t), None) => t <= 3,
                _ => false,
            }
        });
        let ctx = Ctx {
            text: stext,
            tokens,
            occurrences,
            others,
            contrasts,
            in_quote,
            has_report,
            target_is_speaker,
            parse,
        };

        let mut pieces = Vec::new();
        let cue_ranges = self.cue_contributions(&ctx, &mut pieces);
        self.sentiment_contributions(&ctx, &cue_ranges, &entities, &mut pieces);

        let mut flags = Vec::new();
        if ctx.has_report || ctx.in_quote.iter().any(|&q| q) {
            flags.push(format!(
                "reported speech weighs x{:.2}",
                self.cfg.reported_speech_weight
            ));
        }
        if ctx.target_is_speaker {
            flags.push("the target is the speaker".into());
        }
        if !ctx.contrasts.is_empty() {
            flags.push("contrast: the clause after it weighs more".into());
        }
        let total: f32 = pieces.iter().map(|p| p.contribution).sum();
        let total = if total.is_finite() { total } else { 0.0 };
        let quoted = occ
            .iter()
            .any(|o| (o.start..o.end).any(|i| ctx.in_quote.get(i).copied().unwrap_or(false)));
        let reported = quoted || (ctx.has_report && !ctx.target_is_speaker);
        // Byte ranges in the sentence's text (`stext` is that text).
        let mentions = occ
            .iter()
            .map(|o| (ctx.tokens[o.start].start, ctx.tokens[o.end - 1].end))
            .collect();
        Some(SentenceScore {
            order: 0,
            span,
            text: sentence.text.clone(),
            total,
            pieces,
            mention_note,
            flags,
            mentions,
            reported,
        })
    }

    /// Token indices where any of `patterns` starts.
    fn positions(&self, tokens: &[Token], patterns: &[lexicon::Pattern]) -> Vec<usize> {
        (0..tokens.len())
            .filter(|&i| patterns.iter().any(|p| p.matches_at(tokens, i)))
            .collect()
    }

    /// -1 if a negator stands within the negation window before token `at`
    /// (not across a comma or other clause punctuation), else 1.
    fn polarity(&self, tokens: &[Token], at: usize) -> f32 {
        let Some(here) = tokens.get(at) else {
            return 1.0;
        };
        let mut j = at;
        while j > 0 {
            j -= 1;
            let t = &tokens[j];
            if here.word.saturating_sub(t.word) > self.cfg.negation_window {
                break;
            }
            if t.kind == TokenKind::Punct && t.norm != "-" {
                break;
            }
            if self.lex.negators.iter().any(|p| p.matches_at(tokens, j)) {
                return -1.0;
            }
        }
        1.0
    }

    fn contrast_factor(&self, ctx: &Ctx, at: usize) -> f32 {
        if ctx.contrasts.iter().any(|&c| c < at) {
            self.cfg.contrast_after_weight
        } else if ctx.contrasts.iter().any(|&c| c > at) {
            self.cfg.contrast_before_weight
        } else {
            1.0
        }
    }

    fn speech_factor(&self, ctx: &Ctx, at: usize) -> f32 {
        if ctx.has_report || ctx.in_quote.get(at).copied().unwrap_or(false) {
            self.cfg.reported_speech_weight
        } else {
            1.0
        }
    }

    /// Matched cue phrases, longest first at each place, not overlapping
    /// each other or any entity.
    fn cue_matches(&self, ctx: &Ctx) -> Vec<CueMatch> {
        let mut out = Vec::new();
        let mut covered = 0;
        let entity_at = |i: usize| {
            ctx.occurrences
                .iter()
                .chain(&ctx.others)
                .any(|r| r.start <= i && i < r.end)
        };
        for i in 0..ctx.tokens.len() {
            if i < covered {
                continue;
            }
            let best = self
                .lex
                .cues
                .iter()
                .enumerate()
                .filter(|(_, c)| c.pattern.matches_at(&ctx.tokens, i))
                .max_by_key(|(_, c)| c.pattern.len());
            let Some((k, cue)) = best else { continue };
            let end = i + cue.pattern.len();
            if (i..end).any(entity_at) {
                continue;
            }
            covered = end;
            out.push(CueMatch {
                cue: k,
                range: word_range(&ctx.tokens, i, end),
                polarity: self.polarity(&ctx.tokens, i),
            });
        }
        out
    }

    /// The nearest target occurrence on the side `role` asks for, with the
    /// number of words between.
    fn nearest(&self, ctx: &Ctx, cue: &WordRange, role: Role) -> Option<(usize, WordRange)> {
        self.nearest_except(ctx, cue, role, &|_| false)
    }

    /// [`Self::nearest`] without the occurrences `skip` rejects. With a
    /// parse, the target must stand in the cue's syntactic role and the
    /// distance is counted in tree edges.
    fn nearest_except(
        &self,
        ctx: &Ctx,
        cue: &WordRange,
        role: Role,
        skip: &dyn Fn(&WordRange) -> bool,
    ) -> Option<(usize, WordRange)> {
        if let Some(p) = &ctx.parse {
            let cn = p.nodes(cue.start, cue.end);
            if let Some(ct) = p.top(&cn) {
                return ctx
                    .occurrences
                    .iter()
                    .filter(|o| !skip(o))
                    .filter_map(|o| {
                        let on = p.nodes(o.start, o.end);
                        let ot = p.top(&on)?;
                        let ok = match role {
                            Role::Object => p.is_object(ct, &cn, &on),
                            Role::Subject => p.is_subject(ct, &on),
                            Role::Any => p.is_object(ct, &cn, &on) || p.is_subject(ct, &on),
                        };
                        let d = p.distance(ct, ot).saturating_sub(1);
                        (ok && d <= self.cfg.max_cue_distance).then_some((d, *o))
                    })
                    .min_by_key(|(d, _)| *d);
            }
        }
        ctx.occurrences
            .iter()
            .filter(|o| match role {
                Role::Object => o.lo > cue.hi,
                Role::Subject => o.hi < cue.lo,
                Role::Any => o.lo > cue.hi || o.hi < cue.lo,
            })
            .map(|o| (gap(cue, o), *o))
            .filter(|(d, _)| {
                *d <= match role {
                    Role::Subject => self.cfg.max_subject_distance,
                    _ => self.cfg.max_cue_distance,
                }
            })
            .min_by_key(|(d, _)| *d)
    }

    /// Whether another entity stands between `a` and `b` and is not just
    /// coordinated with the target ("Russia and China").
    fn blocked(&self, ctx: &Ctx, cue: &WordRange, occ: &WordRange) -> bool {
        let (lo, hi) = if cue.hi < occ.lo {
            (cue.end, occ.start)
        } else {
            (occ.end, cue.start)
        };
        ctx.others.iter().any(|e| {
            if !(e.start >= lo && e.end <= hi) {
                return false;
            }
            // Tokens between the other entity and the target.
            let (a, b) = if e.end <= occ.start {
                (e.end, occ.start)
            } else {
                (occ.end, e.start)
            };
            let coordinated = ctx.tokens.get(a..b).is_some_and(|between| {
                between
                    .iter()
                    .all(|t| matches!(t.norm.as_str(), "and" | "or" | "," | "&" | "nor"))
            });
            !coordinated
        })
    }

    /// Adds the stance cues' pieces; returns the token ranges of all cues.
    fn cue_contributions(&self, ctx: &Ctx, pieces: &mut Vec<Piece>) -> Vec<(usize, usize)> {
        let matches = self.cue_matches(ctx);
        let cue_text = |m: &CueMatch| {
            let a = ctx.tokens.get(m.range.start).map_or(0, |t| t.start);
            let b = ctx
                .tokens
                .get(m.range.end.saturating_sub(1))
                .map_or(0, |t| t.end);
            ctx.text.get(a..b).unwrap_or("").to_string()
        };
        // Attitude cues whose object is another cue: (outer, inner).
        let mut chained_outer = vec![false; matches.len()];
        let mut chain_into: Vec<Option<usize>> = vec![None; matches.len()];
        let has_object_sense = |m: &CueMatch| {
            self.lex.cues[m.cue]
                .senses
                .iter()
                .any(|s| matches!(s.role, Role::Object | Role::Any) && s.weight != 0.0)
        };
        let is_outer = |m: &CueMatch| {
            self.lex.cues[m.cue]
                .sense(Role::Object)
                .is_some_and(|s| s.attitude && s.weight != 0.0)
        };
        // With a parse: the inner cues in each outer cue's object scope.
        let mut inners: Vec<Vec<usize>> = vec![Vec::new(); matches.len()];
        if let Some(p) = &ctx.parse {
            for (i, outer) in matches.iter().enumerate() {
                if !is_outer(outer) {
                    continue;
                }
                let on = p.nodes(outer.range.start, outer.range.end);
                let Some(ot) = p.top(&on) else { continue };
                for (j, m) in matches.iter().enumerate() {
                    if j == i || !has_object_sense(m) {
                        continue;
                    }
                    let mn = p.nodes(m.range.start, m.range.end);
                    if p.is_object(ot, &on, &mn) {
                        inners[i].push(j);
                        let nearer = chain_into[j].map_or(true, |k: usize| {
                            let kn = p.nodes(matches[k].range.start, matches[k].range.end);
                            let kt = p.top(&kn).unwrap_or(ot);
                            let mt = p.top(&mn).unwrap_or(ot);
                            p.distance(ot, mt) < p.distance(kt, mt)
                        });
                        if nearer {
                            chain_into[j] = Some(i);
                        }
                    }
                }
            }
        } else {
            for (i, outer) in matches.iter().enumerate() {
                if !is_outer(outer) {
                    continue;
                }
                let inner = matches.iter().enumerate().skip(i + 1).find(|(_, m)| {
                    m.range.lo > outer.range.hi
                        && gap(&outer.range, &m.range) <= self.cfg.chain_window
                        && has_object_sense(m)
                });
                if let Some((j, _)) = inner {
                    // Only when the inner cue has the target as its object.
                    if self.nearest(ctx, &matches[j].range, Role::Object).is_some() {
                        chained_outer[i] = true;
                        chain_into[j] = Some(i);
                    }
                }
            }
        }
        // With a parse, an outer cue skips the occurrences that are the
        // object of one of its inner cues (composition scores them), but
        // still reaches the inner deed's doer ("condemned X's attack").
        let object_of_inner = |i: usize, o: &WordRange| {
            let Some(p) = &ctx.parse else { return false };
            let on = p.nodes(o.start, o.end);
            inners[i].iter().any(|&j| {
                let jn = p.nodes(matches[j].range.start, matches[j].range.end);
                p.top(&jn).is_some_and(|jt| p.is_object(jt, &jn, &on))
            })
        };

        for (i, m) in matches.iter().enumerate() {
            let cue = &self.lex.cues[m.cue];
            for sense in &cue.senses {
                if sense.weight == 0.0 {
                    continue;
                }
                if chained_outer[i] && sense.role == Role::Object {
                    continue;
                }
                let skip = |o: &WordRange| sense.role == Role::Object && object_of_inner(i, o);
                let Some((d, occ)) = self.nearest_except(ctx, &m.range, sense.role, &skip) else {
                    continue;
                };
                // Composition applies when the target is this cue's object.
                let chained = chain_into[i].is_some()
                    && sense.role != Role::Subject
                    && ctx.parse.as_ref().map_or(true, |p| {
                        let cn = p.nodes(m.range.start, m.range.end);
                        let on = p.nodes(occ.start, occ.end);
                        p.top(&cn).is_some_and(|ct| p.is_object(ct, &cn, &on))
                    });
                let mut w = sense.weight * m.polarity;
                let mut note = format!("{:?}", cue_text(m));
                if m.polarity < 0.0 {
                    note.push_str(" negated");
                }
                if let (Some(o), true) = (chain_into[i], chained) {
                    let outer = &matches[o];
                    let outer_w = self.lex.cues[outer.cue]
                        .sense(Role::Object)
                        .map_or(0.0, |s| s.weight)
                        * outer.polarity;
                    // The deed's effect on the target: a victim deed harms it.
                    let effect = if sense.victim { -1.0 } else { w.signum() };
                    w = effect * outer_w;
                    note = format!(
                        "{:?}{} governing {note}: {} an action on the target",
                        cue_text(outer),
                        if outer.polarity < 0.0 { " negated" } else { "" },
                        if outer_w < 0.0 {
                            "opposing"
                        } else {
                            "endorsing"
                        }
                    );
                } else if !sense.reason.is_empty() {
                    note.push_str(&format!(" ({})", sense.reason));
                }
                let mut c = w
                    * self.dist_weight(d)
                    * self.cfg.cue_weight
                    * self.contrast_factor(ctx, m.range.start)
                    * self.speech_factor(ctx, m.range.start);
                // With a parse the role test has tied the cue to the target.
                if ctx.parse.is_none() && self.blocked(ctx, &m.range, &occ) {
                    c *= self.cfg.blocked_weight;
                    note.push_str(", nearer another entity");
                }
                if c != 0.0 && c.is_finite() {
                    pieces.push(Piece {
                        contribution: c,
                        note: format!("cue {note}"),
                    });
                }
            }
        }
        matches
            .iter()
            .map(|m| (m.range.start, m.range.end))
            .collect()
    }

    fn sentiment_contributions(
        &self,
        ctx: &Ctx,
        cue_ranges: &[(usize, usize)],
        entities: &[EntityRange],
        pieces: &mut Vec<Piece>,
    ) {
        let modifiers: Vec<usize> = [&self.lex.negators, &self.lex.contrasts, &self.lex.reports]
            .iter()
            .flat_map(|p| self.positions(&ctx.tokens, p))
            .collect();
        for (i, t) in ctx.tokens.iter().enumerate() {
            if !t.is_word() {
                continue;
            }
            let Some(&valence) = self.lex.vader.get(&t.norm) else {
                continue;
            };
            if self.lex.ignore.contains(&t.norm)
                || modifiers.contains(&i)
                || cue_ranges.iter().any(|&(a, b)| a <= i && i < b)
                || entities.iter().any(|e| e.start <= i && i < e.end)
                || ctx.occurrences.iter().any(|o| o.start <= i && i < o.end)
            {
                continue;
            }
            let here = word_range(&ctx.tokens, i, i + 1);
            let Some(d) = ctx.occurrences.iter().map(|o| gap(o, &here)).min() else {
                continue;
            };
            if d > 2 * self.cfg.max_cue_distance {
                continue;
            }
            let polarity = self.polarity(&ctx.tokens, i);
            let mut c = valence / 4.0
                * polarity
                * self.cfg.sentiment_weight
                * self.dist_weight(d)
                * self.contrast_factor(ctx, i)
                * self.speech_factor(ctx, i);
            let mut note = format!("sentiment {:?}", ctx.text.get(t.start..t.end).unwrap_or(""));
            if polarity < 0.0 {
                note.push_str(" negated");
            }
            if ctx.others.iter().map(|o| gap(o, &here)).any(|od| od < d) {
                c *= self.cfg.other_entity_weight;
            }
            if ctx.target_is_speaker {
                c *= self.cfg.speaker_weight;
            }
            if c != 0.0 && c.is_finite() {
                pieces.push(Piece {
                    contribution: c,
                    note,
                });
            }
        }
    }
}

fn cfg_min_quote(cfg: &StanceConfig) -> usize {
    cfg.min_quote_words
}

/// Which tokens are inside quotation marks of at least `min_words` words
/// (shorter quotes are scare quotes or names, not reported speech). A
/// sentence that continues a quotation from the one before (its first mark
/// closes) starts inside.
fn quote_mask(tokens: &[Token], min_words: usize) -> Vec<bool> {
    let mask = raw_quote_mask(tokens);
    let mut out = mask.clone();
    let mut i = 0;
    while i < mask.len() {
        if !mask[i] {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < mask.len() && mask[j] {
            j += 1;
        }
        let words = tokens[i..j].iter().filter(|t| t.is_word()).count();
        if words < min_words {
            out[i..j].iter_mut().for_each(|m| *m = false);
        }
        i = j;
    }
    out
}

fn raw_quote_mask(tokens: &[Token]) -> Vec<bool> {
    let marks: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| t.kind == TokenKind::Quote)
        .map(|(i, _)| i)
        .collect();
    let mut inside = marks.len() % 2 == 1
        && marks
            .first()
            .and_then(|&i| tokens.get(i))
            .is_some_and(|t| matches!(t.norm.as_str(), "\u{201d}" | "\u{00bb}"));
    let mut mask = Vec::with_capacity(tokens.len());
    for t in tokens {
        if t.kind == TokenKind::Quote {
            let opening = matches!(t.norm.as_str(), "\u{201c}" | "\u{201e}" | "\u{00ab}");
            let closing = matches!(t.norm.as_str(), "\u{201d}" | "\u{00bb}");
            inside = if opening {
                true
            } else if closing {
                false
            } else {
                !inside
            };
            mask.push(false);
        } else {
            mask.push(inside);
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_respects_the_margin() {
        for s in [-100.0, -2.0, 0.0, 0.5, 3.0, f32::NAN, f32::INFINITY] {
            let p = softmax(s, 1.0);
            assert!((p.favor + p.against + p.neutral - 1.0).abs() < 1e-5, "{s}");
        }
        assert_eq!(
            softmax(0.0, 1.0).best().0,
            crate::pipeline::StanceLabel::Neutral
        );
        assert_eq!(
            softmax(1.5, 1.0).best().0,
            crate::pipeline::StanceLabel::Favor
        );
        assert_eq!(
            softmax(-1.5, 1.0).best().0,
            crate::pipeline::StanceLabel::Against
        );
    }

    #[test]
    fn quotes_are_tracked() {
        let toks = tokenize("He said “we oppose it” today");
        let mask = quote_mask(&toks, 1);
        let inside: Vec<&str> = toks
            .iter()
            .zip(mask)
            .filter(|(_, m)| *m)
            .map(|(t, _)| t.norm.as_str())
            .collect();
        assert_eq!(inside, ["we", "oppose", "it"]);
    }
}
