//! Plain text for terminals.

use super::Summary;
use crate::analysis::MigrationAnalysis;
use crate::dag::{MigrateParams, Params, Plan};
use crate::lint::{Counts, Finding};
use std::fmt::Write;

fn findings_text(out: &mut String, findings: &[Finding]) {
    for f in findings {
        let _ = writeln!(
            out,
            "  {}:{}: {}[{}] {}",
            f.file, f.line, f.severity, f.rule, f.message
        );
        let _ = writeln!(out, "      hint: {}", f.hint);
        let _ = writeln!(out, "      see: {}", f.doc());
    }
}

/// The plan for a terminal: summary, steps grouped by stage (steps of one stage can run at the
/// same time), generated SQL, the point of no return and the findings.
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    header_text(&mut out, plan);
    steps_text(&mut out, plan);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Stages run in order; steps in one stage may run at the same time. `!` marks a step a \
         rollback cannot undo."
    );
    rollback_text(&mut out, plan);
    if !plan.findings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Findings ({}):", Counts::of(&plan.findings));
        findings_text(&mut out, &plan.findings);
    }
    out
}

/// Writes the plan's heading: the release with each service's strategy, the plan's hash and
/// the summary line, then a blank line.
fn header_text(out: &mut String, plan: &Plan) {
    let strategies: Vec<String> = plan
        .strategies
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.as_str()))
        .collect();
    let strategies = if strategies.is_empty() {
        "no services".to_string()
    } else {
        strategies.join(", ")
    };
    let _ = writeln!(out, "Release `{}` ({strategies})", plan.release);
    let _ = writeln!(out, "plan {}", plan.hash);
    let _ = writeln!(out, "{}", Summary::of(plan).line());
    let _ = writeln!(out);
}

/// Writes the steps stage by stage (a stage's steps in plan order, which is also a valid run
/// order): the stage number on its first step, `!` on a step a rollback cannot undo, and under
/// a migration its generated SQL or its statements.
fn steps_text(out: &mut String, plan: &Plan) {
    let levels = plan.levels();
    let width = plan.steps().map(|s| s.id.len()).max().unwrap_or(0);
    let mut order: Vec<(usize, &crate::dag::Step)> = plan
        .steps()
        .enumerate()
        .map(|(i, s)| (levels[i], s))
        .collect();
    order.sort_by_key(|(level, _)| *level);
    let mut last_level = usize::MAX;
    for (level, s) in order {
        let stage = if level != last_level {
            format!("{:>3}", level + 1)
        } else {
            "   ".to_string()
        };
        last_level = level;
        let mark = if s.reversible { " " } else { "!" };
        let _ = writeln!(out, "{stage} {mark} {:<width$}  {}", s.id, s.description);
        if let Params::Migrate(params) = &s.params {
            migrate_text(out, params);
        }
    }
}

/// Writes what a migration step runs: its generated SQL when the plan rewrote it, otherwise
/// its statements' lines and summaries.
fn migrate_text(out: &mut String, params: &MigrateParams) {
    let MigrateParams {
        statements,
        generated_sql,
        ..
    } = params;
    match generated_sql {
        Some(sql) => {
            let _ = writeln!(out, "        generated SQL:");
            for line in sql.lines() {
                let _ = writeln!(out, "        | {line}");
            }
        }
        None => {
            for st in statements {
                let _ = writeln!(out, "        line {:>3}: {}", st.line, st.summary);
            }
        }
    }
}

/// Writes the point of no return (or that every step can be rolled back) and the downtime
/// window, if the plan has one.
fn rollback_text(out: &mut String, plan: &Plan) {
    match plan.point_of_no_return() {
        Some(p) => {
            let _ = writeln!(out, "Point of no return: `{}`: {}", p.id, p.undo);
        }
        None => {
            let _ = writeln!(out, "Every step can be rolled back.");
        }
    }
    if let Some(line) = super::hold_line(plan) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(d) = &plan.downtime {
        let _ = writeln!(
            out,
            "Downtime: from `{}` until `{}` passes ({} steps in the window; `apply` measures it).",
            d.from,
            d.to,
            d.steps.len()
        );
    }
}

/// A lint run for a terminal: each migration's phase, then the findings.
pub fn lint_text(migrations: &[MigrationAnalysis], findings: &[Finding]) -> String {
    let mut out = String::new();
    for m in migrations {
        let _ = writeln!(out, "{:<9} {}", m.phase.as_str(), m.file);
    }
    if !findings.is_empty() {
        let _ = writeln!(out);
        findings_text(&mut out, findings);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} migration(s) · {}",
        migrations.len(),
        Counts::of(findings)
    );
    out
}
