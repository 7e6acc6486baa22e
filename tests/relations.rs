//! Who stands where: what callers can rely on.
//!
//! - one entity per referent: "China", "Chinese" and "Beijing" share an id,
//!   the capital marked as an uncertain merge; ids are unique; salience sums
//!   to 1;
//! - a stance's `entity_id`, and a relation's holder and target ids, are
//!   entities of the same response;
//! - the learned model's per-mention sentiment comes with each stance;
//! - through a real server, the sample article gives China FAVOR Russia,
//!   Wang Yi (or China) AGAINST the United States and China AGAINST
//!   sanctions, each with evidence, in a `Relations` event after the stances;
//! - the relation F1 on the hand-labelled sets stays above a floor.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use article_analyzer::proto as pb;
use article_analyzer::relations::eval::{evaluate, EvalSet};
use pb::analyze_event::Event;

async fn sample_events(targets: &[&str]) -> Vec<pb::AnalyzeEvent> {
    let server = common::start(Default::default()).await;
    let request = common::explicit_request("sample", &common::sample_article(), targets);
    common::analyze_events(&server, request).await
}

fn entities(events: &[pb::AnalyzeEvent]) -> &[pb::Entity] {
    events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Entities(es)) => Some(es.entities.as_slice()),
            _ => None,
        })
        .expect("an Entities event")
}

fn relations(events: &[pb::AnalyzeEvent]) -> &[pb::Relation] {
    events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Relations(rs)) => Some(rs.relations.as_slice()),
            _ => None,
        })
        .expect("a Relations event")
}

fn label(l: i32) -> pb::StanceLabel {
    pb::StanceLabel::try_from(l).unwrap()
}

#[tokio::test]
async fn the_sample_article_says_who_stands_where_through_a_real_server() {
    let events = sample_events(&["China", "Russia", "United States", "sanctions"]).await;
    let entities = entities(&events);
    let by_id = |id: &str| entities.iter().find(|e| e.id == id);

    // One referent per real-world thing.
    let ids: HashSet<&str> = entities.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), entities.len(), "entity ids are unique");
    let china = entities
        .iter()
        .find(|e| e.canonical_text == "China")
        .unwrap();
    for alias in ["China", "Chinese", "Beijing"] {
        assert!(
            china.aliases.iter().any(|a| a == alias),
            "{:?}",
            china.aliases
        );
    }
    assert!(china.uncertain_aliases.iter().any(|a| a == "Beijing"));
    assert!(!china.uncertain_aliases.iter().any(|a| a == "China"));
    let us: Vec<&pb::Entity> = entities
        .iter()
        .filter(|e| e.aliases.iter().any(|a| a == "Washington" || a == "US"))
        .collect();
    assert_eq!(us.len(), 1, "the United States is one entity");
    let salience: f32 = entities.iter().map(|e| e.salience).sum();
    assert!((salience - 1.0).abs() < 1e-4, "salience sums to {salience}");
    assert!(
        china.salience > 0.05 && china.salience >= us[0].salience,
        "China is the article's most central referent: {} vs {}",
        china.salience,
        us[0].salience
    );

    // Stances point at their entity and chart the mentions.
    let stances = common::stances(&events);
    for s in &stances {
        if s.target == "sanctions" {
            assert!(s.entity_id.is_empty(), "a topic is no entity");
            continue;
        }
        let e = by_id(&s.entity_id).unwrap_or_else(|| panic!("{}: no entity", s.target));
        assert!(
            e.canonical_text == s.target || e.aliases.contains(&s.target),
            "{} -> {e:?}",
            s.target
        );
        assert!(
            !s.mentions.is_empty(),
            "{}: no per-mention sentiment",
            s.target
        );
        let text = common::sample_article();
        let mut last = 0;
        for m in &s.mentions {
            let span = m.span.as_ref().unwrap();
            assert!(
                span.start_byte >= last,
                "{}: mentions in text order",
                s.target
            );
            last = span.start_byte;
            assert!(!text[span.start_byte as usize..span.end_byte as usize]
                .trim()
                .is_empty());
            let p = m.probabilities.as_ref().unwrap();
            assert!((p.favor + p.against + p.neutral - 1.0).abs() < 1e-4);
        }
    }

    // The relations come after every stance, before the summary.
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Stance(_)) => Some("stance"),
            Some(Event::Relations(_)) => Some("relations"),
            Some(Event::Completed(_)) => Some("completed"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds.last(), Some(&"completed"));
    assert_eq!(kinds[kinds.len() - 2], "relations");
    assert!(kinds[..kinds.len() - 2].iter().all(|k| *k == "stance"));

    let relations = relations(&events);
    for r in relations {
        assert!(by_id(&r.holder_id).is_some(), "holder {r:?}");
        if !r.target_entity_id.is_empty() {
            assert!(by_id(&r.target_entity_id).is_some(), "target {r:?}");
        }
        assert!(!r.evidence.is_empty(), "{r:?}");
        let e = &r.evidence[0];
        assert_eq!(e.mentions.len(), 2, "holder and target spans: {e:?}");
    }
    let has = |holders: &[&str], target: &str, want: pb::StanceLabel| {
        relations.iter().any(|r| {
            holders.contains(&r.holder.as_str()) && r.target == target && label(r.label) == want
        })
    };
    let table: Vec<String> = relations
        .iter()
        .map(|r| format!("{} {:?} {}", r.holder, label(r.label), r.target))
        .collect();
    assert!(
        has(&["China"], "Russia", pb::StanceLabel::Favor),
        "{table:#?}"
    );
    assert!(
        has(
            &["Wang Yi", "China"],
            "United States",
            pb::StanceLabel::Against
        ),
        "{table:#?}"
    );
    assert!(
        has(&["China"], "sanctions", pb::StanceLabel::Against),
        "{table:#?}"
    );
    let completed = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Completed(c)) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(completed.relation_count as usize, relations.len());
    assert_eq!(completed.entity_count as usize, entities.len());
}

#[tokio::test]
async fn without_stance_there_are_no_relations() {
    let server = common::start(Default::default()).await;
    let mut request = common::request("r", "The United States condemns Iran's attack on Israel.");
    request.options = Some(pb::AnalyzeOptions {
        entity_labels: vec![],
        stance: Some(pb::StanceOptions {
            mode: pb::stance_options::Mode::Disabled as i32,
            targets: vec![],
            max_targets: 0,
        }),
    });
    let events = common::analyze_events(&server, request).await;
    assert!(events
        .iter()
        .all(|e| !matches!(e.event, Some(Event::Relations(_)))));
}

#[test]
fn a_condemned_attack_is_against_its_doer_and_for_its_victim() {
    let analysis = common::pipeline()
        .analyze_collect(
            "The United States condemns Iran's attack on Israel.",
            &Default::default(),
        )
        .unwrap();
    let got: Vec<(String, &str, String)> = analysis
        .relations
        .iter()
        .map(|r| {
            (
                r.holder.clone(),
                r.label.as_str(),
                r.target.name().to_string(),
            )
        })
        .collect();
    assert!(
        got.contains(&("United States".into(), "AGAINST", "Iran".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("United States".into(), "FAVOR", "Israel".into())),
        "{got:?}"
    );
}

fn texts(prefix: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("eval/stance/texts");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(prefix))
        })
        .collect();
    out.sort();
    out
}

/// Measured 0.290 (ours) and 0.263 (verb patterns) on the test set; the
/// floor leaves two points.
const TEST_F1_FLOOR: f64 = 0.27;

#[test]
fn relation_f1_on_the_test_set_stays_above_its_floor() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let set = EvalSet::load("test", &root.join("eval/relations/test.jsonl"), &texts("h")).unwrap();
    assert_eq!(set.gold.len(), 104);
    assert_eq!(set.texts.len(), 16);
    let report = evaluate(&common::pipeline(), &set).unwrap();
    let t = report.triples;
    println!(
        "test: P {:.3} R {:.3} F1 {:.3} ({} of {} gold, {} predicted)",
        t.precision(),
        t.recall(),
        t.f1(),
        t.matched,
        t.gold,
        t.predicted
    );
    assert!(
        t.f1() >= TEST_F1_FLOOR,
        "F1 {:.3} under {TEST_F1_FLOOR}",
        t.f1()
    );
}
