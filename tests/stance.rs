//! The lexicon stance engine on hand-built `Recognized` values (no model).

use article_analyzer::pipeline::{
    group_mentions, Mention, Recognized, Sentence, Stance, StanceClassifier, StanceLabel, Target,
};
use article_analyzer::stance::{LexiconStance, StanceConfig, StanceError};
use article_analyzer::text::OffsetMap;

/// Whether a sentence can end before `next` (end of text or whitespace).
fn at_break(next: Option<char>) -> bool {
    !next.is_some_and(|c| !c.is_whitespace())
}

/// Splits `text` into sentences after ". ", "! " and "? ", and marks every
/// whole-word occurrence of each `(entity, label)` as a mention.
fn recognize(text: &str, entities: &[(&str, &str)]) -> Recognized {
    let map = OffsetMap::new(text);
    let mut bounds = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let next = chars.get(k + 1).map(|n| n.1);
        let ends =
            (matches!(c, '.' | '!' | '?') && at_break(next)) || (c == '\n' && next == Some('\n'));
        if ends {
            let end = i + c.len_utf8();
            let piece = &text[start..end];
            let lead = piece.len() - piece.trim_start().len();
            let trail = piece.len() - piece.trim_end().len();
            if !piece.trim().is_empty() {
                bounds.push((start + lead, end - trail));
            }
            start = end;
        }
    }
    let piece = &text[start..];
    if !piece.trim().is_empty() {
        let lead = piece.len() - piece.trim_start().len();
        let trail = piece.len() - piece.trim_end().len();
        bounds.push((start + lead, text.len() - trail));
    }
    let sentences = bounds
        .into_iter()
        .enumerate()
        .map(|(index, (s, e))| {
            let stext = &text[s..e];
            let mut mentions = Vec::new();
            for (name, label) in entities {
                for (i, _) in stext.match_indices(name) {
                    let before_bad = stext[..i].chars().last().is_some_and(char::is_alphanumeric);
                    let after_bad = stext[i + name.len()..]
                        .chars()
                        .next()
                        .is_some_and(char::is_alphanumeric);
                    if !before_bad && !after_bad {
                        mentions.push(Mention {
                            text: name.to_string(),
                            label: label.to_string(),
                            span: map.span(s + i, s + i + name.len()),
                        });
                    }
                }
            }
            mentions.sort_by_key(|m| m.span.start_byte);
            Sentence {
                index,
                span: map.span(s, e),
                text: stext.to_string(),
                mentions,
                first_token: 0,
                tokens: Vec::new(),
            }
        })
        .collect();
    Recognized {
        token_count: text.split_whitespace().count(),
        sentences,
    }
}

fn classify(text: &str, entities: &[(&str, &str)], target: &str) -> Stance {
    let doc = recognize(text, entities);
    let groups = group_mentions(doc.sentences.iter().flat_map(|s| &s.mentions));
    let target = Target::explicit(target, &groups, text);
    let engine = LexiconStance::embedded().expect("embedded lexicons parse");
    engine.classify(&doc, text, &target).expect("classify")
}

fn check_invariants(text: &str, stance: &Stance) {
    let p = stance.probabilities;
    assert!(
        (p.favor + p.against + p.neutral - 1.0).abs() < 1e-5,
        "{p:?}"
    );
    assert!(stance.score >= p.favor.min(p.against).min(p.neutral));
    for e in &stance.evidence {
        assert_eq!(e.span.slice(text), e.text, "byte offsets");
        let chars: String = text
            .chars()
            .skip(e.span.start_char)
            .take(e.span.end_char - e.span.start_char)
            .collect();
        assert_eq!(chars, e.text, "char offsets");
        assert!(!e.reason.is_empty());
        assert!(e.contribution.is_finite());
    }
}

#[test]
fn condemnation_is_against_the_object() {
    let text = "The EU condemned Russia's invasion.";
    let s = classify(text, &[("EU", "ORG"), ("Russia", "GPE")], "Russia");
    check_invariants(text, &s);
    assert_eq!(s.label, StanceLabel::Against, "{s:#?}");
    assert!(s.evidence[0].reason.contains("condemned"), "{s:#?}");
    assert!(s.evidence[0].contribution < 0.0);
    // The condemner is not condemned.
    let eu = classify(text, &[("EU", "ORG"), ("Russia", "GPE")], "EU");
    assert_ne!(eu.label, StanceLabel::Against, "{eu:#?}");
}

#[test]
fn negation_flips_a_cue() {
    let text = "The government supports Russia.";
    let s = classify(text, &[("Russia", "GPE")], "Russia");
    assert_eq!(s.label, StanceLabel::Favor, "{s:#?}");
    let text = "The government does not support Russia.";
    let s = classify(text, &[("Russia", "GPE")], "Russia");
    check_invariants(text, &s);
    assert_eq!(s.label, StanceLabel::Against, "{s:#?}");
    assert!(s.evidence[0].reason.contains("negated"), "{s:#?}");
    let text = "Berlin never condemned Russia.";
    let s = classify(text, &[("Russia", "GPE"), ("Berlin", "GPE")], "Russia");
    assert!(s.probabilities.favor > s.probabilities.against, "{s:#?}");
}

#[test]
fn metonym_counts_for_its_country() {
    let text = "Washington praised the reforms. Analysts strongly condemned Washington.";
    let s = classify(text, &[("Washington", "GPE")], "United States");
    check_invariants(text, &s);
    // "Washington praised ..." is Washington's own attitude, not the
    // article's toward it: only the second sentence is evidence.
    assert_eq!(s.evidence.len(), 1, "{s:#?}");
    assert!(
        s.evidence[0].reason.contains("standing for United States"),
        "{s:#?}"
    );
    assert!(s.evidence[0].reason.contains("condemned"), "{s:#?}");
    assert_eq!(s.label, StanceLabel::Against, "{s:#?}");
}

#[test]
fn a_neutral_factual_sentence_stays_neutral() {
    let text = "China lifted restrictions on imports of Russian wheat on February 24.";
    let s = classify(text, &[("China", "GPE"), ("Russian", "NORP")], "China");
    check_invariants(text, &s);
    assert_eq!(s.label, StanceLabel::Neutral, "{s:#?}");
    assert_eq!(s.evidence.len(), 1, "a mention is shown even when neutral");
    let text = "The summit took place in Vienna in March. Ministers from France attended.";
    let s = classify(text, &[("France", "GPE")], "France");
    assert_eq!(s.label, StanceLabel::Neutral, "{s:#?}");
}

#[test]
fn composition_condemning_sanctions_favours_their_target() {
    let text = "Beijing has also forcefully condemned Western sanctions on Russia.";
    let s = classify(text, &[("Beijing", "GPE"), ("Russia", "GPE")], "Russia");
    check_invariants(text, &s);
    assert_eq!(s.label, StanceLabel::Favor, "{s:#?}");
    let text = "The allies imposed sanctions on Russia.";
    let s = classify(text, &[("Russia", "GPE")], "Russia");
    assert_eq!(s.label, StanceLabel::Against, "{s:#?}");
}

#[test]
fn reported_speech_weighs_less_than_the_article_voice() {
    let own = classify("Critics condemn Iran.", &[("Iran", "GPE")], "Iran");
    let reported = classify(
        "Critics said they condemn Iran.",
        &[("Iran", "GPE")],
        "Iran",
    );
    assert!(own.evidence[0].contribution < reported.evidence[0].contribution);
    assert!(reported.evidence[0].contribution < 0.0);
    assert!(
        reported.evidence[0].reason.contains("reported speech"),
        "{reported:#?}"
    );
}

#[test]
fn contrast_weighs_the_clause_after_but() {
    let text =
        "Critics praised Germany for its aid, but they strongly condemned Germany for its delays.";
    let s = classify(text, &[("Germany", "GPE")], "Germany");
    check_invariants(text, &s);
    assert_eq!(s.label, StanceLabel::Against, "{s:#?}");
}

#[test]
fn surnames_count_for_persons() {
    let text = "Foreign minister Wang Yi spoke on Monday. Critics denounced Wang for his remarks.";
    let s = classify(
        text,
        &[("Wang Yi", "PERSON"), ("Wang", "PERSON")],
        "Wang Yi",
    );
    check_invariants(text, &s);
    assert_eq!(s.label, StanceLabel::Against, "{s:#?}");
}

#[test]
fn the_sample_article_favours_china_and_russia() {
    let text = include_str!("../samples/china-russia-friendship.txt");
    let entities = [
        ("China", "GPE"),
        ("Russia", "GPE"),
        ("Moscow", "GPE"),
        ("Beijing", "GPE"),
        ("Washington", "GPE"),
        ("United States", "GPE"),
        ("US", "GPE"),
        ("Wang Yi", "PERSON"),
        ("Wang", "PERSON"),
    ];
    let china = classify(text, &entities, "China");
    let russia = classify(text, &entities, "Russia");
    let us = classify(text, &entities, "United States");
    for s in [&china, &russia, &us] {
        check_invariants(text, s);
        assert!(s.evidence.len() <= 5);
    }
    assert_eq!(china.label, StanceLabel::Favor, "{china:#?}");
    assert_eq!(russia.label, StanceLabel::Favor, "{russia:#?}");
    assert_ne!(us.label, StanceLabel::Favor, "{us:#?}");
}

#[test]
fn odd_inputs_never_panic() {
    let engine = LexiconStance::embedded().unwrap();
    let texts = [
        "",
        " ",
        "’s",
        "“",
        "n't not no never",
        "U.S.A.",
        "北京 🎉 Zürich’s “Moskau”",
        "- - - , , ; but however",
    ];
    for text in texts {
        let doc = recognize(text, &[("U.S.A.", "GPE")]);
        for name in ["", "US", "Zürich", "’s", "United States"] {
            let target = Target {
                name: name.into(),
                aliases: vec![name.into(), "".into()],
                spans: vec![],
            };
            let s = engine.classify(&doc, text, &target).unwrap();
            check_invariants(text, &s);
        }
    }
    // Sentence offsets that do not match the text.
    let mut doc = recognize("Critics condemn Iran.", &[("Iran", "GPE")]);
    doc.sentences[0].span.end_byte = 999;
    let target = Target {
        name: "Iran".into(),
        aliases: vec!["Iran".into()],
        spans: vec![],
    };
    let s = engine.classify(&doc, "short", &target).unwrap();
    assert_eq!(s.label, StanceLabel::Against);
}

#[test]
fn config_changes_thresholds_and_evidence() {
    let text = "Critics condemn Iran. Critics condemn Iran again. Critics condemn Iran once more.";
    let doc = recognize(text, &[("Iran", "GPE")]);
    let target = Target::explicit("Iran", &[], text);
    let config: StanceConfig =
        serde_json::from_str(r#"{"max_evidence": 2, "neutral_margin": 20.0}"#).unwrap();
    let engine = LexiconStance::embedded()
        .unwrap()
        .with_config(config)
        .unwrap();
    let s = engine.classify(&doc, text, &target).unwrap();
    assert_eq!(s.evidence.len(), 2);
    assert_eq!(s.label, StanceLabel::Neutral);
    assert!(serde_json::from_str::<StanceConfig>(r#"{"nonsense": 1}"#).is_err());
    let bad = StanceConfig {
        distance_decay: 0.0,
        ..StanceConfig::default()
    };
    assert!(matches!(bad.validate(), Err(StanceError::Config(_))));
    // An engine is never built on a bad config: it is refused, not replaced.
    assert!(matches!(
        LexiconStance::embedded().unwrap().with_config(bad),
        Err(StanceError::Config(_))
    ));
}

#[test]
fn model_info_names_the_engine() {
    let info = LexiconStance::embedded().unwrap().model_info();
    assert_eq!(info.task, "stance");
    assert_eq!(info.name, "lexicon-stance");
    assert_eq!(info.version, "0.1.0");
    assert_eq!(info.backend, "lexicon");
    assert_eq!(info.labels, ["FAVOR", "AGAINST", "NEUTRAL"]);
}

#[test]
fn from_dir_reads_the_shipped_files_and_names_bad_lines() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/stance");
    LexiconStance::from_dir(&dir).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let tmp = scratch.path();
    for f in ["gazetteer.tsv", "modifiers.tsv", "vader_lexicon.txt"] {
        std::fs::copy(dir.join(f), tmp.join(f)).unwrap();
    }
    std::fs::write(
        tmp.join("cues.tsv"),
        "# x\npraise*\tobject\t1.5\tattitude\tok\nbad\tsideways\t1\taction\t-\n",
    )
    .unwrap();
    let err = LexiconStance::from_dir(tmp).unwrap_err().to_string();
    assert!(err.starts_with("cues.tsv:3: role \"sideways\""), "{err}");
    std::fs::remove_file(tmp.join("cues.tsv")).unwrap();
    let err = LexiconStance::from_dir(tmp).unwrap_err().to_string();
    assert!(err.contains("cues.tsv"), "{err}");
}
