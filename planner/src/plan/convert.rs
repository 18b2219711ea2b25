//! Type changes in a plan: a rename and a type change of the same column in one migration
//! compose into one rewrite ([`compose`]), and the type changes the rewrite cannot carry stop
//! the plan with what to do ([`findings`]).

use super::Analyzed;
use super::policy::finding;
use crate::analysis::{
    ColumnRename, Fill, Inverse, MigrationAnalysis, StatementAnalysis, StmtPhase,
};
use crate::lint::Finding;
use crate::schema::{Attachment, bare, normalize};

/// A rename of a column whose only attachment the copy cannot carry is its default becomes a
/// conversion to the same type: its trigger tells the versions' inserts apart by the new
/// column, which only the new version writes (the plain rename's cannot: both columns hold a
/// value on every insert), and its contract gives the new column the default. The old type
/// must be declared (it is the new column's type).
pub(super) fn rename_defaults(analyzed: &mut Analyzed) {
    for m in analyzed.iter_mut().flat_map(|(_, ms)| ms.iter_mut()) {
        for s in m.statements.iter_mut() {
            let Some(r) = s.rename.as_mut() else { continue };
            let only_default = !r.attachments.is_empty()
                && r.attachments
                    .iter()
                    .all(|a| matches!(a, Attachment::Default { .. }));
            let Some(ty) = r.column_type.clone().filter(|_| only_default) else {
                continue;
            };
            if r.conversion.is_some() || r.collation.as_ref().is_some_and(|c| c.contains('.')) {
                continue;
            }
            let new_type = match &r.collation {
                Some(c) => format!("{ty} COLLATE \"{}\"", c.replace('"', "\"\"")),
                None => ty,
            };
            r.attachments.clear();
            r.conversion = Some(crate::analysis::Conversion {
                new_type,
                using: None,
                plain_cast: true,
                down: None,
                swap: false,
                new_default: None,
                line: s.line,
            });
        }
    }
}

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

/// The breaking findings of the NOT NULLs `plan` fills (`-- cutover:up`) become the info
/// `not-null-via-check`: the release is safe as planned. A fill whose table the migrations
/// declare without a primary key gets `backfill-key-unsupported`: its batches walk the key.
pub(super) fn fills(analyzed: &Analyzed, findings: &mut Vec<Finding>) {
    for m in analyzed.iter().flat_map(|(_, ms)| ms) {
        for s in &m.statements {
            let Some(f) = &s.fill else { continue };
            for x in findings.iter_mut() {
                let rule = x.rule.as_str();
                if x.file == m.file
                    && x.line == s.line
                    && matches!(
                        rule,
                        "breaking-set-not-null" | "breaking-add-required-column"
                    )
                {
                    x.rule = "not-null-via-check".into();
                    x.severity = crate::lint::Severity::Info;
                    x.message = format!(
                        "NOT NULL on `{}.{}` is filled and enforced in phases: a trigger gives \
                         the old version's NULL writes `{}` and a backfill the NULL rows \
                         (expand); the constraint is validated once the old version is gone \
                         (contract)",
                        f.table, f.column, f.expr
                    );
                    x.hint = "nothing to do; `plan` shows the SQL".into();
                }
            }
            if f.declared && (f.key.is_none() || super::rename::unwalkable(&f.key_types)) {
                findings.push(finding(
                    "backfill-key-unsupported",
                    m,
                    s.line,
                    format!(
                        "the backfill of `{}.{}` walks the table's primary key in integer ranges, \
                         but `{}` has {}",
                        f.table,
                        f.column,
                        f.table,
                        if f.key.is_none() {
                            "none".to_string()
                        } else {
                            format!("a key of type {}", f.key_types.join(", "))
                        }
                    ),
                    "give the table an integer primary key before this release, or fill the \
                     column yourself in an earlier migration",
                ));
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
                out.push(unsupported(m, c.line, &what, &r.attachments, ""));
            }
            if let Some(f) = zone_dependent(m, r, c) {
                out.push(f);
            }
            if !crate::rewrite::has_equality(&c.new_type) {
                out.push(unsupported(
                    m,
                    c.line,
                    &what,
                    &[],
                    "the new type has no equality operator, which the sync trigger and the \
                     backfill compare with",
                ));
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

/// The rewrites of one database's release seen so far, in migration order.
#[derive(Default)]
struct Seen {
    /// (table, column) of each type change in place.
    changed: Vec<(String, String)>,
    /// (table, from, to) of each column rename.
    renamed: Vec<(String, String, String)>,
    /// (table, column) of each fill.
    filled: Vec<(String, String)>,
    /// (table, column, migration version) of each type change in place: its old column is
    /// dropped at contract, with every index that names it.
    swapped: Vec<(String, String, u64)>,
}

impl Seen {
    /// The columns of `t` an earlier rewrite touches.
    fn touched(&self, t: &str) -> Vec<String> {
        let renamed = self.renamed.iter().filter(|(rt, _, _)| rt == t);
        let others = self
            .changed
            .iter()
            .chain(&self.filled)
            .filter(|(x, _)| x == t);
        renamed
            .flat_map(|(_, a, b)| [a.clone(), b.clone()])
            .chain(others.map(|(_, c)| c.clone()))
            .collect()
    }

    /// A fill meeting an earlier rewrite of its column or of a column its value names.
    fn fill(&mut self, m: &MigrationAnalysis, line: u32, f: &Fill, out: &mut Vec<Finding>) {
        let (t, c) = (normalize(&f.table), normalize(&f.column));
        let touched = self.touched(&t);
        let named = words(&f.expr);
        if touched.contains(&c) || touched.iter().any(|x| named.contains(&bare(x))) {
            out.push(fill_clash(m, line, f));
        }
        self.filled.push((t, c));
    }

    /// A table renamed after a rewrite of its columns: their contract names the old name.
    fn table(&self, m: &MigrationAnalysis, line: u32, from: &str, out: &mut Vec<Finding>) {
        let t = normalize(from);
        if self.changed.iter().any(|(ct, _)| *ct == t) || self.renamed.iter().any(|(x, ..)| *x == t)
        {
            out.push(finding(
                "rename-rewrite-unsupported",
                m,
                line,
                format!(
                    "`{from}` is renamed after a rewrite of its columns in this release: their \
                     contract steps name the table by its old name, a view by then"
                ),
                "rename the table first, in a migration before those that rename or change the \
                 type of its columns (they then name it by its new name)",
            ));
        }
    }

    /// A type change PostgreSQL makes in place, as written, of a column an earlier rewrite of
    /// the release renames, retypes or fills: its trigger (or the new version's view) uses the
    /// column, and PostgreSQL refuses to change the type of a column a trigger's `WHEN` or a
    /// view uses (`cannot alter type of a column used in a trigger definition`).
    fn in_place(&self, m: &MigrationAnalysis, line: u32, t: &str, c: &str, out: &mut Vec<Finding>) {
        if self.touched(t).iter().any(|x| x == c) {
            out.push(finding(
                "type-change-rewrite-unsupported",
                m,
                line,
                format!(
                    "the type of `{t}.{c}` changes in place after a rewrite of this release \
                     renames, retypes or fills it: that rewrite's trigger uses the column until \
                     the contract, and PostgreSQL cannot change the type of a column a trigger \
                     uses"
                ),
                "change the column's type in a release of its own, before or after this one",
            ));
        }
    }

    /// An index that names a column an earlier migration of the release changes the type of in
    /// place: a `CREATE INDEX`, or the copy a later rewrite carries. It would be built on the old
    /// column, which that type change's contract drops, index and all.
    fn index_on_swapped(
        &self,
        m: &MigrationAnalysis,
        s: &StatementAnalysis,
        out: &mut Vec<Finding>,
    ) {
        let carried = s
            .rename
            .iter()
            .flat_map(|r| &r.indexes)
            .map(|i| &i.create_sql);
        let created = s
            .sql
            .trim_start()
            .get(..6)
            .filter(|w| w.eq_ignore_ascii_case("create"))
            .map(|_| &s.sql);
        for sql in carried.chain(created) {
            let hit = self.swapped.iter().find(|(t, c, v)| {
                *v < m.version && crate::rewrite::index::uses(sql, c).is_some_and(|x| x == *t)
            });
            if let Some((t, c, v)) = hit {
                out.push(finding(
                    "type-change-rewrite-unsupported",
                    m,
                    s.line,
                    format!(
                        "this index names `{t}.{c}`, whose type changes in place in migration \
                         V{v} of this release: it would be built on the old column, which that \
                         change's contract drops, with the index"
                    ),
                    format!(
                        "change `{c}` and the other columns of the index in one migration (one \
                         copy of the index is built on all the new columns), or create the \
                         index in a release after this one"
                    ),
                ));
                return;
            }
        }
    }

    /// A type change reading, in its USING or `-- cutover:down` expression, another column of
    /// its table whose type an earlier rewrite of the release changes in place: until the
    /// contract that column holds its old value, where the statement as written reads the new.
    fn reads_retyped(
        &self,
        m: &MigrationAnalysis,
        line: u32,
        r: &ColumnRename,
        out: &mut Vec<Finding>,
    ) {
        let Some(c) = &r.conversion else { return };
        let t = normalize(&r.table);
        let named: Vec<String> = [&c.using, &c.down]
            .into_iter()
            .flatten()
            .flat_map(|e| words(e))
            .collect();
        let own = bare(&normalize(&r.from));
        let read = self
            .changed
            .iter()
            .filter(|(ct, cc)| *ct == t && bare(cc) != own)
            .find(|(_, cc)| named.contains(&bare(cc)));
        if let Some((_, other)) = read {
            out.push(finding(
                "type-change-rewrite-unsupported",
                m,
                line,
                format!(
                    "the conversion of `{}.{}` reads `{other}`, whose type changes earlier in this \
                     release: the rewrite would read its old value until the contract, where the \
                     statement as written reads the new one",
                    r.table, r.from
                ),
                format!(
                    "change the type of `{}` in a release after this one, once `{other}` has its \
                     new type",
                    r.from
                ),
            ));
        }
    }

    /// A column rename or type change meeting an earlier one, or a fill, of the same column.
    fn column(
        &mut self,
        m: &MigrationAnalysis,
        line: u32,
        r: &ColumnRename,
        out: &mut Vec<Finding>,
    ) {
        let (t, from, to) = (normalize(&r.table), normalize(&r.from), normalize(&r.to));
        let what = format!("`{}.{}`", r.table, r.from);
        self.reads_retyped(m, line, r, out);
        if self
            .filled
            .iter()
            .any(|(ft, fc)| *ft == t && (*fc == from || *fc == to))
        {
            out.push(finding(
                "not-null-fill-unsupported",
                m,
                line,
                format!(
                    "{what} is filled by `-- cutover:up` earlier in this release and renamed or \
                     changed here: the fill's trigger and the rewrite's would each see the other's \
                     column half done"
                ),
                "fill and make the column NOT NULL in a release of its own, or rename or change \
                 its type in another release",
            ));
        }
        let swap = r.conversion.as_ref().is_some_and(|c| c.swap);
        let clash = if swap {
            self.changed.contains(&(t.clone(), from.clone()))
                || self
                    .renamed
                    .iter()
                    .any(|(rt, a, b)| *rt == t && (*a == from || *b == from))
        } else {
            self.changed
                .iter()
                .any(|(ct, c)| *ct == t && (*c == from || *c == to))
        };
        if clash {
            out.push(finding(
                "type-change-rewrite-unsupported",
                m,
                line,
                format!(
                    "{what} changes type twice in this release, its type and then its name, or its \
                     name and type in different migrations: each rewrite keeps only its own two \
                     columns in sync"
                ),
                "change a column's type once per release; to rename it too, write the RENAME \
                 first and the type change right after it in the same migration (one rewrite \
                 carries both)",
            ));
        }
        if swap {
            self.swapped.push((t.clone(), from.clone(), m.version));
            self.changed.push((t, from));
        } else {
            self.renamed.push((t, from, to));
        }
    }
}

/// The rewrites of a release that would trip over each other: a column whose type changes
/// twice, or whose name and type change in different migrations (each rewrite keeps only its
/// own pair of columns in sync, and the later one's contract would fail on the earlier one's
/// trigger); a table renamed after a rewrite of its columns; a fill meeting another rewrite.
pub(super) fn conflicts(analyzed: &Analyzed) -> Vec<Finding> {
    let mut out = Vec::new();
    for (_, ms) in analyzed {
        let mut seen = Seen::default();
        for m in ms {
            for s in &m.statements {
                if let Some(f) = &s.fill {
                    seen.fill(m, s.line, f, &mut out);
                }
                if let Some(t) = &s.table_rename {
                    seen.table(m, s.line, &t.from, &mut out);
                }
                if let Some(r) = &s.rename {
                    seen.column(m, s.line, r, &mut out);
                }
                if let Some((t, c)) = &s.retyped {
                    seen.in_place(m, s.line, t, c, &mut out);
                }
                seen.index_on_swapped(m, s, &mut out);
            }
        }
    }
    out
}

/// The identifiers an expression names, lowercased (a word match: function names too).
fn words(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// `not-null-fill-unsupported` for the fill `f` on `line` of `m`.
fn fill_clash(m: &MigrationAnalysis, line: u32, f: &Fill) -> Finding {
    finding(
        "not-null-fill-unsupported",
        m,
        line,
        format!(
            "the fill of `{}.{}` (`-- cutover:up {}`) meets another rewrite of the release: the \
             column, or one its value names, is renamed, changes type or is filled too, and the \
             triggers would see each other's work half done",
            f.table, f.column, f.expr
        ),
        "fill from columns no other rewrite of the release touches, in a release of its own if \
         need be; or fill the rows yourself in an earlier migration",
    )
}

/// `type-change-rewrite-unsupported` for the change `what` on `line` of `m`, whose column has
/// `attachments` (or, without them, for the reason `why`).
fn unsupported(
    m: &MigrationAnalysis,
    line: u32,
    what: &str,
    attachments: &[Attachment],
    why: &str,
) -> Finding {
    let list = if attachments.is_empty() {
        why.to_string()
    } else {
        format!("the column is {}", super::policy::and_list(attachments))
    };
    finding(
        "type-change-rewrite-unsupported",
        m,
        line,
        format!(
            "changing {what} cannot be rewritten into phases: {list}; the rewrite adds a column \
             of the new type, keeps it in sync and drops the old one at contract"
        ),
        "change the type in a `recreate` release (PostgreSQL keeps what is attached to the \
         column), or add a column of the new type yourself, move the app to it over two releases \
         and carry the key, constraint or index across by hand",
    )
}

/// The type changes whose conversion depends on the session's `TimeZone` (timestamp to
/// timestamptz and back, date or time to a type with a zone) written without their own
/// conversion: the backfill's session (UTC, as sqlx opens it) and the app's sessions would
/// convert the same value differently (manual: Date/Time Types, "Conversions between
/// timestamp without time zone and timestamp with time zone normally assume that the
/// timestamp without time zone value should be taken or given as timezone local time").
fn zone_dependent(
    m: &MigrationAnalysis,
    r: &crate::analysis::ColumnRename,
    c: &crate::analysis::Conversion,
) -> Option<Finding> {
    if c.using.is_some() && !c.plain_cast {
        return None;
    }
    let zoned = |t: &str| {
        let t = t.trim().to_ascii_lowercase();
        t.starts_with("timestamptz") || t.contains("with time zone") || t.starts_with("timetz")
    };
    let local = |t: &str| {
        let t = t.trim().to_ascii_lowercase();
        (t.starts_with("timestamp") || t.starts_with("time") || t == "date") && !zoned(&t)
    };
    let old = r.column_type.as_deref()?;
    let new = &c.new_type;
    if !((zoned(old) && local(new)) || (local(old) && zoned(new))) {
        return None;
    }
    Some(finding(
        "type-change-needs-down",
        m,
        c.line,
        format!(
            "changing `{}.{}` from `{old}` to `{new}` converts by the session's TimeZone, which \
             differs between the backfill and the app's sessions",
            r.table, r.from
        ),
        format!(
            "name the zone both ways: `-- cutover:down {col} AT TIME ZONE 'UTC'` above `ALTER \
             COLUMN {col} TYPE {new} USING {col} AT TIME ZONE 'UTC'` (the zone the old values \
             mean)",
            col = r.from
        ),
    ))
}
