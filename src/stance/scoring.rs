//! Per-sentence scoring: what one sentence says about the target.
//!
//! [`SentenceScorer::score`] reads a sentence's tokens, finds the target's
//! mentions and the other entities in it, works out the modifiers that
//! apply (contrast words, quotation, reported speech and who the speaker
//! is), then sums the pieces of evidence: the stance cues' (in
//! [`super::cues`]) and the general sentiment's. The word ranges, distances
//! and weighting rules the cues share with the sentiment live here too, so
//! that both are scoped the same way. The result is a [`SentenceScore`],
//! which the engine in [`super`] sums over the document and turns into
//! evidence.

use crate::pipeline::{Evidence, Sentence, Target};

use super::config::StanceConfig;
use super::lexicon::{self, Lexicon, Role};
use super::quotes::{cfg_min_quote, quote_mask};
use super::syntax::Parse;
use super::targets::{EntityRange, Occurrence, TargetMatcher};
use super::tokens::{from_sentence, tokenize, Token, TokenKind};

/// One thing in a sentence that moved the score.
#[derive(Debug, Clone)]
pub(super) struct Piece {
    pub(super) contribution: f32,
    pub(super) note: String,
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
pub(super) struct WordRange {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) lo: usize,
    pub(super) hi: usize,
}

pub(super) fn word_range(tokens: &[Token], start: usize, end: usize) -> WordRange {
    let slice = tokens.get(start..end.min(tokens.len())).unwrap_or(&[]);
    let mut words = slice.iter().filter(|t| t.is_word()).map(|t| t.word);
    let first = words.next();
    let lo = first.or_else(|| slice.first().map(|t| t.word)).unwrap_or(0);
    let hi = words.next_back().unwrap_or(lo);
    WordRange { start, end, lo, hi }
}

/// Words strictly between two ranges (0 when adjacent or overlapping).
pub(super) fn gap(a: &WordRange, b: &WordRange) -> usize {
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
    // Tokens are in text order and do not overlap: two binary searches.
    let first = tokens.partition_point(|t| t.end <= start);
    let past = tokens.partition_point(|t| t.start < end);
    (first < past).then_some((first, past))
}

/// The sentence's text and, if its offsets can be trusted (they slice the
/// document to exactly that text), the byte offset where it starts.
fn sentence_text<'s>(sentence: &'s Sentence, text: &'s str) -> (&'s str, Option<usize>) {
    let span = sentence.span;
    match text.get(span.start_byte..span.end_byte) {
        Some(s) if s == sentence.text => (s, Some(span.start_byte)),
        _ => (sentence.text.as_str(), None),
    }
}

/// The recognizer's entity mentions in the sentence (which starts at byte
/// `off` of the document), as token ranges.
fn entity_ranges(sentence: &Sentence, off: usize, tokens: &[Token]) -> Vec<EntityRange> {
    sentence
        .mentions
        .iter()
        .filter_map(|m| {
            let s = m.span.start_byte.checked_sub(off)?;
            let e = m.span.end_byte.checked_sub(off)?;
            let (a, b) = tokens_in(tokens, s, e)?;
            Some(EntityRange {
                start: a,
                end: b,
                text: m.text.clone(),
            })
        })
        .collect()
}

/// Scores sentences toward one target.
pub(super) struct SentenceScorer<'a> {
    pub(super) lex: &'a Lexicon,
    pub(super) cfg: &'a StanceConfig,
    pub(super) matcher: &'a TargetMatcher,
    pub(super) target: &'a Target,
}

/// Everything known about one tokenized sentence.
pub(super) struct Ctx<'s> {
    pub(super) text: &'s str,
    pub(super) tokens: Vec<Token>,
    pub(super) occurrences: Vec<WordRange>,
    pub(super) others: Vec<WordRange>,
    pub(super) contrasts: Vec<usize>,
    pub(super) in_quote: Vec<bool>,
    pub(super) has_report: bool,
    pub(super) target_is_speaker: bool,
    /// The dependency parse, when the recognizer ran the parser.
    pub(super) parse: Option<Parse>,
}

impl SentenceScorer<'_> {
    pub(super) fn dist_weight(&self, d: usize) -> f32 {
        1.0 / (1.0 + d as f32 / self.cfg.distance_decay)
    }

    /// The sentence's reading, or `None` when it does not mention the
    /// target.
    pub(super) fn score(&self, sentence: &Sentence, text: &str) -> Option<SentenceScore> {
        let (stext, offset) = sentence_text(sentence, text);
        let tokens = offset
            .and_then(|off| from_sentence(sentence, off))
            .unwrap_or_else(|| tokenize(stext));
        if tokens.is_empty() {
            return None;
        }
        let entities: Vec<EntityRange> = match offset {
            Some(off) => entity_ranges(sentence, off, &tokens),
            None => Vec::new(),
        };
        let spans: Vec<(usize, usize)> = match offset {
            Some(off) => self.target_spans(text, stext, off, &tokens),
            None => Vec::new(),
        };
        let occ: Vec<Occurrence> = self.matcher.find(stext, &tokens, &entities, &spans);
        if occ.is_empty() {
            return None;
        }
        let mention_note = self.mention_note(stext, &tokens, &occ[0]);
        let ctx = self.context(sentence, stext, offset, tokens, &occ, &entities);

        let mut pieces = Vec::new();
        let cue_ranges = self.cue_contributions(&ctx, &mut pieces);
        self.sentiment_contributions(&ctx, &cue_ranges, &entities, &mut pieces);

        let flags = self.flags(&ctx);
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
            span: sentence.span,
            text: sentence.text.clone(),
            total,
            pieces,
            mention_note,
            flags,
            mentions,
            reported,
        })
    }

    /// The target's own spans (the caller's, checked to spell its name or
    /// an alias) that fall in the sentence `stext`, which starts at byte
    /// `off` of `text`, as token ranges.
    fn target_spans(
        &self,
        text: &str,
        stext: &str,
        off: usize,
        tokens: &[Token],
    ) -> Vec<(usize, usize)> {
        self.target
            .spans
            .iter()
            .filter(|s| s.start_byte >= off && s.end_byte <= off + stext.len())
            .filter(|s| {
                let t = text.get(s.start_byte..s.end_byte).unwrap_or("");
                !t.is_empty()
                    && (t == self.target.name || self.target.aliases.iter().any(|a| a == t))
            })
            .filter_map(|s| tokens_in(tokens, s.start_byte - off, s.end_byte - off))
            .collect()
    }

    /// How the evidence names the first mention: as written, and by which
    /// form of the target when that is not its name.
    fn mention_note(&self, stext: &str, tokens: &[Token], o: &Occurrence) -> String {
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
    }

    /// The sentence's [`Ctx`]: the target's occurrences `occ` and the other
    /// entities as word ranges, the parse, contrast words, quotation and
    /// reported speech.
    fn context<'s>(
        &self,
        sentence: &Sentence,
        stext: &'s str,
        offset: Option<usize>,
        tokens: Vec<Token>,
        occ: &[Occurrence],
        entities: &[EntityRange],
    ) -> Ctx<'s> {
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
        let parse = offset.and_then(|off| Parse::new(sentence, off, &tokens));
        let contrasts = self.positions(&tokens, &self.lex.contrasts);
        let in_quote = quote_mask(&tokens, cfg_min_quote(self.cfg));
        let reports = self.reports(&tokens, &in_quote, entities, parse.as_ref());
        let has_report = !reports.is_empty();
        let target_is_speaker =
            target_is_speaker(&reports, &tokens, &occurrences, &others, parse.as_ref());
        Ctx {
            text: stext,
            tokens,
            occurrences,
            others,
            contrasts,
            in_quote,
            has_report,
            target_is_speaker,
            parse,
        }
    }

    /// Where reporting words ("said", "according to") report speech. A
    /// reporting word inside a quote or a name ("United States"), or used
    /// as a noun or modifier, does not.
    fn reports(
        &self,
        tokens: &[Token],
        in_quote: &[bool],
        entities: &[EntityRange],
        parse: Option<&Parse>,
    ) -> Vec<usize> {
        self.positions(tokens, &self.lex.reports)
            .into_iter()
            .filter(|&p| !in_quote[p])
            .filter(|&p| !entities.iter().any(|e| e.start <= p && p < e.end))
            .filter(|&p| parse.map_or(true, |pp| pp.is_predicate(p)))
            .collect()
    }

    /// The notes on the modifiers that applied to the whole sentence.
    fn flags(&self, ctx: &Ctx) -> Vec<String> {
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
        flags
    }

    /// Token indices where any of `patterns` starts.
    fn positions(&self, tokens: &[Token], patterns: &[lexicon::Pattern]) -> Vec<usize> {
        (0..tokens.len())
            .filter(|&i| patterns.iter().any(|p| p.matches_at(tokens, i)))
            .collect()
    }

    /// -1 if a negator stands within the negation window before token `at`
    /// (not across a comma or other clause punctuation), else 1.
    pub(super) fn polarity(&self, tokens: &[Token], at: usize) -> f32 {
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

    pub(super) fn contrast_factor(&self, ctx: &Ctx, at: usize) -> f32 {
        if ctx.contrasts.iter().any(|&c| c < at) {
            self.cfg.contrast_after_weight
        } else if ctx.contrasts.iter().any(|&c| c > at) {
            self.cfg.contrast_before_weight
        } else {
            1.0
        }
    }

    pub(super) fn speech_factor(&self, ctx: &Ctx, at: usize) -> f32 {
        if ctx.has_report || ctx.in_quote.get(at).copied().unwrap_or(false) {
            self.cfg.reported_speech_weight
        } else {
            1.0
        }
    }

    /// The nearest target occurrence on the side `role` asks for, with the
    /// number of words between.
    pub(super) fn nearest(
        &self,
        ctx: &Ctx,
        cue: &WordRange,
        role: Role,
    ) -> Option<(usize, WordRange)> {
        self.nearest_except(ctx, cue, role, &|_| false)
    }

    /// [`Self::nearest`] without the occurrences `skip` rejects. With a
    /// parse, the target must stand in the cue's syntactic role and the
    /// distance is counted in tree edges.
    pub(super) fn nearest_except(
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
    pub(super) fn blocked(&self, ctx: &Ctx, cue: &WordRange, occ: &WordRange) -> bool {
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

    /// Adds the general sentiment's pieces: VADER words near the target
    /// that no cue, modifier or entity covers, weighted by distance.
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

/// Whether the target speaks through one of the reporting words at
/// `reports`: with a parse, the target is (in) the subject of a reporting
/// verb; without, the target is the entity nearest it, within 3 words.
fn target_is_speaker(
    reports: &[usize],
    tokens: &[Token],
    occurrences: &[WordRange],
    others: &[WordRange],
    parse: Option<&Parse>,
) -> bool {
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
    reports.iter().any(|&p| {
        if let Some(pp) = parse {
            return speaker_by_parse(p, pp);
        }
        let verb = word_range(tokens, p, p + 1);
        let best_target = occurrences.iter().map(|o| gap(o, &verb)).min();
        let best_other = others.iter().map(|o| gap(o, &verb)).min();
        match (best_target, best_other) {
            (Some(t), Some(o)) => t <= 3 && t <= o,
            (Some(t), None) => t <= 3,
            _ => false,
        }
    })
}
