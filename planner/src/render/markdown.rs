//! The pull-request review comment: summary line first, details after, under GitHub's limit.

use super::{Summary, mermaid};
use crate::dag::{AnalysisParams, MigrateParams, Params, PauseParams, Plan, ShiftParams, Step};
use crate::duration::Duration;
use crate::lint::Finding;
use std::fmt::Write;

/// Markdown output is cut to stay under this many characters (GitHub caps a comment at 65,536).
pub const MARKDOWN_LIMIT: usize = 60_000;

/// Findings listed in the comment; the rest are counted.
const FINDINGS_SHOWN: usize = 50;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Steps listed one by one in the comment; a larger release lists its migrations, gates,
/// traffic shifts and pivots and counts the rest by kind, so nothing that matters is cut.
const STEPS_LISTED: usize = 80;

/// How a reviewer should read the plan, first line of the comment.
fn verdict(plan: &Plan, sum: &Summary) -> &'static str {
    if sum.findings.error > 0 {
        "⛔ **blocked**: error findings stop `apply` (see Findings)"
    } else if sum.findings.warning > 0 || sum.irreversible_steps > 0 || plan.downtime.is_some() {
        "⚠️ **needs review**: warnings, downtime or steps that cannot be rolled back"
    } else {
        "✅ **safe**: no warning, and every step can be rolled back"
    }
}

/// The plan as a pull-request comment. `spec_path` is shown in the commands to re-plan and apply.
/// Order: verdict, summary, findings, schema changes (SQL), traffic, steps, the DAG (collapsed).
pub fn markdown(plan: &Plan, spec_path: &str) -> String {
    let sum = Summary::of(plan);
    let mut out = String::new();
    let f = &sum.findings;
    let _ = writeln!(
        out,
        "### cutover plan `{}`: {}\n\n{} steps, {} expand / {} contract migration(s), {} \
         irreversible, findings: {} error · {} warning · {} info\n",
        plan.release,
        verdict(plan, &sum),
        sum.steps,
        sum.expand_migrations,
        sum.contract_migrations,
        sum.irreversible_steps,
        f.error,
        f.warning,
        f.info
    );
    let strategies: Vec<String> = plan
        .strategies
        .iter()
        .map(|(k, v)| format!("`{k}`: {}", v.as_str()))
        .collect();
    // A release of migrations alone has no service, so no strategy.
    let strategy = if strategies.is_empty() {
        "no services (schema only)".to_string()
    } else {
        strategies.join(", ")
    };
    let _ = writeln!(
        out,
        "Strategy: {strategy}. Plan hash `{}`.\n",
        &plan.hash[..16]
    );
    match plan.point_of_no_return() {
        Some(p) => {
            let _ = writeln!(
                out,
                "**Rollback stops being possible at `{}`**: {}\n",
                p.id, p.undo
            );
        }
        None => out.push_str("Every step can be rolled back.\n\n"),
    }
    if let Some(line) = super::hold_line(plan) {
        let _ = writeln!(out, "**Hold**: {line}\n");
    }
    if let Some(d) = &plan.downtime {
        let _ = writeln!(
            out,
            "**Downtime**: from `{}` until `{}` passes ({} steps; `apply` measures it).\n",
            d.from,
            d.to,
            d.steps.len()
        );
    }
    findings_table(&mut out, &plan.findings);
    schema_changes(&mut out, plan);
    traffic(&mut out, plan);
    steps_table(&mut out, plan);
    if plan.graph.node_count() <= STEPS_LISTED {
        out.push_str("<details><summary>Release DAG</summary>\n\n```mermaid\n");
        out.push_str(&mermaid(plan));
        out.push_str("```\n\n</details>\n\n");
    } else {
        out.push_str(
            "The DAG is too large to draw here: `cutover plan SPEC --format mermaid` (or \
             `dot`) draws it.\n\n",
        );
    }
    let _ = writeln!(
        out,
        "Re-plan: `cutover plan {spec_path} --format markdown` · dry run: `cutover apply \
         {spec_path} --dry-run`"
    );
    truncate(out)
}

/// The findings, most severe first, up to [`FINDINGS_SHOWN`].
fn findings_table(out: &mut String, all: &[Finding]) {
    if !all.is_empty() {
        out.push_str(
            "#### Findings\n\n| Severity | Rule | Location | Message | Fix \
             |\n|---|---|---|---|---|\n",
        );
        // Most severe first; a long tail would push the DAG and the steps out of the comment.
        let mut findings: Vec<_> = all.iter().collect();
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for f in findings.iter().take(FINDINGS_SHOWN) {
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}:{}` | {} | {} |",
                f.severity,
                f.rule,
                f.file,
                f.line,
                cell(&f.message),
                cell(&f.hint)
            );
        }
        if findings.len() > FINDINGS_SHOWN {
            let _ = writeln!(
                out,
                "\n{} more finding(s) not shown; `cutover plan SPEC --format json` lists them all.",
                findings.len() - FINDINGS_SHOWN
            );
        }
        out.push('\n');
    }
}

/// Every migration step with the SQL it runs, in plan order: what the release does to the
/// schema, phase by phase.
fn schema_changes(out: &mut String, plan: &Plan) {
    let migrations: Vec<(&Step, &MigrateParams)> = plan
        .steps()
        .filter_map(|s| match &s.params {
            Params::Migrate(m) => Some((s, m)),
            _ => None,
        })
        .collect();
    if migrations.is_empty() {
        return;
    }
    out.push_str("<details open><summary>Schema changes</summary>\n\n");
    for (s, m) in migrations {
        let phase = s.phase.map_or("", |p| p.as_str());
        let _ = writeln!(out, "`{}` ({phase}, database `{}`)\n", m.file, m.database);
        out.push_str("```sql\n");
        for sql in &m.sql {
            let _ = writeln!(out, "{};", sql.trim_end().trim_end_matches(';'));
        }
        out.push_str("```\n\n");
    }
    out.push_str("</details>\n\n");
}

/// Each service's traffic steps and gates, and how long the release holds traffic at least (the
/// sum of its pauses and analysis windows; deploys, health checks and backfills come on top).
fn traffic(out: &mut String, plan: &Plan) {
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    let mut held = 0u64;
    for s in plan.steps() {
        held += s.window().map_or(0, |w| w.as_millis());
        let (service, what) = match &s.params {
            Params::Shift(ShiftParams {
                service, to_weight, ..
            }) => (service, format!("{to_weight}%")),
            Params::Pause(PauseParams {
                service,
                duration: Some(duration),
                watch,
            }) => (
                service,
                match watch {
                    Some(_) => format!("pause {duration} (gate watched)"),
                    None => format!("pause {duration}"),
                },
            ),
            Params::Pause(PauseParams {
                service,
                duration: None,
                ..
            }) => (service, "manual gate (`cutover promote`)".to_string()),
            Params::Analysis(AnalysisParams {
                service,
                window,
                max_error_rate,
                max_p99_latency,
                max_error_rate_increase,
                max_latency_ratio,
                ..
            }) => {
                let rate = max_error_rate * 100.0;
                let what = if s.id.ends_with("/bake") {
                    "bake"
                } else {
                    "gate"
                };
                let mut relative = String::new();
                if let Some(d) = max_error_rate_increase {
                    relative.push_str(&format!(", errors ≤ stable + {}%", d * 100.0));
                }
                if let Some(r) = max_latency_ratio {
                    relative.push_str(&format!(", latency ≤ {r}× stable"));
                }
                (
                    service,
                    format!(
                        "{what} (errors ≤ {rate}%, p99 ≤ {max_p99_latency}{relative}, {window})"
                    ),
                )
            }
            _ => continue,
        };
        match lines.iter_mut().find(|(name, _)| name == service) {
            Some((_, parts)) => parts.push(what),
            None => lines.push((service.clone(), vec![what])),
        }
    }
    if lines.is_empty() {
        return;
    }
    out.push_str("#### Traffic\n\n");
    for (service, parts) in lines {
        let _ = writeln!(out, "- `{service}`: {}", parts.join(" → "));
    }
    let _ = writeln!(
        out,
        "\nExpected duration: at least {} of pauses and analysis windows, plus deploys, health \
         checks and backfills.\n",
        Duration::from_millis(held)
    );
}

/// The steps, one row each; a release of more than [`STEPS_LISTED`] steps lists the ones the
/// other sections do not summarise (migrations, backfills, pivots; traffic has its own section)
/// and counts the rest by kind.
fn steps_table(out: &mut String, plan: &Plan) {
    let all: Vec<&Step> = plan.steps().collect();
    let large = all.len() > STEPS_LISTED;
    let listed = |s: &Step| {
        !large || !s.reversible || matches!(s.params, Params::Migrate(_) | Params::Backfill(_))
    };
    out.push_str(
        "<details><summary>Steps</summary>\n\n| # | Step | What it does | Undo | Pivot \
         |\n|---|---|---|---|---|\n",
    );
    let mut rest: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (i, s) in all.iter().enumerate() {
        if !listed(s) {
            *rest.entry(s.kind().as_str()).or_default() += 1;
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} |",
            i + 1,
            s.id,
            cell(&s.description),
            cell(&s.undo),
            if s.reversible { "" } else { "**yes**" }
        );
    }
    if !rest.is_empty() {
        let counts: Vec<String> = rest.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(
            out,
            "\nNot listed: {} (`cutover plan SPEC` lists every step).",
            counts.join(", ")
        );
    }
    out.push_str("\n</details>\n\n");
}

/// The comment for a plan that findings stop: the verdict and the findings, so the pull
/// request shows why nothing was planned.
pub fn blocked_markdown(spec_path: &str, findings: &[Finding]) -> String {
    let mut out = format!(
        "### cutover plan `{spec_path}`: ⛔ **blocked**: {} finding(s) stop planning; nothing \
         was planned\n\n",
        findings.len()
    );
    findings_table(&mut out, findings);
    let _ = writeln!(
        out,
        "Each finding links its fix in `docs/rules.md`. Re-plan: `cutover plan {spec_path} \
         --format markdown`"
    );
    truncate(out)
}

fn truncate(mut out: String) -> String {
    if out.len() <= MARKDOWN_LIMIT {
        return out;
    }
    let notice = "\n\n> **Truncated**: this plan is longer than a pull-request comment allows. Run \
                  `cutover plan SPEC` (text) or `cutover plan SPEC --format json` for all of it.\n";
    // Room for the notice and for closing an open code block and <details>.
    let mut cut = MARKDOWN_LIMIT - notice.len() - 32;
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    // Cut at a line end so no table row is left half-written, then close an open code block.
    if let Some(nl) = out[..cut].rfind('\n') {
        cut = nl;
    }
    out.truncate(cut);
    if out.matches("```").count() % 2 == 1 {
        out.push_str("\n```");
    }
    if out.matches("<details>").count() > out.matches("</details>").count() {
        out.push_str("\n</details>");
    }
    out.push_str(notice);
    out
}
