//! Scoring the relations on the hand-labelled sets in `eval/relations/`.
//!
//! Each text of a set runs through the real pipeline, with the set's topic
//! targets for that text as explicit stance targets (a caller names its
//! topics; entities are found). A predicted relation matches a gold triple
//! when the holder's entity has one of the gold holder's forms among its
//! aliases, the target likewise (or, for a topic, the same name), and the
//! label is the same; each gold triple matches at most once. Forms compare
//! in lower case without a leading "the" or a trailing possessive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::pipeline::{
    mention_key, Analysis, AnalyzeOptions, Pipeline, Referent, Relation, RelationTarget,
    StanceLabel, StanceMode,
};

/// One gold triple, as `eval/relations/GUIDELINE.md` describes.
#[derive(Debug, Clone, Deserialize)]
pub struct Gold {
    pub text: String,
    pub holder: String,
    #[serde(default)]
    pub holder_aliases: Vec<String>,
    pub holder_mention: String,
    pub target: String,
    #[serde(default)]
    pub target_aliases: Vec<String>,
    pub target_kind: String,
    pub label: StanceLabelName,
    pub evidence: String,
}

/// FAVOR or AGAINST, as written in the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum StanceLabelName {
    #[serde(rename = "FAVOR")]
    Favor,
    #[serde(rename = "AGAINST")]
    Against,
}

impl StanceLabelName {
    fn matches(self, l: StanceLabel) -> bool {
        matches!(
            (self, l),
            (StanceLabelName::Favor, StanceLabel::Favor)
                | (StanceLabelName::Against, StanceLabel::Against)
        )
    }
}

/// A set: its texts (every one of them, with or without gold triples) and
/// the triples.
#[derive(Debug, Clone)]
pub struct EvalSet {
    pub name: String,
    pub texts: Vec<(String, String)>,
    pub gold: Vec<Gold>,
}

impl EvalSet {
    /// `gold` is a `.jsonl` file; `texts` the files of the set, each named
    /// by its id (the part of the file name before the first `-`, or
    /// `sample` for the sample article).
    pub fn load(name: &str, gold: &Path, texts: &[PathBuf]) -> anyhow::Result<EvalSet> {
        let raw =
            std::fs::read_to_string(gold).with_context(|| format!("reading {}", gold.display()))?;
        let gold: Vec<Gold> = raw
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(k, l)| {
                serde_json::from_str(l).with_context(|| format!("{} line {}", name, k + 1))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut out = Vec::new();
        for path in texts {
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
            let id = if file.starts_with("china-russia") {
                "sample".to_string()
            } else {
                file.split('-').next().unwrap_or(file).to_string()
            };
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            out.push((id, text));
        }
        if let Some(g) = gold
            .iter()
            .find(|g| !out.iter().any(|(id, _)| *id == g.text))
        {
            anyhow::bail!(
                "{name}: gold triple for text {:?}, which is not in the set",
                g.text
            );
        }
        Ok(EvalSet {
            name: name.to_string(),
            texts: out,
            gold,
        })
    }
}

/// Precision, recall and F1 from counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prf {
    pub matched: usize,
    pub predicted: usize,
    pub gold: usize,
}

impl Prf {
    pub fn precision(&self) -> f64 {
        ratio(self.matched, self.predicted)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.matched, self.gold)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// What one set scored.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// (holder, target, label) triples.
    pub triples: Prf,
    /// Distinct holders per text.
    pub holders: Prf,
    /// Recall on the triples whose holder is named in the evidence
    /// sentence (`holder_mention: "name"`): (matched, of).
    pub named: (usize, usize),
    /// Per text: matched gold triples, missed ones, wrong predictions.
    pub lines: Vec<String>,
}

fn forms(name: &str, aliases: &[String]) -> Vec<String> {
    std::iter::once(name)
        .chain(aliases.iter().map(String::as_str))
        .map(mention_key)
        .collect()
}

fn entity_forms(referents: &[Referent], id: &crate::pipeline::EntityId) -> Vec<String> {
    referents
        .iter()
        .find(|r| r.id == *id)
        .map(|r| {
            std::iter::once(r.entity.canonical_text.as_str())
                .chain(r.aliases.iter().map(String::as_str))
                .map(mention_key)
                .collect()
        })
        .unwrap_or_default()
}

fn holder_matches(r: &Relation, g: &Gold, referents: &[Referent]) -> bool {
    let ours = entity_forms(referents, &r.holder_id);
    forms(&g.holder, &g.holder_aliases)
        .iter()
        .any(|f| ours.contains(f))
}

fn target_matches(r: &Relation, g: &Gold, referents: &[Referent]) -> bool {
    let theirs = forms(&g.target, &g.target_aliases);
    match &r.target {
        RelationTarget::Entity { entity_id, .. } => {
            let ours = entity_forms(referents, entity_id);
            theirs.iter().any(|f| ours.contains(f))
        }
        RelationTarget::Topic { name } => theirs.contains(&mention_key(name)),
    }
}

/// Runs the pipeline on every text of `set` and scores its relations.
pub fn evaluate(pipeline: &Pipeline, set: &EvalSet) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for (id, text) in &set.texts {
        let gold: Vec<&Gold> = set.gold.iter().filter(|g| g.text == *id).collect();
        let mut topics: Vec<String> = Vec::new();
        for g in gold.iter().filter(|g| g.target_kind == "topic") {
            if !topics.contains(&g.target) {
                topics.push(g.target.clone());
            }
        }
        let options = AnalyzeOptions {
            entity_labels: Vec::new(),
            stance: if topics.is_empty() {
                StanceMode::Automatic { max_targets: 0 }
            } else {
                StanceMode::Explicit(topics)
            },
        };
        let analysis: Analysis = pipeline
            .analyze_collect(text, &options)
            .map_err(|e| anyhow::anyhow!("{}: {e}", id))?;
        score_text(id, &gold, &analysis, &mut report);
    }
    Ok(report)
}

fn score_text(id: &str, gold: &[&Gold], analysis: &Analysis, report: &mut Report) {
    let referents = &analysis.groups;
    let predicted: Vec<&Relation> = analysis
        .relations
        .iter()
        .filter(|r| r.label != StanceLabel::Neutral)
        .collect();
    let mut used = vec![false; gold.len()];
    let mut wrong = Vec::new();
    for r in &predicted {
        let hit = gold.iter().enumerate().position(|(k, g)| {
            !used[k]
                && g.label.matches(r.label)
                && holder_matches(r, g, referents)
                && target_matches(r, g, referents)
        });
        match hit {
            Some(k) => used[k] = true,
            None => wrong.push(format!(
                "{id}  extra  {} {} {}",
                r.holder,
                r.label.as_str(),
                r.target.name()
            )),
        }
    }
    report.triples.predicted += predicted.len();
    report.triples.gold += gold.len();
    report.triples.matched += used.iter().filter(|u| **u).count();
    for (g, u) in gold.iter().zip(&used) {
        if g.holder_mention == "name" {
            report.named.1 += 1;
            report.named.0 += usize::from(*u);
        }
        let mark = if *u { "ok    " } else { "missed" };
        report.lines.push(format!(
            "{id}  {mark} {} {:?} {}",
            g.holder, g.label, g.target
        ));
    }
    report.lines.extend(wrong);

    // Holders alone: each distinct gold holder (by its forms) against each
    // distinct predicted holder entity.
    let mut gold_holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in gold {
        gold_holders
            .entry(mention_key(&g.holder))
            .or_insert_with(|| forms(&g.holder, &g.holder_aliases));
    }
    let mut ours: Vec<&crate::pipeline::EntityId> =
        predicted.iter().map(|r| &r.holder_id).collect();
    ours.sort();
    ours.dedup();
    let mut matched_gold = vec![false; gold_holders.len()];
    let mut matched = 0;
    for id in &ours {
        let fs = entity_forms(referents, id);
        if let Some(k) = gold_holders
            .values()
            .enumerate()
            .position(|(k, g)| !matched_gold[k] && g.iter().any(|f| fs.contains(f)))
        {
            matched_gold[k] = true;
            matched += 1;
        }
    }
    report.holders.predicted += ours.len();
    report.holders.gold += gold_holders.len();
    report.holders.matched += matched;
}
