//! From word-piece predictions to entity spans, as the Hugging Face
//! token-classification pipeline does it with `aggregation_strategy`
//! `first`, `average` or `max`: pieces are joined into words, each word gets
//! one label, and consecutive words with the same entity type (an `I-` tag
//! continuing, or a bare type) join into one entity.
//!
//! Pure functions over plain numbers, so the rules are tested without a model.

use crate::config::Aggregation;

/// One word piece of the input (special tokens left out).
#[derive(Debug, Clone, PartialEq)]
pub struct PieceScores {
    /// Character (code point) range in the text.
    pub start_char: usize,
    pub end_char: usize,
    /// Whether it continues the previous piece's word.
    pub is_subword: bool,
    /// Softmax over the labels.
    pub probs: Vec<f32>,
}

/// One word with its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub start_char: usize,
    pub end_char: usize,
    pub label: usize,
    pub score: f32,
}

/// An entity: consecutive words of one type.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityGroup {
    /// The type, without its `B-`/`I-` prefix.
    pub label: String,
    pub start_char: usize,
    pub end_char: usize,
    /// Mean of its words' scores.
    pub score: f32,
}

/// Joins pieces into words and labels each word by `strategy`.
pub fn aggregate_words(pieces: &[PieceScores], strategy: Aggregation) -> Vec<Word> {
    let mut words = Vec::new();
    let mut start = 0;
    for i in 1..=pieces.len() {
        if i == pieces.len() || !pieces[i].is_subword {
            if i > start {
                words.push(word(&pieces[start..i], strategy));
            }
            start = i;
        }
    }
    words
}

fn argmax(probs: &[f32]) -> (usize, f32) {
    // The first of equal maxima wins, as numpy's argmax.
    probs
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, p)| {
            if p > best.1 {
                (i, p)
            } else {
                best
            }
        })
}

fn word(pieces: &[PieceScores], strategy: Aggregation) -> Word {
    let (label, score) = match strategy {
        Aggregation::First => argmax(&pieces[0].probs),
        Aggregation::Average => {
            let n = pieces[0].probs.len();
            let mean: Vec<f32> = (0..n)
                .map(|k| pieces.iter().map(|p| p.probs[k]).sum::<f32>() / pieces.len() as f32)
                .collect();
            argmax(&mean)
        }
        Aggregation::Max => {
            // The piece whose best probability is highest (the first on ties).
            let best = pieces.iter().map(|p| argmax(&p.probs)).fold(
                (0, f32::NEG_INFINITY),
                |best, cand| {
                    if cand.1 > best.1 {
                        cand
                    } else {
                        best
                    }
                },
            );
            best
        }
    };
    Word {
        start_char: pieces[0].start_char,
        end_char: pieces[pieces.len() - 1].end_char,
        label,
        score,
    }
}

/// Splits a label into its `B`/`I` part and its type: `B-PER` is (B, PER),
/// `I-PER` and a bare `PER` are (I, PER).
fn tag(label: &str) -> (bool, &str) {
    if let Some(t) = label.strip_prefix("B-") {
        (true, t)
    } else if let Some(t) = label.strip_prefix("I-") {
        (false, t)
    } else {
        (false, label)
    }
}

/// Joins consecutive words of one type into entities and drops the words
/// labelled `O`. `labels` names the label ids.
pub fn group_entities(words: &[Word], labels: &[String]) -> Vec<EntityGroup> {
    let name = |w: &Word| labels.get(w.label).map_or("O", String::as_str);
    let mut groups: Vec<EntityGroup> = Vec::new();
    let mut current: Vec<&Word> = Vec::new();
    let flush = |current: &mut Vec<&Word>, groups: &mut Vec<EntityGroup>| {
        if let (Some(first), Some(last)) = (current.first(), current.last()) {
            let label = tag(name(first)).1.to_string();
            let score = current.iter().map(|w| w.score).sum::<f32>() / current.len() as f32;
            groups.push(EntityGroup {
                label,
                start_char: first.start_char,
                end_char: last.end_char,
                score,
            });
        }
        current.clear();
    };
    for w in words {
        if let Some(last) = current.last() {
            let (begins, kind) = tag(name(w));
            let (_, last_kind) = tag(name(last));
            if kind != last_kind || begins {
                flush(&mut current, &mut groups);
            }
        }
        current.push(w);
    }
    flush(&mut current, &mut groups);
    groups.retain(|g| g.label != "O");
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(start: usize, end: usize, sub: bool, probs: &[f32]) -> PieceScores {
        PieceScores {
            start_char: start,
            end_char: end,
            is_subword: sub,
            probs: probs.to_vec(),
        }
    }

    fn labels() -> Vec<String> {
        ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn strategies_differ_on_a_split_word() {
        // "Wash ##ington": the first piece says ORG weakly, the second PER strongly.
        let pieces = [
            piece(0, 4, false, &[0.1, 0.2, 0.0, 0.45, 0.25]),
            piece(4, 10, true, &[0.0, 0.9, 0.1, 0.0, 0.0]),
        ];
        let first = aggregate_words(&pieces, Aggregation::First);
        assert_eq!((first.len(), first[0].label), (1, 3));
        assert_eq!((first[0].start_char, first[0].end_char), (0, 10));
        let avg = aggregate_words(&pieces, Aggregation::Average);
        assert_eq!(avg[0].label, 1);
        assert!((avg[0].score - 0.55).abs() < 1e-6);
        let max = aggregate_words(&pieces, Aggregation::Max);
        assert_eq!((max[0].label, max[0].score), (1, 0.9));
    }

    #[test]
    fn b_tags_start_new_entities_and_i_tags_continue() {
        let w = |s, e, label, score| Word {
            start_char: s,
            end_char: e,
            label,
            score,
        };
        // John(B-PER) Smith(I-PER) Mary(B-PER) at(O) Acme(I-ORG) Corp(I-ORG)
        let words = [
            w(0, 4, 1, 0.9),
            w(5, 10, 2, 0.7),
            w(11, 15, 1, 0.8),
            w(16, 18, 0, 0.99),
            w(19, 23, 4, 0.6),
            w(24, 28, 4, 0.4),
        ];
        let groups = group_entities(&words, &labels());
        let got: Vec<(&str, usize, usize)> = groups
            .iter()
            .map(|g| (g.label.as_str(), g.start_char, g.end_char))
            .collect();
        assert_eq!(got, [("PER", 0, 10), ("PER", 11, 15), ("ORG", 19, 28)]);
        assert!((groups[0].score - 0.8).abs() < 1e-6);
        assert!((groups[2].score - 0.5).abs() < 1e-6);
    }

    #[test]
    fn a_leading_subword_starts_a_word() {
        let pieces = [
            piece(0, 2, true, &[1.0, 0.0]),
            piece(2, 4, true, &[0.0, 1.0]),
        ];
        let words = aggregate_words(&pieces, Aggregation::First);
        assert_eq!(words.len(), 1);
        assert_eq!((words[0].start_char, words[0].end_char), (0, 4));
        assert!(aggregate_words(&[], Aggregation::First).is_empty());
    }
}
