//! Grouping mentions into distinct entities.
//!
//! "Wang Yi" and a later "Wang" are one person; "Russia" and "Russia's" are one
//! country. This is the light grouping the `Entities` event needs; the stance
//! engine may group more aggressively with its gazetteer.

use std::collections::HashMap;

use super::types::{Entity, Mention};

/// The key two mentions must share to be one entity: lowercase text without
/// a leading "the", a trailing possessive, or repeated whitespace.
pub(crate) fn key(text: &str) -> String {
    let mut t = text.trim();
    for possessive in ["'s", "’s", "'", "’"] {
        if let Some(stripped) = t.strip_suffix(possessive) {
            t = stripped.trim_end();
            break;
        }
    }
    let lower = t.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let words = match words.as_slice() {
        ["the", rest @ ..] if !rest.is_empty() => rest,
        all => all,
    };
    words.join(" ")
}

/// Groups mentions (given in text order) into entities, in order of first
/// mention.
///
/// Mentions group when their keys are equal. A one-word PERSON mention that is
/// the last word of exactly one longer PERSON entity joins it ("Wang" joins
/// "Wang Yi" only if no other person is called Wang). An entity's label is
/// the most frequent label among its mentions.
pub fn group_mentions<'a>(mentions: impl IntoIterator<Item = &'a Mention>) -> Vec<Entity> {
    let mentions: Vec<&Mention> = mentions.into_iter().collect();
    let mut order: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, Vec<&Mention>> = HashMap::new();
    for m in &mentions {
        let k = key(&m.text);
        if k.is_empty() {
            continue;
        }
        by_key
            .entry(k.clone())
            .or_insert_with(|| {
                order.push(k.clone());
                Vec::new()
            })
            .push(m);
    }

    // Fold one-word person names into the single longer name ending or
    // starting with that word.
    let person_keys: Vec<String> = order
        .iter()
        .filter(|k| k.contains(' ') && by_key[*k].iter().any(|m| m.label == "PERSON"))
        .cloned()
        .collect();
    let mut merged_into: HashMap<String, String> = HashMap::new();
    for k in &order {
        if k.contains(' ') || !by_key[k].iter().all(|m| m.label == "PERSON") {
            continue;
        }
        let owners: Vec<&String> = person_keys
            .iter()
            .filter(|p| {
                let words: Vec<&str> = p.split(' ').collect();
                words.first() == Some(&k.as_str()) || words.last() == Some(&k.as_str())
            })
            .collect();
        if let [owner] = owners.as_slice() {
            merged_into.insert(k.clone(), (*owner).clone());
        }
    }
    for (short, long) in &merged_into {
        if let Some(ms) = by_key.remove(short) {
            by_key.get_mut(long).expect("owner key exists").extend(ms);
        }
    }

    order
        .iter()
        .filter_map(|k| by_key.remove(k))
        .map(|mut ms| {
            ms.sort_by_key(|m| m.span.start_byte);
            entity_from(&ms)
        })
        .collect()
}

fn entity_from(mentions: &[&Mention]) -> Entity {
    let mut text_counts: Vec<(&str, usize)> = Vec::new();
    for m in mentions {
        bump(&mut text_counts, &m.text);
    }
    let label = most_frequent(mentions.iter().map(|m| m.label.as_str()))
        .map(str::to_string)
        .unwrap_or_default();
    // Longest text without a possessive, then most frequent, then first seen.
    let canonical = text_counts
        .iter()
        .fold(None::<(&str, usize)>, |best, &(t, n)| {
            let score = |t: &str, n: usize| (key_len(t), n);
            match best {
                Some((bt, bn)) if score(bt, bn) >= score(t, n) => best,
                _ => Some((t, n)),
            }
        })
        .map(|(t, _)| t.to_string())
        .unwrap_or_default();
    Entity {
        canonical_text: canonical,
        label,
        mention_count: mentions.len(),
        texts: mentions.iter().map(|m| m.text.clone()).collect(),
        spans: mentions.iter().map(|m| m.span).collect(),
    }
}

/// Length of a mention's key, so "Russia's" is not preferred over "Russia".
fn key_len(text: &str) -> usize {
    if text.ends_with("'s") || text.ends_with("’s") {
        0
    } else {
        key(text).chars().count()
    }
}

fn bump<T: PartialEq>(counts: &mut Vec<(T, usize)>, item: T) {
    match counts.iter_mut().find(|(t, _)| *t == item) {
        Some((_, n)) => *n += 1,
        None => counts.push((item, 1)),
    }
}

/// The most frequent item; the first seen wins a tie.
pub(crate) fn most_frequent<T: PartialEq + Copy>(items: impl IntoIterator<Item = T>) -> Option<T> {
    let mut counts: Vec<(T, usize)> = Vec::new();
    for item in items {
        bump(&mut counts, item);
    }
    counts
        .into_iter()
        .fold(None::<(T, usize)>, |best, (t, n)| match best {
            Some((_, bn)) if bn >= n => best,
            _ => Some((t, n)),
        })
        .map(|(t, _)| t)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::text::TextSpan;

    /// A mention of `text` at byte (and code point) `at`, for tests.
    pub(crate) fn mention(text: &str, label: &str, at: usize) -> Mention {
        Mention {
            text: text.into(),
            label: label.into(),
            span: TextSpan {
                start_char: at,
                end_char: at + text.chars().count(),
                start_byte: at,
                end_byte: at + text.len(),
            },
        }
    }

    #[test]
    fn repeats_possessives_and_articles_group_together() {
        let ms = [
            mention("Russia", "GPE", 0),
            mention("the United States", "GPE", 10),
            mention("Russia's", "GPE", 40),
            mention("United States", "GPE", 60),
        ];
        let groups = group_mentions(&ms);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].canonical_text, "Russia");
        assert_eq!(groups[0].mention_count, 2);
        assert_eq!(groups[1].mention_count, 2);
    }

    #[test]
    fn a_surname_joins_the_only_full_name_it_can_belong_to() {
        let ms = [
            mention("Wang Yi", "PERSON", 0),
            mention("Wang", "PERSON", 20),
            mention("Zhao Lijian", "PERSON", 30),
        ];
        let groups = group_mentions(&ms);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].canonical_text, "Wang Yi");
        assert_eq!(groups[0].mention_count, 2);
    }

    #[test]
    fn an_ambiguous_surname_stays_on_its_own() {
        let ms = [
            mention("Wang Yi", "PERSON", 0),
            mention("Wang Wenbin", "PERSON", 10),
            mention("Wang", "PERSON", 30),
        ];
        assert_eq!(group_mentions(&ms).len(), 3);
    }
}
