//! Cue matching: the stance cues of `data/stance/cues.tsv` in a sentence.
//!
//! A cue phrase is matched where it starts (the longest one at each place,
//! never across an entity), then each of its senses scores the nearest
//! target occurrence on the side the sense asks for ("condemn X": object;
//! "X's invasion": subject). An attitude cue whose object is another cue
//! composes with it: "condemned sanctions on X" scores the sanctions' effect
//! on X times the condemnation, FAVOR X. These rules are apart from the
//! general sentiment in [`super::scoring`] because composition needs every
//! cue of the sentence at once; the scoping helpers they share are there.

use super::lexicon::{CueSense, Role};
use super::scoring::{gap, word_range, Ctx, Piece, SentenceScorer, WordRange};
use super::syntax::Parse;

/// A matched cue phrase.
#[derive(Debug, Clone, Copy)]
struct CueMatch {
    cue: usize,
    range: WordRange,
    /// -1 when negated.
    polarity: f32,
}

/// Attitude cues whose object is another cue (outer, inner), indexed like
/// the sentence's cue matches.
struct Chains {
    /// Without a parse: the outer cues that govern an inner cue, whose own
    /// object sense is then not scored.
    chained_outer: Vec<bool>,
    /// The outer cue that governs each inner cue.
    chain_into: Vec<Option<usize>>,
    /// With a parse: the inner cues in each outer cue's object scope.
    inners: Vec<Vec<usize>>,
}

/// The cue's words as written in the sentence.
fn cue_text(ctx: &Ctx, m: &CueMatch) -> String {
    let a = ctx.tokens.get(m.range.start).map_or(0, |t| t.start);
    let b = ctx
        .tokens
        .get(m.range.end.saturating_sub(1))
        .map_or(0, |t| t.end);
    ctx.text.get(a..b).unwrap_or("").to_string()
}

/// With a parse, whether the occurrence `o` is the object of one of the
/// `inners` cues (composition scores it, so their outer cue skips it).
fn object_of_inner(ctx: &Ctx, matches: &[CueMatch], inners: &[usize], o: &WordRange) -> bool {
    let Some(p) = &ctx.parse else { return false };
    let on = p.nodes(o.start, o.end);
    inners.iter().any(|&j| {
        let jn = p.nodes(matches[j].range.start, matches[j].range.end);
        p.top(&jn).is_some_and(|jt| p.is_object(jt, &jn, &on))
    })
}

impl SentenceScorer<'_> {
    /// Adds the stance cues' pieces; returns the token ranges of all cues.
    pub(super) fn cue_contributions(
        &self,
        ctx: &Ctx,
        pieces: &mut Vec<Piece>,
    ) -> Vec<(usize, usize)> {
        let matches = self.cue_matches(ctx);
        let chains = self.chains(ctx, &matches);
        for (i, m) in matches.iter().enumerate() {
            let cue = &self.lex.cues[m.cue];
            for sense in &cue.senses {
                if sense.weight == 0.0 {
                    continue;
                }
                if chains.chained_outer[i] && sense.role == Role::Object {
                    continue;
                }
                if let Some(piece) = self.sense_piece(ctx, &matches, &chains, i, sense) {
                    pieces.push(piece);
                }
            }
        }
        matches
            .iter()
            .map(|m| (m.range.start, m.range.end))
            .collect()
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

    /// Whether the cue has a weighted sense with an object (it can be the
    /// inner cue of a composition).
    fn has_object_sense(&self, m: &CueMatch) -> bool {
        self.lex.cues[m.cue]
            .senses
            .iter()
            .any(|s| matches!(s.role, Role::Object | Role::Any) && s.weight != 0.0)
    }

    /// Whether the cue is an attitude toward its object (it can be the outer
    /// cue of a composition).
    fn is_outer(&self, m: &CueMatch) -> bool {
        self.lex.cues[m.cue]
            .sense(Role::Object)
            .is_some_and(|s| s.attitude && s.weight != 0.0)
    }

    /// Which cues compose: by the parse when there is one, else by distance.
    fn chains(&self, ctx: &Ctx, matches: &[CueMatch]) -> Chains {
        let mut chains = Chains {
            chained_outer: vec![false; matches.len()],
            chain_into: vec![None; matches.len()],
            inners: vec![Vec::new(); matches.len()],
        };
        if let Some(p) = &ctx.parse {
            self.chains_by_parse(p, matches, &mut chains);
        } else {
            self.chains_by_distance(ctx, matches, &mut chains);
        }
        chains
    }

    /// With a parse: every cue with an object sense in an outer cue's object
    /// scope is one of its inner cues, and composes with the nearest such
    /// outer cue.
    fn chains_by_parse(&self, p: &Parse, matches: &[CueMatch], chains: &mut Chains) {
        for (i, outer) in matches.iter().enumerate() {
            if !self.is_outer(outer) {
                continue;
            }
            let on = p.nodes(outer.range.start, outer.range.end);
            let Some(ot) = p.top(&on) else { continue };
            for (j, m) in matches.iter().enumerate() {
                if j == i || !self.has_object_sense(m) {
                    continue;
                }
                let mn = p.nodes(m.range.start, m.range.end);
                if p.is_object(ot, &on, &mn) {
                    chains.inners[i].push(j);
                    let nearer = chains.chain_into[j].map_or(true, |k: usize| {
                        let kn = p.nodes(matches[k].range.start, matches[k].range.end);
                        let kt = p.top(&kn).unwrap_or(ot);
                        let mt = p.top(&mn).unwrap_or(ot);
                        p.distance(ot, mt) < p.distance(kt, mt)
                    });
                    if nearer {
                        chains.chain_into[j] = Some(i);
                    }
                }
            }
        }
    }

    /// Without a parse: an outer cue composes with the first later cue with
    /// an object sense within the chain window, if that one has the target
    /// as its object.
    fn chains_by_distance(&self, ctx: &Ctx, matches: &[CueMatch], chains: &mut Chains) {
        for (i, outer) in matches.iter().enumerate() {
            if !self.is_outer(outer) {
                continue;
            }
            let inner = matches.iter().enumerate().skip(i + 1).find(|(_, m)| {
                m.range.lo > outer.range.hi
                    && gap(&outer.range, &m.range) <= self.cfg.chain_window
                    && self.has_object_sense(m)
            });
            if let Some((j, _)) = inner {
                // Only when the inner cue has the target as its object.
                if self.nearest(ctx, &matches[j].range, Role::Object).is_some() {
                    chains.chained_outer[i] = true;
                    chains.chain_into[j] = Some(i);
                }
            }
        }
    }

    /// The piece one sense of the cue `matches[i]` adds for the nearest
    /// target occurrence it reaches, if any and if it moves the score.
    fn sense_piece(
        &self,
        ctx: &Ctx,
        matches: &[CueMatch],
        chains: &Chains,
        i: usize,
        sense: &CueSense,
    ) -> Option<Piece> {
        let m = &matches[i];
        // With a parse, an outer cue skips the occurrences that are the
        // object of one of its inner cues (composition scores them), but
        // still reaches the inner deed's doer ("condemned X's attack").
        let skip = |o: &WordRange| {
            sense.role == Role::Object && object_of_inner(ctx, matches, &chains.inners[i], o)
        };
        let (d, occ) = self.nearest_except(ctx, &m.range, sense.role, &skip)?;
        // Composition applies when the target is this cue's object.
        let chained = chains.chain_into[i].is_some()
            && sense.role != Role::Subject
            && ctx.parse.as_ref().map_or(true, |p| {
                let cn = p.nodes(m.range.start, m.range.end);
                let on = p.nodes(occ.start, occ.end);
                p.top(&cn).is_some_and(|ct| p.is_object(ct, &cn, &on))
            });
        let mut w = sense.weight * m.polarity;
        let mut note = format!("{:?}", cue_text(ctx, m));
        if m.polarity < 0.0 {
            note.push_str(" negated");
        }
        if let (Some(o), true) = (chains.chain_into[i], chained) {
            (w, note) = self.composed(ctx, &matches[o], sense, w, &note);
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
        (c != 0.0 && c.is_finite()).then(|| Piece {
            contribution: c,
            note: format!("cue {note}"),
        })
    }

    /// The weight and note of an inner cue's `sense` (weight `w`, note
    /// `note`) composed with the `outer` attitude cue that governs it.
    fn composed(
        &self,
        ctx: &Ctx,
        outer: &CueMatch,
        sense: &CueSense,
        w: f32,
        note: &str,
    ) -> (f32, String) {
        let outer_w = self.lex.cues[outer.cue]
            .sense(Role::Object)
            .map_or(0.0, |s| s.weight)
            * outer.polarity;
        // The deed's effect on the target: a victim deed harms it.
        let effect = if sense.victim { -1.0 } else { w.signum() };
        let note = format!(
            "{:?}{} governing {note}: {} an action on the target",
            cue_text(ctx, outer),
            if outer.polarity < 0.0 { " negated" } else { "" },
            if outer_w < 0.0 {
                "opposing"
            } else {
                "endorsing"
            }
        );
        (effect * outer_w, note)
    }
}
