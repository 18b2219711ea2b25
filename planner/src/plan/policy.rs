//! The findings policy of a plan: which findings stop planning ([`blocks_online`],
//! [`blocks_always`]), how a recreate release restates the breaking ones, the renames the
//! rewrite cannot carry, and the version-order check of expand and contract migrations.

use super::Analyzed;
use crate::analysis::{MigrationAnalysis, Phase};
use crate::error::{Diagnostic, PlanError};
use crate::lint::{Finding, RuleId, Severity};
use crate::source::Location;

/// Rules whose findings stop planning in an online release.
pub(crate) fn blocks_online(rule: &str) -> bool {
    use RuleId::*;
    blocks_always(rule)
        || RuleId::from_id(rule).is_some_and(|r| {
            matches!(
                r,
                MixedPhaseMigration
                    | UnclassifiedStatement
                    | UnreadableDoBlock
                    | SequenceMoved
                    | RenameRewriteUnsupported
                    | TypeChangeRewriteUnsupported
                    | TypeChangeNeedsDown
                    | NotNullFillUnsupported
            ) || (r.is_breaking()
                && !matches!(
                    r,
                    BreakingRenameColumn | BreakingAlterColumnType | BreakingRenameTable
                ))
        })
}

/// Findings that stop any plan, recreate included: the migration cannot run as one recorded,
/// undoable unit.
pub(crate) fn blocks_always(rule: &str) -> bool {
    use RuleId::*;
    RuleId::from_id(rule).is_some_and(|r| {
        matches!(
            r,
            UnparseableStatement
                | PhaseDeclarationMismatch
                | TransactionControlInMigration
                | EnumValueInSameTransaction
                | ConcurrentlyInTransaction
                | ColumnTypeUsedByView
                | ConcurrentIndexOnPartitionedTable
        )
    })
}

/// `rename-rewrite-unsupported` for each rename whose old column carries what the rewrite (add
/// a plain column, copy, drop the old one) cannot: a primary key, an identity, a generated
/// expression, a sequence default, foreign keys referencing it, views reading it. Planned, the
/// release would end with the table's key or identity gone, or fail at the contract step after
/// the traffic moved; so the rename has no online rewrite, like any other breaking statement.
pub(super) fn unsupported_renames(analyzed: &Analyzed) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in analyzed.iter().flat_map(|(_, ms)| ms) {
        for s in m.renames() {
            let r = s.rename.as_ref().expect("renames() have one");
            // A type change's are `type-change-rewrite-unsupported` (convert.rs).
            if r.attachments.is_empty() || r.conversion.is_some() {
                continue;
            }
            let what = and_list(&r.attachments);
            let (table, from, to) = (&r.table, &r.from, &r.to);
            out.push(finding(
                "rename-rewrite-unsupported",
                m,
                s.line,
                format!(
                    "renaming `{table}.{from}` to `{to}` cannot be rewritten into phases: `{from}` \
                     is {what}; the rewrite adds `{to}` as a plain column, copies the values and \
                     drops `{from}`, which loses that (or fails at the contract step, after traffic \
                     moved)"
                ),
                format!(
                    "keep the name `{from}` in this release (the new version can read it as `{to}` \
                     through a view, e.g. `CREATE VIEW ... AS SELECT {from} AS {to}, ...`), or \
                     rename it in a `recreate` release, where the RENAME runs as written and \
                     PostgreSQL keeps the key, identity, foreign keys and views on the renamed \
                     column"
                ),
            ));
        }
    }
    out
}

/// Things in words (what is attached to a column, the columns a step copies): `a`, `a and
/// b`, `a, b and c`.
pub(super) fn and_list<T: std::fmt::Display>(attachments: &[T]) -> String {
    let what: Vec<String> = attachments.iter().map(ToString::to_string).collect();
    match what.as_slice() {
        [rest @ .., last] if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => what.concat(),
    }
}

/// Splits the analysis findings into those kept in the plan and those that stop it: the
/// blocking ones are the error. A recreate release runs breaking statements as written, so
/// their findings become `recreate-runs-as-is` notes, and mixing phases in a file is no concern.
pub(super) fn settle(findings: Vec<Finding>, recreate: bool) -> Result<Vec<Finding>, PlanError> {
    let mut blocking = Vec::new();
    let mut kept = Vec::new();
    for mut f in findings {
        if recreate && RuleId::from_id(&f.rule).is_some_and(RuleId::is_breaking) {
            f.message = format!(
                "{} (runs as written: the recreate strategy stops the old version first)",
                f.message
            );
            f.rule = "recreate-runs-as-is".into();
            f.severity = Severity::Info;
            f.hint = "nothing to do; an online strategy would need the phased recipe".into();
        }
        if recreate && f.rule == "mixed-phase-migration" {
            continue;
        }
        let blocks = f.blocking
            || if recreate {
                blocks_always(&f.rule)
            } else {
                blocks_online(&f.rule)
            };
        if blocks {
            f.blocking = true;
            blocking.push(f);
        } else {
            kept.push(f);
        }
    }
    if !blocking.is_empty() {
        return Err(PlanError::Blocked(blocking));
    }
    Ok(kept)
}

/// Renames marked `-- cutover:as-is` are not rewritten: in an online release their
/// `breaking-rename-column` finding becomes an error that stops the plan, as any breaking
/// statement's (a recreate release runs them as written).
pub(super) fn renames_as_is(
    analyzed: &mut [(String, Vec<MigrationAnalysis>)],
    findings: &mut [Finding],
    recreate: bool,
) {
    for (_, ms) in analyzed.iter_mut() {
        for m in ms.iter_mut() {
            for s in m.statements.iter_mut() {
                // An ignore of the table rename's finding says the migration keeps the old
                // name itself (its own view): nothing to rewrite.
                if s.ignores.contains("breaking-rename-table") {
                    s.table_rename = None;
                }
                // Kept as written: its NOT NULL is not filled either.
                if s.ignores.contains("as-is") {
                    s.fill = None;
                }
                if (s.rename.is_none() && s.table_rename.is_none()) || !s.ignores.contains("as-is")
                {
                    continue;
                }
                let rule = match s.rename.as_ref().map(|r| r.conversion.is_some()) {
                    Some(true) => "breaking-alter-column-type",
                    Some(false) => "breaking-rename-column",
                    None => "breaking-rename-table",
                };
                s.rename = None;
                s.table_rename = None;
                s.phase = crate::analysis::StmtPhase::Breaking;
                m.phase = Phase::Breaking;
                for f in findings.iter_mut() {
                    if f.file == m.file && f.line == s.line && f.rule == rule {
                        f.message =
                            format!("{} (kept as written by `-- cutover:as-is`)", f.message);
                        f.hint = f.hint.replacen(
                            "`cutover plan` rewrites it",
                            "without `-- cutover:as-is`, `cutover plan` rewrites it",
                            1,
                        );
                        if !recreate {
                            f.severity = Severity::Error;
                            f.blocking = true;
                        }
                    }
                }
            }
        }
    }
}

/// Online releases apply migrations in version order: expand ones must come first.
pub(super) fn check_expand_order(analyzed: &Analyzed) -> Result<(), PlanError> {
    let mut problems = Vec::new();
    for (_, ms) in analyzed {
        let mut contract: Option<&MigrationAnalysis> = None;
        for m in ms {
            let split = m.split();
            match m.phase {
                Phase::Contract if !split => contract = contract.or(Some(m)),
                // A rewritten rename's expand part (ADD COLUMN new) runs before the contract
                // migrations numbered before it too (V2 drops `nickname`, V3 renames a column
                // to `nickname`: the add would run before the drop).
                _ if split || m.phase == Phase::Expand => {
                    if let Some(c) = contract {
                        problems.push(Diagnostic::new(
                            Location::file(m.file.clone()),
                            format!(
                                "expand migration `{}` is numbered after contract migration `{}`",
                                m.file_name, c.file_name
                            ),
                            "migrations apply in version order, but expand runs before traffic \
                             moves and contract after the old version is retired: renumber so every \
                             expand migration comes first",
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    if !problems.is_empty() {
        return Err(PlanError::Invalid(problems));
    }
    Ok(())
}

/// Drops the rewrite's own reminders that the rename's ignore comments name, like any finding
/// of a statement (the blocking ones cannot be silenced: the plan would not work).
pub(super) fn drop_ignored(findings: &mut Vec<Finding>, analyzed: &Analyzed) {
    findings.retain(|f| {
        !crate::analysis::PLAN_IGNORABLE.contains(&f.rule.as_str())
            || !analyzed.iter().flat_map(|(_, ms)| ms).any(|m| {
                m.file == f.file
                    && m.statements
                        .iter()
                        .any(|s| s.line == f.line && s.ignores.contains(&f.rule))
            })
    });
}

pub(super) fn finding(
    rule_id: &str,
    m: &MigrationAnalysis,
    line: u32,
    message: String,
    hint: impl Into<String>,
) -> Finding {
    Finding {
        rule: rule_id.into(),
        severity: crate::lint::rule(rule_id).map_or(Severity::Warning, |r| r.severity),
        file: m.file.clone(),
        line,
        column: None,
        message,
        hint: hint.into(),
        blocking: false,
    }
}
