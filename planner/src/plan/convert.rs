//! Type changes in a plan: a rename and a type change of the same column in one migration
//! compose into one rewrite ([`compose`]), and the type changes the rewrite cannot carry stop
//! the plan with what to do ([`findings`]).

use super::Analyzed;
use super::policy::finding;
use crate::analysis::{Inverse, MigrationAnalysis, StmtPhase};
use crate::lint::Finding;
use crate::schema::{Attachment, normalize};

/// In each migration, a type change of a column an earlier statement of the same migration
/// renamed becomes part of that rename's rewrite: the renamed column is added with the new
/// type and the sync trigger converts (one new column, one trigger, one backfill). The type
/// change's own statement is then done by the rename's expand step.
pub(super) fn compose(analyzed: &mut Analyzed) {
    for m in analyzed.iter_mut().flat_map(|(_, ms)| ms.iter_mut()) {
        for j in 0..m.statements.len() {
            let Some(r) = m.statements[j].rename.clone() else {
                continue;
            };
            let Some(conv) = r.conversion.clone().filter(|c| c.swap) else {
                continue;
            };
            let renamed = m.statements[..j].iter().rposition(|s| {
                s.rename.as_ref().is_some_and(|x| {
                    x.conversion.is_none()
                        && normalize(&x.table) == normalize(&r.table)
                        && normalize(&x.to) == normalize(&r.from)
                })
            });
            let Some(i) = renamed else { continue };
            let line = m.statements[i].line;
            let target = m.statements[i]
                .rename
                .as_mut()
                .expect("found by its rename");
            target.conversion = Some(crate::analysis::Conversion {
                swap: false,
                ..conv
            });
            target.attachments = r.attachments.clone();
            let s = &mut m.statements[j];
            s.rename = None;
            s.phase = StmtPhase::Expand;
            s.inverse = Inverse::Noop;
            s.sql = format!(
                "-- line {}: {} (done by the rewrite of line {line})",
                s.line, s.summary
            );
        }
    }
}

/// The `breaking-alter-column-type` findings of the type changes `plan` rewrites become
/// warnings, as a rewritten rename's `breaking-rename-column` is: the release is safe as
/// planned; those the rewrite cannot carry stop it through their own findings.
pub(super) fn soften(analyzed: &Analyzed, findings: &mut [Finding]) {
    for m in analyzed.iter().flat_map(|(_, ms)| ms) {
        for s in &m.statements {
            let rewritten = s
                .rename
                .as_ref()
                .is_some_and(|r| r.conversion.as_ref().is_some_and(|c| c.line == s.line))
                || s.sql.starts_with("-- line ");
            if !rewritten {
                continue;
            }
            for f in findings.iter_mut() {
                if f.file == m.file && f.line == s.line && f.rule == "breaking-alter-column-type" {
                    f.severity = crate::lint::Severity::Warning;
                    f.message = format!("{} (`plan` rewrites it into phases)", f.message);
                }
            }
        }
    }
}

/// The type changes the rewrite cannot carry (`type-change-rewrite-unsupported`), and those
/// with a USING expression but no way back (`type-change-needs-down`).
pub(super) fn findings(analyzed: &Analyzed) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in analyzed.iter().flat_map(|(_, ms)| ms) {
        for s in m.renames() {
            let r = s.rename.as_ref().expect("renames() have one");
            let Some(c) = &r.conversion else { continue };
            let what = format!("`{}.{}` to `{}`", r.table, r.from, c.new_type);
            if !r.attachments.is_empty() {
                out.push(unsupported(m, c.line, &what, &r.attachments));
            }
            if c.using.is_some() && !c.plain_cast && c.down.is_none() {
                out.push(finding(
                    "type-change-needs-down",
                    m,
                    c.line,
                    format!(
                        "changing {what} with `USING {}` needs the way back: while both versions \
                         run, a value the new version writes must be converted for the old one",
                        c.using.as_deref().unwrap_or_default()
                    ),
                    format!(
                        "add `-- cutover:down <expr>` on the line above the statement, an \
                         expression of `{col}` (its value in the new type) giving the old type's \
                         value, e.g. `-- cutover:down {col}::text`; if no way back exists, change \
                         the type in a `recreate` release",
                        col = r.from
                    ),
                ));
            }
        }
    }
    out
}

/// `type-change-rewrite-unsupported` for the change `what` on `line` of `m`, whose column has
/// `attachments`.
fn unsupported(
    m: &MigrationAnalysis,
    line: u32,
    what: &str,
    attachments: &[Attachment],
) -> Finding {
    let list: Vec<String> = attachments.iter().map(ToString::to_string).collect();
    let list = match list.as_slice() {
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        [] => String::new(),
    };
    finding(
        "type-change-rewrite-unsupported",
        m,
        line,
        format!(
            "changing {what} cannot be rewritten into phases: the column is {list}; the rewrite \
             adds a column of the new type, keeps it in sync and drops the old one at contract, \
             which loses that"
        ),
        "change the type in a `recreate` release (PostgreSQL keeps what is attached to the \
         column), or add a column of the new type yourself, move the app to it over two releases \
         and carry the key, constraint or index across by hand",
    )
}
