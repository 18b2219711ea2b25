//! Analyzing one file: [`analyze_file`] classifies each statement (with its ignore comments and
//! parse errors), then runs the checks that look at the file as a whole: transaction control,
//! enum values used in the transaction that adds them, drop-and-create replaces, errors outside
//! any statement, squawk's lock-hazard rules, statements that cannot share a transaction, unused
//! ignores and the file's phase. Each check is a method of [`FileCheck`], run in that order.

use super::*;
use comments::AS_IS;

/// Classifies one parsed file's statements and collects its findings; `violations` waits for
/// squawk's findings on it (they are computed meanwhile on another thread).
pub(super) fn analyze_file(
    file: &MigrationFile,
    parse: &Parse<SourceFile>,
    errors: Vec<(usize, String)>,
    violations: &mut dyn FnMut() -> Vec<Violation>,
    schema: &mut Schema,
    report: bool,
    opts: AnalyzeOptions,
) -> (MigrationAnalysis, Vec<Finding>) {
    let mut fc = FileCheck::new(file, parse, report);
    let mut errors = ErrorClaims::new(errors);

    // The phase declaration, read first: statements cutover cannot see into take it.
    let first_line = parse
        .tree()
        .stmts()
        .next()
        .and_then(|s| first_token_offset(s.syntax()))
        .map(|o| fc.index.line(o));
    let declared = declared_phase(&fc.comments, first_line, &fc.index);
    let declared_ok: Option<Phase> = declared.as_ref().and_then(|(d, _)| d.clone().ok());
    fc.late_declarations(first_line);

    let mut prev_end = 0usize;
    for stmt in parse.tree().stmts() {
        prev_end = fc.statement(&stmt, prev_end, &mut errors, schema, declared_ok);
    }
    // The tables a file of this release created stay new for the next files; elsewhere (an
    // applied file, `lint`) they are live from now on.
    schema.end_file(report && opts.release);

    let wrapper_spans = fc.transaction_control();
    let wrapper = !wrapper_spans.is_empty();
    let transactional = fc.statements.iter().all(|s| s.transactional);
    // Renames `plan` rewrites: their ignore comments may name the rewrite's findings.
    let rename_spans: BTreeSet<usize> = (0..fc.statements.len())
        .filter(|&i| fc.statements[i].rename.is_some())
        .collect();
    fc.unpopulated_views(transactional);
    if transactional {
        fc.enum_values_in_one_transaction();
        fc.replaces();
    }
    fc.orphan_errors(&errors);
    let mut violations = violations();
    if !fc.noop_creates.is_empty() {
        violations = lint_without(fc.text, &fc.noop_creates);
    }
    if report {
        fc.squawk_violations(violations, &wrapper_spans, wrapper, opts);
        fc.hidden_index_locks();
    }
    if !transactional {
        fc.not_alone();
    }
    let mut findings = fc.apply_ignores(&rename_spans);
    let phase = file_phase(&fc, &declared, &mut findings);
    let FileCheck { mut statements, .. } = fc;
    tidy(&mut findings, &mut statements);
    (
        MigrationAnalysis {
            file: file.display_path.clone(),
            version: file.version,
            name: file.name.clone(),
            phase,
            declared_phase: declared.and_then(|(d, _)| d.ok()),
            transactional,
            checksum: file.checksum.clone(),
            statements,
            file_name: file.file_name.clone(),
            refinery_checksum: file.refinery_checksum,
            down: file.down.clone(),
        },
        findings,
    )
}

/// squawk's findings for `text` with the statements at `spans` blanked out (offsets kept), so
/// that a no-op `CREATE TABLE IF NOT EXISTS` does not make squawk take a live table for a new
/// one (PostgreSQL manual, CREATE TABLE, IF NOT EXISTS: "a notice is issued ... the existing
/// relation is not modified").
fn lint_without(text: &str, spans: &[(usize, usize)]) -> Vec<Violation> {
    let mut blanked = String::with_capacity(text.len());
    for (at, ch) in text.char_indices() {
        if spans.iter().any(|&(s, e)| at >= s && at < e) {
            blanked.extend(std::iter::repeat_n(' ', ch.len_utf8()));
        } else {
            blanked.push(ch);
        }
    }
    let parse = SourceFile::parse(&blanked);
    lint_file(&parse, &blanked)
}

/// Where a statement is, for mapping squawk's violations to it.
struct Span {
    start: usize,
    end: usize,
    /// The table it works on was created by this release (or file): nobody waits on its locks.
    table_new: bool,
    /// Rule ids its ignore comments name, with the comment's line.
    ignores: BTreeMap<String, u32>,
    /// CREATE INDEX on a partitioned table: `Some(true)` for `ON ONLY` the parent (an invalid
    /// index, built by attaching the partitions' indexes: nothing to build, nothing to lock long).
    partitioned_index: Option<bool>,
    /// A plain CREATE INDEX on a table the file created, after a `search_path` change: squawk
    /// takes the table for the file's own, cutover cannot (see [`Schema::is_new`]).
    index_lock_hidden: bool,
}

/// What the file-level checks need of each statement.
struct Extra {
    drops: Vec<(&'static str, String)>,
    creates: Vec<(&'static str, String)>,
    base: StmtPhase,
    tx: TxControl,
    /// Its string literals, as written (`'x'`).
    literals: Vec<String>,
    /// `ALTER TYPE t ADD VALUE 'v'` (or those of a DO block): the type's key and the literal.
    enum_add: Vec<(String, String)>,
    /// `ALTER TYPE t RENAME VALUE 'a' TO 'b'`: the type's key, `a` and `b`.
    enum_rename: Option<(String, String, String)>,
    /// The literals of a LANGUAGE sql function's or procedure's body, used when it is created
    /// if `check_function_bodies` is on.
    body_literals: Vec<String>,
    /// `SET [LOCAL] check_function_bodies = ...` (or RESET): whether bodies are checked after it.
    checks_bodies: Option<bool>,
    /// See [`Class::unpopulates`] and [`Class::populates`].
    unpopulates: Option<String>,
    populates: Option<String>,
}

/// A file's parse errors in offset order (ties in the parser's order); `taken` marks those a
/// statement claimed.
struct ErrorClaims {
    errors: Vec<(usize, String)>,
    by_offset: Vec<usize>,
    taken: Vec<bool>,
}

impl ErrorClaims {
    fn new(errors: Vec<(usize, String)>) -> Self {
        let mut by_offset: Vec<usize> = (0..errors.len()).collect();
        by_offset.sort_by_key(|&i| errors[i].0);
        let taken = vec![false; errors.len()];
        ErrorClaims {
            errors,
            by_offset,
            taken,
        }
    }

    /// Claims the unclaimed errors at offsets in `from..to`; their messages in the parser's
    /// order, as it reported them.
    fn claim(&mut self, from: usize, to: usize) -> Vec<String> {
        let errors = &self.errors;
        let lo = self.by_offset.partition_point(|&i| errors[i].0 < from);
        let hi = self.by_offset.partition_point(|&i| errors[i].0 < to);
        let mut owned: Vec<usize> = self.by_offset[lo..hi.max(lo)]
            .iter()
            .copied()
            .filter(|&i| !self.taken[i])
            .collect();
        owned.sort_unstable();
        owned
            .iter()
            .map(|&i| {
                self.taken[i] = true;
                errors[i].1.clone()
            })
            .collect()
    }
}

/// A file being analyzed: its text and comments, and what its statements and checks found.
struct FileCheck<'a> {
    file: &'a MigrationFile,
    text: &'a str,
    source_lines: Vec<&'a str>,
    index: LineIndex,
    /// Findings are reported (not an applied file).
    report: bool,
    /// Comments in file order, with their offsets (for ignores and the phase declaration).
    comments: Vec<(usize, String)>,
    /// Where each non-trivia token starts, in file order (for placing squawk's violations).
    token_starts: Vec<usize>,
    /// The current statement's words (kept from statement to statement for its capacity).
    words: Vec<SmolStr>,
    statements: Vec<StatementAnalysis>,
    spans: Vec<Span>,
    extras: Vec<Extra>,
    /// Findings before ignore comments apply, with the statement (span) they belong to.
    pending: Vec<(Option<usize>, Finding)>,
    /// The offsets of the comments attached to a statement.
    attached_comments: BTreeSet<usize>,
    /// Spans whose `-- cutover:up` / `-- cutover:down` their statement has no use for.
    idle_directives: BTreeSet<(usize, &'static str)>,
    /// Where the `CREATE TABLE IF NOT EXISTS` statements on tables that already exist are: no-ops,
    /// which squawk nonetheless takes for new tables (and stays silent about their locks).
    noop_creates: Vec<(usize, usize)>,
    /// Lines of the indexes on a view or materialized view the file created: they cannot run
    /// before it, so they do not make the file mixed (they run in the file's phase).
    view_indexes: BTreeSet<u32>,
    /// Line and column of the last statement's first token: a finding on that line points at it.
    at: (u32, u32),
}

impl<'a> FileCheck<'a> {
    fn new(file: &'a MigrationFile, parse: &Parse<SourceFile>, report: bool) -> Self {
        let text = file.text.as_str();
        let root = parse.syntax_node();
        // One pass over the tokens: comments (for ignores and the phase declaration) and where
        // each non-trivia token starts (for placing squawk's violations), both in file order.
        // Everything below looks them up by binary search, so a file is analyzed in time linear
        // in its size.
        let mut comments: Vec<(usize, String)> = Vec::new();
        let mut token_starts: Vec<usize> = Vec::new();
        each_token(&root.green(), |kind, at, text| {
            if kind == SyntaxKind::COMMENT {
                comments.push((at, text.to_string()));
            } else if !kind.is_trivia() {
                token_starts.push(at);
            }
        });
        FileCheck {
            file,
            text,
            source_lines: text.split('\n').collect(),
            index: LineIndex::new(text),
            report,
            comments,
            token_starts,
            words: Vec::new(),
            statements: Vec::new(),
            spans: Vec::new(),
            extras: Vec::new(),
            pending: Vec::new(),
            attached_comments: BTreeSet::new(),
            idle_directives: BTreeSet::new(),
            noop_creates: Vec::new(),
            view_indexes: BTreeSet::new(),
            at: (0, 0),
        }
    }

    /// A finding of this file, on `line`: at the column of the statement starting there, else of
    /// the line's first character that is not whitespace.
    fn make(&self, rule_id: &str, line: u32, message: String, hint: String) -> Finding {
        // An unparseable statement starts where the garbage does, before what the parser read.
        let column = if self.at.0 == line && rule_id != "unparseable-statement" {
            self.at.1
        } else {
            self.source_lines
                .get(line.saturating_sub(1) as usize)
                .map_or(1, |l| {
                    l.chars().take_while(|c| c.is_whitespace()).count() as u32 + 1
                })
        };
        Finding {
            rule: rule_id.to_string(),
            severity: rule(rule_id).map_or(Severity::Warning, |r| r.severity),
            file: self.file.display_path.clone(),
            line,
            column: Some(column),
            message,
            hint,
            blocking: false,
        }
    }

    /// Classifies `stmt`, which follows a statement ending at `prev_end`, and records it with
    /// its findings; returns where it ends.
    fn statement(
        &mut self,
        stmt: &ast::Stmt,
        prev_end: usize,
        errors: &mut ErrorClaims,
        schema: &mut Schema,
        declared: Option<Phase>,
    ) -> usize {
        let node = stmt.syntax();
        let range = node.text_range();
        let (start, end) = (usize::from(range.start()), usize::from(range.end()));
        let green = node.green();
        // The words go into a buffer kept from statement to statement: no growing it anew.
        let mut words = std::mem::take(&mut self.words);
        let (first, literal_tokens) = statement_tokens(&green, start, &mut words);
        let (line, column) = self.index.line_col(self.text, first);
        self.at = (line, column);
        let sql = self.text[first..end].trim().to_string();
        let ignores = self.ignores_of(prev_end, first, end, line);
        // An error in the gap before a statement (text the parser skipped, like a misspelled
        // keyword) belongs to it: whatever it parsed after the garbage is not what was meant.
        let gap_start = self.spans.last().map_or(0, |s| s.end);
        let stmt_errors = errors.claim(gap_start, end.max(start + 1));
        let w: &[SmolStr] = &words;
        let mut class = classify_statement(stmt, w, &stmt_errors, schema, &self.index, self.report);
        if changes_search_path(w, &sql) {
            schema.set_search_path();
        }
        take_declared_phase(&mut class, declared);
        if matches!(stmt, ast::Stmt::CreateTable(_)) && class.phase == StmtPhase::Neutral {
            self.noop_creates.push((start, end));
        }
        self.pend_findings(&class, line);
        let extra = extra_of(stmt, w, literal_tokens, &mut class);
        // An index on a (materialized) view this file created goes where the view goes.
        if matches!(stmt, ast::Stmt::CreateIndex(_))
            && class.table.as_deref().is_some_and(|t| {
                schema.is_new_object_in_file("materialized view", t)
                    || schema.is_new_object_in_file("view", t)
            })
        {
            self.view_indexes.insert(line);
        }
        let span = span_of(stmt, w, (start, end), &class, schema, ignores);
        let ignored = span.ignores.keys().cloned().collect();
        self.spans.push(span);
        self.extras.push(extra);
        let st = statement_analysis(line, sql, class, ignored);
        // A `-- cutover:up` or `-- cutover:down` the statement has no use for.
        let (up, down) = (
            span_has(self.spans.last(), super::comments::UP_KEY),
            span_has(self.spans.last(), super::comments::DOWN_KEY),
        );
        if up && st.fill.is_none() {
            self.idle_directives
                .insert((self.spans.len() - 1, super::comments::UP));
        }
        if let Some(f) = &st.fill {
            self.filled(self.spans.len() - 1, f);
        }
        let converts = st.rename.as_ref().is_some_and(|r| r.conversion.is_some());
        if down && !converts {
            self.idle_directives
                .insert((self.spans.len() - 1, super::comments::DOWN));
        }
        self.statements.push(st);
        self.words = words;
        end
    }

    /// Records `class`'s findings as pending for the statement about to be recorded (the next
    /// span), on `line` unless a finding names its own.
    fn pend_findings(&mut self, class: &Class, line: u32) {
        let span = self.spans.len();
        for (rule_id, message, hint, at) in &class.findings {
            let f = self.make(
                rule_id.as_str(),
                at.unwrap_or(line),
                message.clone(),
                hint.clone(),
            );
            self.pending.push((Some(span), f));
        }
    }

    /// The rule ids the ignore comments of the statement at `first..end` (on `line`, after a
    /// statement ending at `prev_end`) name; marks those comments attached.
    fn ignores_of(
        &mut self,
        prev_end: usize,
        first: usize,
        end: usize,
        line: u32,
    ) -> BTreeMap<String, u32> {
        let (index, comments) = (&self.index, &self.comments);
        // An ignore comment belongs to one statement: the one it follows on its line (written
        // after it) or the first one starting on the line below (written above it), never to
        // one further on.
        let prev_line = (prev_end > 0).then(|| index.line(prev_end.saturating_sub(1)));
        let end_line = index.line(end.saturating_sub(1));
        // Written above it, the comment must be in the block of comment lines right above the
        // statement: a blank line or other text between them ends its reach.
        let attached = |at: usize| {
            let from = index.line(at) as usize;
            (from + 1..line as usize).all(|l| {
                let t = self.source_lines.get(l - 1).map_or("", |t| t.trim());
                t.starts_with("--")
                    || t.starts_with("/*")
                    || t.starts_with('*')
                    || t.ends_with("*/")
            })
        };
        let own_from = comments.partition_point(|(at, _)| *at < prev_end);
        let own_to = comments
            .partition_point(|(at, _)| *at < first)
            .max(own_from);
        let own: Vec<(usize, String)> = comments[own_from..own_to]
            .iter()
            .filter(|(at, _)| Some(index.line(*at)) != prev_line && attached(*at))
            .cloned()
            .collect();
        // Written after it, the comment must follow it directly: on a line of two statements
        // (`A; B; -- cutover:ignore ...`) it is the last one's, the statement the line ends.
        let (starts, text) = (&self.token_starts, self.text);
        let follows_directly = |at: usize| {
            let from = starts.partition_point(|&t| t < end);
            starts[from..]
                .iter()
                .take_while(|&&t| t < at)
                .all(|&t| text[t..].starts_with(';'))
        };
        let trailing_from = comments.partition_point(|(at, _)| *at < end);
        let trailing: Vec<(usize, String)> = comments[trailing_from..]
            .iter()
            .take_while(|(at, _)| index.line(*at) == end_line)
            .filter(|(at, _)| follows_directly(*at))
            .cloned()
            .collect();
        let mut ignores = ignores_between(&own, prev_end, first, index);
        ignores.extend(ignores_between(&trailing, end, usize::MAX, index));
        self.attached_comments
            .extend(own.iter().chain(&trailing).map(|(at, _)| *at));
        ignores
    }

    /// The breaking NOT NULL finding of the statement of span `span`, which `-- cutover:up`
    /// gives a value for NULL rows (`f`), becomes the info `not-null-via-check`: `lint` and
    /// `plan` agree the migration is safe online.
    fn filled(&mut self, span: usize, f: &Fill) {
        for (at, x) in self.pending.iter_mut() {
            if *at == Some(span)
                && matches!(
                    x.rule.as_str(),
                    "breaking-set-not-null" | "breaking-add-required-column"
                )
            {
                x.rule = "not-null-via-check".into();
                x.severity = Severity::Info;
                x.message = format!(
                    "NOT NULL on `{}.{}` with `-- cutover:up {}`: an online `plan` fills the \
                     old version's NULL writes and rows (a trigger and a backfill, expand) and \
                     enforces NOT NULL through a validated CHECK once that version is gone \
                     (contract); a recreate release runs the statement as written",
                    f.table, f.column, f.expr
                );
                x.hint = "nothing to do; `plan` shows the SQL".into();
            }
        }
    }

    /// `unused-ignore` for the directive `name` on `line`, which its statement has no use for.
    fn idle_directive(&self, name: &str, line: u32) -> Finding {
        self.make(
            "unused-ignore",
            line,
            format!(
                "this `-- {name}` gives nothing to its statement: `up` is the value of NULL rows \
                 for a SET NOT NULL or an ADD COLUMN ... NOT NULL without a default, `down` the \
                 way back of an ALTER COLUMN ... TYPE, on a table the running version uses"
            ),
            "move it to the statement it is for (on its line, or right above it), or remove it"
                .into(),
        )
    }

    /// Transaction control. A file wrapped in its own BEGIN ... COMMIT (golang-migrate's and
    /// pop's habit) is one transaction as cutover runs it anyway: the wrapper is left out, so
    /// the file and its history row commit together. Any other BEGIN, COMMIT or ROLLBACK would
    /// commit or abort part of the file: the run could not be recorded or undone as one.
    /// Returns the spans of the wrapper left out (none when there is no wrapper).
    fn transaction_control(&mut self) -> Vec<(usize, usize)> {
        let control: Vec<usize> = (0..self.extras.len())
            .filter(|&i| self.extras[i].tx != TxControl::None)
            .collect();
        let wrapper = match control.as_slice() {
            [b, c] => {
                self.extras[*b].tx == TxControl::Begin
                    && self.extras[*c].tx == TxControl::Commit
                    && *c == self.statements.len() - 1
                    && self.statements[..*b]
                        .iter()
                        .all(|s| s.phase == StmtPhase::Neutral)
            }
            _ => false,
        };
        let mut wrapper_spans: Vec<(usize, usize)> = Vec::new();
        if !wrapper {
            for &i in &control {
                let s = &self.statements[i];
                let f = self.make(
                    "transaction-control-in-migration",
                    s.line,
                    format!(
                        "`{}` ends or opens a transaction inside the migration: what ran before it \
                         would commit (or roll back) on its own, so a failure after it leaves the \
                         file half applied while the run reports it undone",
                        s.summary
                    ),
                    "remove it: cutover runs each file in one transaction; split the file into \
                     several migrations where parts must commit separately"
                        .into(),
                );
                self.pending.push((Some(i), f));
            }
            return wrapper_spans;
        }
        for &i in control.iter().rev() {
            wrapper_spans.push((self.spans[i].start, self.spans[i].end));
            let s = &self.statements[i];
            let f = self.make(
                "transaction-wrapper",
                s.line,
                format!(
                    "`{}` is left out: cutover runs the file in one transaction of its own and \
                     records it in refinery's history in that same transaction",
                    s.summary
                ),
                "nothing to do; the file runs exactly once, all or nothing".into(),
            );
            self.pending.push((None, f));
            self.statements.remove(i);
            self.spans.remove(i);
            self.extras.remove(i);
            for (s, _) in self.pending.iter_mut() {
                *s = match *s {
                    Some(x) if x == i => None,
                    Some(x) if x > i => Some(x - 1),
                    other => other,
                };
            }
        }
        wrapper_spans
    }

    /// An enum value added in a transaction cannot be used before it commits (PostgreSQL
    /// manual, ALTER TYPE, Notes: "unsafe use of new value"), unless the type itself was
    /// created in the same transaction.
    fn enum_values_in_one_transaction(&mut self) {
        let mut added: Vec<(String, String, u32)> = Vec::new();
        let mut created_types: BTreeSet<String> = BTreeSet::new();
        let mut renamed_new: Vec<usize> = Vec::new();
        let mut checking_bodies = true;
        for (i, e) in self.extras.iter().enumerate() {
            checking_bodies = e.checks_bodies.unwrap_or(checking_bodies);
            let body = |l: &String| checking_bodies && e.body_literals.contains(l);
            // Renaming a value added in this transaction is no use of it (PostgreSQL accepts
            // it); the new name is as uncommitted as the old one, and the running version
            // never knew either.
            if let Some((ty, from, to)) = &e.enum_rename
                && let Some(k) = added.iter().position(|(t, l, _)| t == ty && l == from)
            {
                added[k].1 = to.clone();
                renamed_new.push(i);
                continue;
            }
            for (v, literal, at) in &added {
                if (e.literals.contains(literal) || body(literal))
                    && !e.enum_add.iter().any(|(_, l)| l == literal)
                {
                    let f = self.make(
                        "enum-value-in-same-transaction",
                        self.statements[i].line,
                        format!(
                            "the enum value '{literal}' added to `{v}` on line {at} is used here, \
                             in the same transaction: PostgreSQL refuses it (unsafe use of new \
                             value) until the transaction that added it commits"
                        ),
                        "move the `ALTER TYPE ... ADD VALUE` into a migration of its own, before \
                         this one (cutover commits each migration separately)"
                            .into(),
                    );
                    self.pending.push((Some(i), f));
                    break;
                }
            }
            for (ty, literal) in &e.enum_add {
                if !created_types.contains(ty) {
                    added.push((ty.clone(), literal.clone(), self.statements[i].line));
                }
            }
            created_types.extend(
                e.creates
                    .iter()
                    .filter(|(k, _)| *k == "type")
                    .map(|(_, n)| n.clone()),
            );
        }
        for i in renamed_new {
            self.statements[i].phase = StmtPhase::Expand;
            self.pending
                .retain(|(s, f)| *s != Some(i) || f.rule != RuleId::BreakingRenameObject.as_str());
        }
    }

    /// Materialized views the running version reads that a statement leaves unpopulated
    /// (`WITH NO DATA`): breaking, unless a later REFRESH in the same transaction populates
    /// them before anyone else can read them (a file that is not one transaction commits in
    /// between, so its REFRESH does not count).
    fn unpopulated_views(&mut self, transactional: bool) {
        for i in 0..self.extras.len() {
            let Some(view) = self.extras[i].unpopulates.clone() else {
                continue;
            };
            let populated = transactional
                && self.extras[i + 1..]
                    .iter()
                    .any(|e| e.populates.as_ref() == Some(&view));
            if populated {
                continue;
            }
            self.statements[i].phase = self.statements[i].phase.max(StmtPhase::Breaking);
            self.extras[i].base = self.extras[i].base.max(StmtPhase::Breaking);
            let f = self.make(
                "breaking-unpopulated-matview",
                self.statements[i].line,
                format!(
                    "the materialized view `{view}` is left unpopulated (WITH NO DATA): the \
                     running version's reads of it fail (materialized view has not been \
                     populated) until a REFRESH"
                ),
                format!(
                    "populate it in the same migration: follow it with `REFRESH MATERIALIZED \
                     VIEW {view};` (one transaction: no reader sees it empty), or create it \
                     WITH DATA"
                ),
            );
            self.pending.push((Some(i), f));
        }
    }

    /// One transaction is one unit: dropping an object and creating it again under the same
    /// name is a replace, which the running version sees as one change.
    fn replaces(&mut self) {
        let extras = &self.extras;
        // Where each object is created, in statement order.
        let mut created_at: std::collections::HashMap<&(&'static str, String), Vec<usize>> =
            std::collections::HashMap::new();
        for (j, e) in extras.iter().enumerate() {
            for c in &e.creates {
                created_at.entry(c).or_default().push(j);
            }
        }
        for (i, e) in extras.iter().enumerate() {
            if e.drops.is_empty() {
                continue;
            }
            // Each dropped object must be created again later in the file; the replace takes
            // the phase of what re-creates it (a unique index in place of a plain one is judged
            // as the unique index).
            let recreating: Option<Vec<usize>> = extras[i]
                .drops
                .iter()
                .map(|d| {
                    created_at.get(d).and_then(|at| {
                        at.iter().copied().find(|&j| {
                            j > i
                                && same_signature(
                                    d.0,
                                    &self.statements[i].sql,
                                    &self.statements[j].sql,
                                )
                        })
                    })
                })
                .collect();
            let Some(recreating) = recreating else {
                continue;
            };
            let net = recreating
                .iter()
                .map(|&j| self.statements[j].phase)
                .fold(StmtPhase::Expand, StmtPhase::max);
            self.statements[i].phase = e.base.max(net);
            for (kind, name) in extras[i]
                .drops
                .iter()
                .filter(|(k, _)| replace_is_visible(k))
            {
                let f = self.make(
                    "replaces-object",
                    self.statements[i].line,
                    format!(
                        "this migration drops and re-creates the {kind} `{name}` in one \
                         transaction: the running version sees the new definition from the moment \
                         it commits"
                    ),
                    "make sure the old version works with the new definition (a view that only \
                     gains columns does); otherwise create it under a new name (expand) and drop \
                     the old one in a contract migration"
                        .into(),
                );
                self.pending.push((Some(i), f));
            }
        }
    }

    /// Errors outside any statement: text the parser did not even start a statement for. Each
    /// line gets one unparseable statement, placed after the statements that start on or before
    /// its line, merged in one pass.
    fn orphan_errors(&mut self, errors: &ErrorClaims) {
        let mut unparseable_lines: BTreeSet<u32> = self
            .statements
            .iter()
            .filter(|s| s.phase == StmtPhase::Unparseable)
            .map(|s| s.line)
            .collect();
        let mut orphans: Vec<StatementAnalysis> = Vec::new();
        for (i, (at, message)) in errors.errors.iter().enumerate() {
            if errors.taken[i] {
                continue;
            }
            let line = self.index.line(*at);
            if !unparseable_lines.insert(line) {
                continue;
            }
            let f = self.make(
                "unparseable-statement",
                line,
                format!("the SQL parser cannot read this statement: {message}"),
                "fix the syntax (check it with `psql`); cutover will not guess what an unreadable \
                 statement does"
                    .into(),
            );
            self.pending.push((None, f));
            let rest = self.text[*at..]
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            orphans.push(StatementAnalysis {
                line,
                phase: StmtPhase::Unparseable,
                summary: summarize(&rest),
                transactional: true,
                sql: rest,
                inverse: Inverse::Unknown("the statement could not be read".into()),
                rename: None,
                table_rename: None,
                fill: None,
                retyped: None,
                owner_of: None,
                ignores: BTreeSet::new(),
            });
        }
        if orphans.is_empty() {
            return;
        }
        orphans.sort_by_key(|s| s.line);
        let statements = std::mem::take(&mut self.statements);
        let mut merged = Vec::with_capacity(statements.len() + orphans.len());
        let mut orphans = orphans.into_iter().peekable();
        for s in statements {
            while let Some(o) = orphans.next_if(|o| o.line < s.line) {
                merged.push(o);
            }
            merged.push(s);
        }
        merged.extend(orphans);
        self.statements = merged;
    }

    /// squawk's lock-hazard rules, placed on the statement they are in; `wrapper_spans` are
    /// the transaction wrapper left out.
    fn squawk_violations(
        &mut self,
        violations: Vec<Violation>,
        wrapper_spans: &[(usize, usize)],
        wrapper: bool,
        opts: AnalyzeOptions,
    ) {
        for v in violations {
            let at = usize::from(v.text_range.start());
            let id = v.code.to_string();
            if wrapper_spans.iter().any(|(s, e)| at >= *s && at < *e) {
                continue;
            }
            // Statements are in file order and do not overlap.
            let spans = &self.spans;
            let span = Some(spans.partition_point(|s| s.end <= at))
                .filter(|&i| spans.get(i).is_some_and(|s| s.start <= at));
            if let Some(s) = span.map(|i| &spans[i])
                && SQUAWK_LOCK_RULES.contains(&id.as_str())
                && s.table_new
            {
                continue;
            }
            let partitioned = span.and_then(|i| spans[i].partitioned_index);
            if v.code == Rule::RequireConcurrentIndexCreation && partitioned == Some(true) {
                continue;
            }
            // Inside a plan the executor sets the database's lock_timeout and statement_timeout
            // around every statement, so a file without its own SET has nothing to fix.
            if opts.release
                && matches!(
                    v.code,
                    Rule::RequireLockTimeout | Rule::RequireStatementTimeout
                )
            {
                continue;
            }
            // With its wrapper left out, the file no longer nests transactions.
            if wrapper
                && matches!(
                    v.code,
                    Rule::TransactionNesting | Rule::BanConcurrentIndexCreationInTransaction
                )
            {
                continue;
            }
            // CONCURRENTLY fails on a partitioned table: the recipe is the partitions' way.
            let hint = if v.code == Rule::RequireConcurrentIndexCreation && partitioned.is_some() {
                super::create::RECIPE_PARTITIONED_INDEX.to_string()
            } else {
                v.help
                    .clone()
                    .unwrap_or_else(|| rule(&id).map_or(String::new(), |r| r.summary.to_string()))
            };
            let line = self.index.line(first_offset_at(&self.token_starts, at));
            let f = self.make(&id, line, v.message.clone(), hint);
            self.pending.push((span, f));
        }
    }

    /// squawk's lock finding on a plain CREATE INDEX it took for one on the file's own table,
    /// where a `search_path` change means cutover cannot tell which table it is.
    fn hidden_index_locks(&mut self) {
        for i in 0..self.spans.len() {
            let reported = self
                .pending
                .iter()
                .any(|(s, f)| *s == Some(i) && f.rule == "require-concurrent-index-creation");
            if !self.spans[i].index_lock_hidden || reported {
                continue;
            }
            let f = self.make(
                "require-concurrent-index-creation",
                self.statements[i].line,
                "the file changed `search_path`, so this unqualified table may be one the running \
                 version uses: a plain CREATE INDEX blocks its writes while the index builds"
                    .into(),
                "qualify the table with its schema, or create the index CONCURRENTLY in a \
                 migration of its own"
                    .into(),
            );
            self.pending.push((Some(i), f));
        }
    }

    /// `-- cutover:phase=` declarations after the first statement (on `first_line`): not read,
    /// so reported rather than silently ignored.
    fn late_declarations(&mut self, first_line: Option<u32>) {
        for line in late_phase_declarations(&self.comments, first_line, &self.index) {
            let f = self.make(
                "phase-declaration-mismatch",
                line,
                "this `-- cutover:phase=` declaration comes after the first statement: cutover \
                 reads only a declaration before it, so this one would be ignored"
                    .into(),
                "move it to the top of the file, before the first statement, or remove it".into(),
            );
            self.pending.push((None, f));
        }
    }

    /// A statement that cannot run in a transaction must be alone (SET/RESET aside).
    fn not_alone(&mut self) {
        let others = self
            .statements
            .iter()
            .filter(|s| s.transactional && s.phase != StmtPhase::Neutral)
            .count();
        if others == 0 {
            return;
        }
        for s in self.statements.iter().filter(|s| !s.transactional) {
            let f = self.make(
                "concurrently-in-transaction",
                s.line,
                format!(
                    "`{}` cannot run inside a transaction, but this migration has {others} other \
                     statement(s) that would share its run",
                    s.summary
                ),
                "move it into a migration file of its own (or with other statements that cannot \
                 run in a transaction); cutover runs such a file statement by statement outside a \
                 transaction"
                    .into(),
            );
            self.pending.push((None, f));
        }
    }

    /// Ignore comments: each silences the rules it names on its own statement, and one that
    /// silences nothing is reported (a typo, or a rule that no longer fires). The findings that
    /// remain.
    fn apply_ignores(&mut self, rename_spans: &BTreeSet<usize>) -> Vec<Finding> {
        let mut findings: Vec<Finding> = Vec::new();
        let mut used: BTreeSet<(usize, String)> = BTreeSet::new();
        for (span, f) in std::mem::take(&mut self.pending) {
            if let Some(i) = span
                && !unsilenceable(&f.rule)
                && self.spans[i].ignores.contains_key(&f.rule)
            {
                used.insert((i, f.rule));
                continue;
            }
            findings.push(f);
        }
        if !self.report {
            return findings;
        }
        for (at, comment) in &self.comments {
            let directive = comment.contains("cutover:ignore")
                || comment.contains(AS_IS)
                || comment.contains(super::comments::DOWN)
                || comment.contains(super::comments::UP);
            if directive && !self.attached_comments.contains(at) {
                findings.push(
                    self.make(
                        "unused-ignore",
                        self.index.line(*at),
                        "this ignore comment silences nothing: it is neither on a statement's line \
                         nor in the comment lines right above one"
                            .into(),
                        "move it onto the line of the statement it is for, or right above it (no \
                         blank line between)"
                            .into(),
                    ),
                );
            }
        }
        for (i, s) in self.spans.iter().enumerate() {
            for (id, at) in &s.ignores {
                // Not an ignore: `plan` reads it (a statement it would not rewrite keeps it
                // harmlessly).
                if id == "as-is" {
                    continue;
                }
                if let Some(name) = directive_name(id) {
                    if self.idle_directives.contains(&(i, name)) {
                        findings.push(self.idle_directive(name, *at));
                    }
                    continue;
                }
                if used.contains(&(i, id.clone()))
                    || (rename_spans.contains(&i) && PLAN_IGNORABLE.contains(&id.as_str()))
                {
                    continue;
                }
                let why = if id == "unparseable-statement" {
                    "an unreadable statement cannot be ignored".to_string()
                } else if unsilenceable(id) {
                    format!(
                        "`{id}` cannot be ignored: the migration cannot run correctly as written \
                         (PostgreSQL refuses it, or part of it would commit on its own)"
                    )
                } else if rule(id).is_none() {
                    format!("there is no rule `{id}` (`cutover lint --list-rules` lists them)")
                } else {
                    format!("`{id}` reports nothing on this statement")
                };
                findings.push(
                    self.make(
                        "unused-ignore",
                        *at,
                        format!("this ignore comment silences nothing: {why}"),
                        "remove it, or fix the rule id; an ignore applies to the statement on its \
                         own line or on the next line"
                            .into(),
                    ),
                );
            }
        }
        findings
    }
}

/// Rules an ignore comment cannot silence: those that stop every plan because the migration
/// cannot run as one correct, recorded unit (PostgreSQL refuses a statement, or part of the file
/// would commit on its own). An ignore naming one is reported as unused.
fn unsilenceable(rule: &str) -> bool {
    crate::plan::policy::blocks_always(rule)
}

/// What the file-level checks need of a statement: its drops and creates (taken from `class`),
/// its transaction control, its string literals (a DO block's from `class`, otherwise from
/// `literal_tokens`) and the enum values it adds.
fn extra_of(
    stmt: &ast::Stmt,
    w: &[SmolStr],
    literal_tokens: Vec<(SyntaxKind, &str)>,
    class: &mut Class,
) -> Extra {
    let literals: Vec<String> = if matches!(stmt, ast::Stmt::Do(_)) {
        std::mem::take(&mut class.literals)
    } else {
        literal_values(literal_tokens)
    };
    // A LANGUAGE sql body is parsed and checked when the function is created, unless
    // check_function_bodies is off (PostgreSQL manual, CREATE FUNCTION; 20.11 Client Connection
    // Defaults): the literals in it are used then.
    let body_literals: Vec<String> = if matches!(
        stmt,
        ast::Stmt::CreateFunction(_) | ast::Stmt::CreateProcedure(_)
    ) && has_seq(w, &["language", "sql"])
    {
        literals.iter().flat_map(|b| quoted_in(b)).collect()
    } else {
        Vec::new()
    };
    let checks_bodies = w
        .iter()
        .position(|x| x == "check_function_bodies")
        .filter(|_| matches!(w.first().map(SmolStr::as_str), Some("set" | "reset")))
        .map(|at| {
            let value = w[at + 1..]
                .iter()
                .find(|x| !matches!(x.as_str(), "=" | "to"));
            !matches!(
                value.map(|v| v.trim_matches('\'')),
                Some("false" | "off" | "0" | "no")
            )
        });
    let enum_rename = match stmt {
        ast::Stmt::AlterType(_) if has_seq(w, &["rename", "value"]) => {
            match (name_after(stmt.syntax(), "type", &[]), literals.as_slice()) {
                (Some(ty), [from, to, ..]) => Some((normalize(&ty), from.clone(), to.clone())),
                _ => None,
            }
        }
        _ => None,
    };
    let enum_add = match stmt {
        ast::Stmt::AlterType(_) if has_seq(w, &["add", "value"]) => {
            // ADD VALUE 'v' [BEFORE | AFTER 'w']: the first literal is the new value.
            name_after(stmt.syntax(), "type", &[])
                .and_then(|ty| Some((normalize(&ty), literals.first()?.clone())))
                .into_iter()
                .collect()
        }
        ast::Stmt::Do(_) => std::mem::take(&mut class.enum_adds),
        _ => Vec::new(),
    };
    Extra {
        drops: std::mem::take(&mut class.drops),
        creates: std::mem::take(&mut class.creates),
        base: class.base,
        tx: tx_control(stmt, w),
        literals,
        enum_add,
        enum_rename,
        body_literals,
        checks_bodies,
        unpopulates: class.unpopulates.take(),
        populates: class.populates.take(),
    }
}

/// The single-quoted literals in a piece of SQL (a function body), quotes doubled inside one
/// read as one.
fn quoted_in(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut lit = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    lit.push('\'');
                    continue;
                }
                break;
            }
            lit.push(c);
        }
        out.push(lit);
    }
    out
}

/// Where the statement at `start..end` is, with its ignore comments, and whether its table is
/// new, partitioned (for CREATE INDEX) or hidden behind a `search_path` change.
fn span_of(
    stmt: &ast::Stmt,
    w: &[SmolStr],
    (start, end): (usize, usize),
    class: &Class,
    schema: &Schema,
    ignores: BTreeMap<String, u32>,
) -> Span {
    let table = class.table.as_deref();
    let index = matches!(stmt, ast::Stmt::CreateIndex(_));
    let plain_index =
        matches!(stmt, ast::Stmt::CreateIndex(ci) if ci.concurrently_token().is_none());
    Span {
        start,
        end,
        // A materialized view the release created (or this file created again) is read only;
        // no running version writes it, so an index build's lock blocks nobody's writes.
        table_new: table.is_some_and(|t| {
            schema.is_new(t) || schema.is_new_object("materialized view", &normalize(t))
        }),
        ignores,
        partitioned_index: (index && table.is_some_and(|t| schema.is_partitioned(t)))
            .then(|| has_seq(w, &["on", "only"])),
        index_lock_hidden: plain_index
            && schema.search_path_changed()
            && table.is_some_and(|t| !schema.is_new(t)),
    }
}

/// The directive (`cutover:up`, `cutover:down`) whose value the ignore id `id` carries.
fn directive_name(id: &str) -> Option<&'static str> {
    [
        (super::comments::DOWN_KEY, super::comments::DOWN),
        (super::comments::UP_KEY, super::comments::UP),
    ]
    .into_iter()
    .find(|(key, _)| id.starts_with(key))
    .map(|(_, name)| name)
}

/// Whether `span` has an ignore id starting with `key` (a directive's value).
fn span_has(span: Option<&Span>, key: &str) -> bool {
    span.is_some_and(|s| s.ignores.keys().any(|id| id.starts_with(key)))
}

/// The analysis a statement on `line` reports: `class`'s phase, inverse, rename and owner, and
/// the rule ids its ignore comments name.
fn statement_analysis(
    line: u32,
    sql: String,
    class: Class,
    mut ignores: BTreeSet<String>,
) -> StatementAnalysis {
    let mut rename = class.rename;
    let mut take = |key: &str| {
        let v = ignores
            .iter()
            .find_map(|id| id.strip_prefix(key).map(str::to_string));
        if let Some(v) = &v {
            ignores.remove(&format!("{key}{v}"));
        }
        v
    };
    let down = take(super::comments::DOWN_KEY);
    let up = take(super::comments::UP_KEY);
    let fill = class.fill.zip(up).map(|(f, expr)| Fill { expr, ..f });
    if let Some(c) = rename.as_mut().and_then(|r| r.conversion.as_mut()) {
        c.line = line;
        c.down = down;
    }
    StatementAnalysis {
        line,
        phase: class.phase,
        summary: summarize(&sql),
        transactional: class.transactional,
        sql,
        inverse: class.inverse,
        rename,
        table_rename: class.table_rename,
        fill,
        retyped: class.retyped,
        owner_of: class.owner_of,
        ignores,
    }
}

/// A statement's [`Class`]: classified when it parsed, unparseable with its parse errors
/// otherwise.
fn classify_statement(
    stmt: &ast::Stmt,
    w: &[SmolStr],
    stmt_errors: &[String],
    schema: &mut Schema,
    index: &LineIndex,
    report: bool,
) -> Class {
    if stmt_errors.is_empty() {
        let mut c = match stmt {
            ast::Stmt::Do(d) => classify_do(d, schema, index, report),
            _ => classify(stmt, w, schema, true),
        };
        c.transactional = transactional_with(stmt, || w);
        return c;
    }
    let mut c = Class::new(
        StmtPhase::Unparseable,
        Inverse::Unknown("the statement could not be read".into()),
    );
    let more = match stmt_errors.len() {
        1 => String::new(),
        n => format!(" (and {} more parse errors)", n - 1),
    };
    c.finding(
        RuleId::UnparseableStatement,
        format!(
            "the SQL parser cannot read this statement: {}{more}",
            stmt_errors[0]
        ),
        "fix the syntax (check it with `psql`), or split the statement; cutover will not guess what \
         an unreadable statement does",
    );
    c
}

/// What cutover cannot see into takes the file's declared phase, and needs one.
fn take_declared_phase(class: &mut Class, declared: Option<Phase>) {
    if (class.needs_declaration || class.declarable)
        && let Some(d) = declared
    {
        class.phase = match d {
            Phase::Contract => StmtPhase::Contract,
            _ => StmtPhase::Expand,
        };
        class.base = class.phase;
        class.findings.retain(|(r, ..)| {
            !matches!(
                *r,
                RuleId::UnclassifiedStatement
                    | RuleId::UnreadableDoBlock
                    | RuleId::ConstraintRejectsOldWrites
                    | RuleId::SequenceMoved
            )
        });
    }
}

/// Whether a DROP and a CREATE of one name are of the same object: a function or procedure is
/// known by its argument types too (PostgreSQL manual, CREATE FUNCTION: overloading), so one
/// created with other arguments is a new overload, and the old callers' one is gone. Unknown
/// (no argument list written) counts as the same.
fn same_signature(kind: &str, drop: &str, create: &str) -> bool {
    if !matches!(kind, "function" | "procedure") {
        return true;
    }
    match (arg_types(drop), arg_types(create)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The input argument types of the first argument list in `sql`, as
/// [`super::function::canonical`] writes them, names, modes, defaults and OUT arguments left
/// out; `None` without one.
fn arg_types(sql: &str) -> Option<Vec<String>> {
    let open = sql.find('(')?;
    let mut depth = 0usize;
    let mut args = vec![String::new()];
    for ch in sql[open + 1..].chars() {
        match ch {
            '(' => depth += 1,
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(String::new());
                continue;
            }
            _ => {}
        }
        args.last_mut()?.push(ch);
    }
    const TYPE_START: &[&str] = &[
        "double",
        "character",
        "char",
        "bit",
        "timestamp",
        "time",
        "national",
        "varchar",
        "interval",
    ];
    let mut out = Vec::new();
    for a in args {
        let lower = a.to_ascii_lowercase();
        let mut w: Vec<&str> = lower
            .split(" default ")
            .next()
            .unwrap_or("")
            .split('=')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        match w.first().copied() {
            Some("out") => continue,
            Some("in" | "inout" | "variadic") => {
                w.remove(0);
            }
            _ => {}
        }
        if w.len() >= 2 && !TYPE_START.contains(&w[0]) {
            w.remove(0);
        }
        if !w.is_empty() {
            // As signatures compare types: `int8` is `bigint`, `pg_catalog.text` is `text`.
            out.push(super::function::canonical(&w.join(" ")));
        }
    }
    Some(out)
}

/// `SET [LOCAL | SESSION] search_path ...` or pg_dump's `SELECT set_config('search_path', ...)`.
fn changes_search_path(w: &[SmolStr], sql: &str) -> bool {
    let set = w.first().is_some_and(|x| x == "set") && w.iter().take(3).any(|x| x == "search_path");
    set || (w.iter().any(|x| x == "set_config")
        && sql.to_ascii_lowercase().contains("'search_path'"))
}

/// A statement's effect on the transaction it runs in.
fn tx_control(stmt: &ast::Stmt, w: &[SmolStr]) -> TxControl {
    match stmt {
        ast::Stmt::Begin(_) => TxControl::Begin,
        ast::Stmt::Commit(_) if !w.iter().any(|x| x == "prepared") => TxControl::Commit,
        ast::Stmt::Commit(_) => TxControl::Other,
        ast::Stmt::Rollback(_) if w.iter().any(|x| x == "to") => TxControl::None,
        ast::Stmt::Rollback(_) => TxControl::Other,
        _ if has_seq(w, &["prepare", "transaction"]) => TxControl::Other,
        _ => TxControl::None,
    }
}

/// The file's phase from its statements and its declaration (with the findings on a
/// declaration that is unknown or contradicted), and the mixed-phase and placeholder findings.
fn file_phase(
    fc: &FileCheck,
    declared: &Option<(Result<Phase, String>, u32)>,
    findings: &mut Vec<Finding>,
) -> Phase {
    let statements = &fc.statements;
    let mut phase = migration_phase(statements);
    if let Some((decl, line)) = declared {
        phase = declared_file_phase(fc, decl, *line, phase, findings);
    }
    if phase != Phase::Unknown
        && declared.is_none()
        && let Some(f) = mixed_phase(fc)
    {
        findings.push(f);
    }
    if statements.iter().all(|s| s.phase == StmtPhase::Neutral) {
        findings.push(
            fc.make(
                "empty-migration",
                1,
                "a placeholder migration: it changes no schema (empty, comments only, or only \
                 SELECT/SET); it is applied and recorded in refinery's history like any other"
                    .into(),
                "nothing to do; refinery, diesel and pop accept placeholders too".into(),
            ),
        );
    }
    phase
}

/// The file's phase once its declaration `decl` (on `line`) is taken into account: `phase`
/// (the statements' own) unless the declaration is known, uncontradicted and the statements'
/// phase known. Pushes the finding on an unknown or contradicted declaration.
fn declared_file_phase(
    fc: &FileCheck,
    decl: &Result<Phase, String>,
    line: u32,
    phase: Phase,
    findings: &mut Vec<Finding>,
) -> Phase {
    let d = match decl {
        Err(value) => {
            findings.push(fc.make(
                "phase-declaration-mismatch",
                line,
                format!("unknown phase `{value}` in `-- cutover:phase=`"),
                "declare `expand` or `contract`".into(),
            ));
            return phase;
        }
        Ok(d) => *d,
    };
    if let Some(s) = contradiction(&fc.statements, d, findings) {
        findings.push(
            fc.make(
                "phase-declaration-mismatch",
                line,
                format!(
                    "the file declares `{}` but line {} is {}: `{}`",
                    d.as_str(),
                    s.line,
                    phase_word(s.phase),
                    s.summary
                ),
                "remove the declaration, or move that statement into a migration of the \
                 right phase"
                    .into(),
            ),
        );
        phase
    } else if phase != Phase::Unknown {
        // Nothing contradicts an expand declaration: what is not expand is only
        // unclassified, and the declaration is what its finding asks for.
        if d == Phase::Expand {
            Phase::Expand
        } else {
            phase.max(d)
        }
    } else {
        phase
    }
}

/// The first statement that contradicts the declared phase `d`: for `expand`, a contract or
/// breaking statement without an unclassified-statement finding (in `findings`); otherwise a
/// breaking statement that is not a rewritten rename.
fn contradiction<'s>(
    statements: &'s [StatementAnalysis],
    d: Phase,
    findings: &[Finding],
) -> Option<&'s StatementAnalysis> {
    let unclassified: BTreeSet<u32> = findings
        .iter()
        .filter(|f| f.rule == "unclassified-statement")
        .map(|f| f.line)
        .collect();
    statements.iter().find(|s| match d {
        Phase::Expand => {
            matches!(s.phase, StmtPhase::Contract | StmtPhase::Breaking)
                && !unclassified.contains(&s.line)
        }
        _ => s.phase == StmtPhase::Breaking && s.rename.is_none(),
    })
}

/// The mixed-phase finding of an undeclared file whose phase is known, if it mixes expand (or
/// breaking) and contract statements in a way the plan does not split.
fn mixed_phase(fc: &FileCheck) -> Option<Finding> {
    let statements = &fc.statements;
    // A file holding a rewritten rename is split by the plan: its expand statements run
    // first, its contract ones after the old version is retired. That keeps the file's
    // order unless a contract statement comes before an expand one (which may depend on
    // it: DROP COLUMN c, then ADD COLUMN IF NOT EXISTS c).
    let split = statements.iter().any(|s| s.rename.is_some());
    // An index on a view the file created (a materialized view's unique index) runs with the
    // view, in the file's phase, unless the plan splits the file.
    let follows = |s: &StatementAnalysis| !split && fc.view_indexes.contains(&s.line);
    // A breaking statement (its finding ignored, or not) runs as written with the rest of a
    // file that is not contract, before traffic moves: a contract statement beside it would
    // run there too. Only a rewritten rename is split by the plan.
    let expand = statements.iter().find(|s| {
        (s.phase == StmtPhase::Expand && !follows(s))
            || (s.phase == StmtPhase::Breaking && s.rename.is_none())
    });
    let contract = statements.iter().find(|s| s.phase == StmtPhase::Contract);
    let reordered = contract.is_some_and(|c| {
        statements
            .iter()
            .any(|s| s.line > c.line && s.rename.is_none() && s.phase == StmtPhase::Expand)
    });
    let (Some(e), Some(c)) = (expand, contract) else {
        return None;
    };
    if split && !reordered {
        return None;
    }
    let what = if e.phase == StmtPhase::Expand {
        "expand"
    } else {
        "breaking (run before traffic moves)"
    };
    Some(
        fc.make(
            "mixed-phase-migration",
            c.line,
            format!(
                "this migration mixes {what} (line {}: `{}`) and contract (line {}: `{}`) \
                 statements",
                e.line, e.summary, c.line, c.summary
            ),
            "split it: expand statements run before traffic moves, contract statements \
             after the old version is retired"
                .into(),
        ),
    )
}

/// Findings in line order, one per unreadable line however many errors the parser had on it;
/// one unparseable statement per line.
fn tidy(findings: &mut Vec<Finding>, statements: &mut Vec<StatementAnalysis>) {
    findings.sort_by(|a, b| (a.line, &a.rule).cmp(&(b.line, &b.rule)));
    findings.dedup_by(|later, first| {
        let same = first.line == later.line && first.rule == later.rule;
        if same && first.rule == "unparseable-statement" && first.message != later.message {
            let extra = later
                .message
                .split(": ")
                .skip(1)
                .collect::<Vec<_>>()
                .join(": ");
            first.message = format!("{}; {extra}", first.message);
        }
        same && (first.rule == "unparseable-statement" || first.message == later.message)
    });
    statements.dedup_by(|later, first| {
        later.line == first.line
            && later.phase == StmtPhase::Unparseable
            && first.phase == StmtPhase::Unparseable
    });
}

pub(super) fn phase_word(p: StmtPhase) -> &'static str {
    match p {
        StmtPhase::Neutral => "neutral",
        StmtPhase::Expand => "an expand statement",
        StmtPhase::Contract => "a contract statement",
        StmtPhase::Breaking => "a breaking statement",
        StmtPhase::Unparseable => "unparseable",
    }
}

pub(super) fn migration_phase(statements: &[StatementAnalysis]) -> Phase {
    let mut phase = Phase::Expand;
    for s in statements {
        let p = match s.phase {
            StmtPhase::Neutral | StmtPhase::Expand => Phase::Expand,
            StmtPhase::Contract => Phase::Contract,
            StmtPhase::Breaking => Phase::Breaking,
            StmtPhase::Unparseable => return Phase::Unknown,
        };
        phase = phase.max(p);
    }
    phase
}

/// A statement's effect on the transaction it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxControl {
    /// None (SAVEPOINT and ROLLBACK TO SAVEPOINT included: they stay inside it).
    None,
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK, ABORT, PREPARE TRANSACTION, COMMIT PREPARED: never part of a migration.
    Other,
}

/// Kinds whose replacement changes what the running version sees (a definition it uses).
pub(super) fn replace_is_visible(kind: &str) -> bool {
    matches!(
        kind,
        "view" | "materialized view" | "function" | "procedure" | "trigger" | "rule" | "policy"
    )
}
