//! The pull-request review comment: summary line first, details after, under GitHub's limit.

use super::{Summary, mermaid};
use crate::dag::{MigrateParams, Params, Plan};
use std::fmt::Write;

/// Markdown output is cut to stay under this many characters (GitHub caps a comment at 65,536).
pub const MARKDOWN_LIMIT: usize = 60_000;

/// Findings listed in the comment; the rest are counted.
const FINDINGS_SHOWN: usize = 50;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The plan as a pull-request comment. `spec_path` is shown in the commands to re-plan and apply.
pub fn markdown(plan: &Plan, spec_path: &str) -> String {
    let sum = Summary::of(plan);
    let mut out = String::new();
    let f = &sum.findings;
    let _ = writeln!(
        out,
        "### cutover plan `{}`: {} steps, {} expand / {} contract migration(s), {} irreversible, \
         findings: {} error · {} warning · {} info\n",
        plan.release,
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
    let _ = writeln!(
        out,
        "Strategy: {}. Plan hash `{}`.\n",
        strategies.join(", "),
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
    if let Some(d) = &plan.downtime {
        let _ = writeln!(
            out,
            "**Downtime**: from `{}` until `{}` passes ({} steps; `apply` measures it).\n",
            d.from,
            d.to,
            d.steps.len()
        );
    }
    findings_table(&mut out, plan);
    out.push_str("<details><summary>Release DAG</summary>\n\n```mermaid\n");
    out.push_str(&mermaid(plan));
    out.push_str("```\n\n</details>\n\n");
    out.push_str(
        "<details><summary>Steps</summary>\n\n| # | Step | What it does | Undo | Pivot \
         |\n|---|---|---|---|---|\n",
    );
    for (i, s) in plan.steps().enumerate() {
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
    out.push_str("\n</details>\n\n");
    generated_sql(&mut out, plan);
    let _ = writeln!(
        out,
        "Re-plan: `cutover plan {spec_path} --format markdown` · dry run: `cutover apply \
         {spec_path} --dry-run`"
    );
    truncate(out)
}

/// The findings, most severe first, up to [`FINDINGS_SHOWN`].
fn findings_table(out: &mut String, plan: &Plan) {
    if !plan.findings.is_empty() {
        out.push_str(
            "#### Findings\n\n| Severity | Rule | Location | Message | Fix \
             |\n|---|---|---|---|---|\n",
        );
        // Most severe first; a long tail would push the DAG and the steps out of the comment.
        let mut findings: Vec<_> = plan.findings.iter().collect();
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

/// The SQL the rename rewrite generated, per step.
fn generated_sql(out: &mut String, plan: &Plan) {
    let generated: Vec<_> = plan
        .steps()
        .filter_map(|s| match &s.params {
            Params::Migrate(MigrateParams {
                generated_sql: Some(sql),
                ..
            }) => Some((s, sql)),
            _ => None,
        })
        .collect();
    if !generated.is_empty() {
        out.push_str("<details><summary>Generated SQL</summary>\n\n");
        for (s, sql) in generated {
            let _ = writeln!(out, "`{}`\n\n```sql\n{}\n```\n", s.id, sql);
        }
        out.push_str("</details>\n\n");
    }
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
