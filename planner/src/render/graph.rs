//! Mermaid and Graphviz DOT diagrams of the DAG.

use crate::dag::{Plan, StepKind};
use std::fmt::Write;

fn label(plan: &Plan, i: usize) -> String {
    let s = &plan.graph[petgraph::graph::NodeIndex::new(i)];
    s.id.replace('"', "'")
}

/// The DAG as a Mermaid flowchart. Irreversible steps are drawn red, gates yellow.
pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart TD\n");
    for (i, s) in plan.steps().enumerate() {
        let l = label(plan, i);
        let shape = match s.kind() {
            StepKind::Health | StepKind::Analysis => format!("n{i}{{{{\"{l}\"}}}}"),
            StepKind::Backup => format!("n{i}[(\"{l}\")]"),
            StepKind::Pause => format!("n{i}([\"{l}\"])"),
            _ => format!("n{i}[\"{l}\"]"),
        };
        let _ = writeln!(out, "    {shape}");
    }
    for e in plan.graph.edge_indices() {
        let (a, b) = plan.graph.edge_endpoints(e).expect("edge exists");
        let _ = writeln!(out, "    n{} --> n{}", a.index(), b.index());
    }
    let pivots: Vec<String> = plan
        .steps()
        .enumerate()
        .filter(|(_, s)| !s.reversible)
        .map(|(i, _)| format!("n{i}"))
        .collect();
    let gates: Vec<String> = plan
        .steps()
        .enumerate()
        .filter(|(_, s)| matches!(s.kind(), StepKind::Health | StepKind::Analysis))
        .map(|(i, _)| format!("n{i}"))
        .collect();
    out.push_str(
        "    classDef pivot fill:#fdd,stroke:#c00\n    classDef gate fill:#ffd,stroke:#aa0\n",
    );
    if !pivots.is_empty() {
        let _ = writeln!(out, "    class {} pivot", pivots.join(","));
    }
    if !gates.is_empty() {
        let _ = writeln!(out, "    class {} gate", gates.join(","));
    }
    out
}

/// The DAG as Graphviz DOT.
pub fn dot(plan: &Plan) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box, fontname=\"monospace\"];\n",
        plan.release.replace('"', "'")
    );
    for (i, s) in plan.steps().enumerate() {
        let mut attrs = format!("label=\"{}\"", label(plan, i));
        if !s.reversible {
            attrs.push_str(", style=filled, fillcolor=\"#ffdddd\", color=\"#cc0000\"");
        } else if matches!(s.kind(), StepKind::Health | StepKind::Analysis) {
            attrs.push_str(", shape=diamond");
        }
        let _ = writeln!(out, "    n{i} [{attrs}];");
    }
    for e in plan.graph.edge_indices() {
        let (a, b) = plan.graph.edge_endpoints(e).expect("edge exists");
        let _ = writeln!(out, "    n{} -> n{};", a.index(), b.index());
    }
    out.push_str("}\n");
    out
}
