//! Looking, not only reading: the relations as a table and as a Graphviz
//! graph.

use std::fmt::Write;

use crate::pipeline::{Relation, RelationTarget, Stance, StanceLabel};

/// A compact "who stands where" table, one relation per line, with the
/// strongest evidence sentence cut to fit.
pub fn table(relations: &[Relation]) -> String {
    let mut out = String::new();
    for r in relations {
        let evidence = r
            .evidence
            .first()
            .map_or(String::new(), |e| clip(&e.text, 70));
        let _ = writeln!(
            out,
            "  {:<24} {:<8} {:<24} {:.2}  {}",
            clip(&r.holder, 24),
            r.label.as_str(),
            clip(r.target.name(), 24),
            r.score,
            evidence
        );
    }
    out
}

fn clip(text: &str, n: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        let mut s: String = one_line.chars().take(n.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

fn color(label: StanceLabel) -> &'static str {
    match label {
        StanceLabel::Favor => "#2e7d32",
        StanceLabel::Against => "#c62828",
        StanceLabel::Neutral => "#757575",
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn node_id(target: &RelationTarget) -> String {
    match target {
        RelationTarget::Entity { entity_id, .. } => entity_id.to_string(),
        RelationTarget::Topic { name } => format!("topic:{name}"),
    }
}

/// The holder-to-target graph in Graphviz DOT: entities as boxes, topics as
/// ellipses, one edge per relation coloured by label (green FAVOR, red
/// AGAINST) and as thick as its score. The article's own stances are dashed
/// edges from an "article" node.
pub fn dot(relations: &[Relation], stances: &[Stance]) -> String {
    let mut out = String::from(
        "digraph who_stands_where {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    let mut nodes: Vec<(String, String, bool)> = Vec::new();
    let mut add = |id: String, label: &str, topic: bool| {
        if !nodes.iter().any(|(i, _, _)| *i == id) {
            nodes.push((id, label.to_string(), topic));
        }
    };
    for r in relations {
        add(r.holder_id.to_string(), &r.holder, false);
        add(
            node_id(&r.target),
            r.target.name(),
            matches!(r.target, RelationTarget::Topic { .. }),
        );
    }
    // The article's decided stances, each with its target's node.
    let decided: Vec<(&Stance, String)> = stances
        .iter()
        .filter(|s| s.label != StanceLabel::Neutral)
        .map(|s| {
            let id = s
                .entity_id
                .as_ref()
                .map_or_else(|| format!("topic:{}", s.target), ToString::to_string);
            (s, id)
        })
        .collect();
    if !decided.is_empty() {
        add("article".to_string(), "the article", false);
    }
    for (s, id) in &decided {
        add(id.clone(), &s.target, s.entity_id.is_none());
    }
    for (id, label, topic) in &nodes {
        let shape = if id == "article" {
            ", shape=note"
        } else if *topic {
            ", shape=ellipse"
        } else {
            ""
        };
        let _ = writeln!(out, "  {} [label={}{shape}];", quoted(id), quoted(label));
    }
    for r in relations {
        edge(
            &mut out,
            r.holder_id.as_str(),
            &node_id(&r.target),
            r.label,
            r.score,
            false,
        );
    }
    for (s, id) in &decided {
        edge(&mut out, "article", id, s.label, s.score, true);
    }
    out.push_str("}\n");
    out
}

/// One edge coloured by `label`, as thick as `score`, labelled with both.
fn edge(out: &mut String, from: &str, to: &str, label: StanceLabel, score: f32, dashed: bool) {
    let _ = writeln!(
        out,
        "  {} -> {} [{}color={}, fontcolor={}, penwidth={:.1}, label={}];",
        quoted(from),
        quoted(to),
        if dashed { "style=dashed, " } else { "" },
        quoted(color(label)),
        quoted(color(label)),
        1.0 + 3.0 * score,
        quoted(&format!("{} {:.2}", label.as_str(), score)),
    );
}
