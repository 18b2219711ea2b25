//! Analyzing one file: [`analyze_file`] classifies each statement (with its ignore comments and
//! parse errors), then runs the checks that look at the file as a whole: transaction control,
//! enum values used in the transaction that adds them, drop-and-create replaces, errors outside
//! any statement, squawk's lock-hazard rules, statements that cannot share a transaction, unused
//! ignores and the file's phase.

use super::*;

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
    let text = file.text.as_str();
    let index = LineIndex::new(text);
    let root = parse.syntax_node();

    // Comments, for ignores and the phase declaration.
    // One pass over the tokens: comments (for ignores and the phase declaration) and where each
    // non-trivia token starts (for placing squawk's violations), both in file order. Everything
    // below looks them up by binary search, so a file is analyzed in time linear in its size.
    let mut comments: Vec<(usize, String)> = Vec::new();
    let mut token_starts: Vec<usize> = Vec::new();
    each_token(&root.green(), |kind, at, text| {
        if kind == SyntaxKind::COMMENT {
            comments.push((at, text.to_string()));
        } else if !kind.is_trivia() {
            token_starts.push(at);
        }
    });
    // Parse errors in offset order (ties in the parser's order); `taken` marks those a
    // statement claimed.
    let mut errors_by_offset: Vec<usize> = (0..errors.len()).collect();
    errors_by_offset.sort_by_key(|&i| errors[i].0);
    let mut taken = vec![false; errors.len()];

    let mut findings: Vec<Finding> = Vec::new();
    let make = |rule_id: &str, line: u32, message: String, hint: String| Finding {
        rule: rule_id.to_string(),
        severity: rule(rule_id).map_or(Severity::Warning, |r| r.severity),
        file: file.display_path.clone(),
        line,
        message,
        hint,
        blocking: false,
    };
    let push =
        |findings: &mut Vec<Finding>, rule_id: &str, line: u32, message: String, hint: String| {
            findings.push(make(rule_id, line, message, hint));
        };

    // The phase declaration, read first: statements cutover cannot see into take it.
    let first_line = parse
        .tree()
        .stmts()
        .next()
        .and_then(|s| first_token_offset(s.syntax()))
        .map(|o| index.line(o));
    let declared = declared_phase(&comments, first_line, &index);
    let declared_ok: Option<Phase> = declared.as_ref().and_then(|(d, _)| d.clone().ok());

    let mut statements = Vec::new();
    // Where each statement is, for mapping squawk's violations to it.
    struct Span {
        start: usize,
        end: usize,
        /// The table it works on was created by this release (or file): nobody waits on its locks.
        table_new: bool,
        /// Rule ids its ignore comments name, with the comment's line.
        ignores: BTreeMap<String, u32>,
    }
    /// What the file-level checks need of each statement.
    struct Extra {
        drops: Vec<(&'static str, String)>,
        creates: Vec<(&'static str, String)>,
        base: StmtPhase,
        tx: TxControl,
        /// Its string literals, as written (`'x'`).
        literals: Vec<String>,
        /// `ALTER TYPE t ADD VALUE 'v'`: the type's key and the literal.
        enum_add: Option<(String, String)>,
    }
    let mut spans: Vec<Span> = Vec::new();
    let mut extras: Vec<Extra> = Vec::new();
    // Findings before ignore comments apply, with the statement (span) they belong to.
    let mut pending: Vec<(Option<usize>, Finding)> = Vec::new();
    let source_lines: Vec<&str> = text.split('\n').collect();
    let mut attached_comments: BTreeSet<usize> = BTreeSet::new();
    let mut prev_end = 0usize;
    for stmt in parse.tree().stmts() {
        let node = stmt.syntax();
        let range = node.text_range();
        let (start, end) = (usize::from(range.start()), usize::from(range.end()));
        // One walk over the statement's tokens: where it starts, its words, its literals.
        let green = node.green();
        let (first, w, literal_tokens) = {
            let mut first = None;
            let mut w = Vec::new();
            let mut literal_tokens = Vec::new();
            each_token(&green, |kind, at, text| {
                if kind.is_trivia() {
                    return;
                }
                first.get_or_insert(at);
                w.push(word(text));
                if is_literal(kind) {
                    literal_tokens.push((kind, text));
                }
            });
            (first.map_or(start, |at| start + at), w, literal_tokens)
        };
        let line = index.line(first);
        let sql = text[first..end].trim().to_string();
        // An ignore comment belongs to the statement on its own line (written after it) or to
        // the next statement (written on the lines above it), never to one further on.
        let prev_line = (prev_end > 0).then(|| index.line(prev_end.saturating_sub(1)));
        let end_line = index.line(end.saturating_sub(1));
        // Written above it, the comment must be in the block of comment lines right above the
        // statement: a blank line or other text between them ends its reach.
        let attached = |at: usize| {
            let from = index.line(at) as usize;
            (from + 1..line as usize).all(|l| {
                let t = source_lines.get(l - 1).map_or("", |t| t.trim());
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
        let trailing_from = comments.partition_point(|(at, _)| *at < end);
        let trailing: Vec<(usize, String)> = comments[trailing_from..]
            .iter()
            .take_while(|(at, _)| index.line(*at) == end_line)
            .cloned()
            .collect();
        attached_comments.extend(own.iter().chain(&trailing).map(|(at, _)| *at));
        let mut ignores = ignores_between(&own, prev_end, first, &index);
        ignores.extend(ignores_between(&trailing, end, usize::MAX, &index));
        // An error in the gap before a statement (text the parser skipped, like a misspelled
        // keyword) belongs to it: whatever it parsed after the garbage is not what was meant.
        let gap_start = spans.last().map_or(0, |s| s.end);
        let owned_to = end.max(start + 1);
        let from = errors_by_offset.partition_point(|&i| errors[i].0 < gap_start);
        let to = errors_by_offset.partition_point(|&i| errors[i].0 < owned_to);
        let mut owned: Vec<usize> = errors_by_offset[from..to.max(from)]
            .iter()
            .copied()
            .filter(|&i| !taken[i])
            .collect();
        // In the parser's order, as it reported them.
        owned.sort_unstable();
        let stmt_errors: Vec<String> = owned
            .iter()
            .map(|&i| {
                taken[i] = true;
                errors[i].1.clone()
            })
            .collect();
        let w: &[SmolStr] = &w;
        let mut class = if stmt_errors.is_empty() {
            let mut c = match &stmt {
                ast::Stmt::Do(d) => classify_do(d, schema, &index, report),
                _ => classify(&stmt, w, schema, true),
            };
            c.transactional = transactional_with(&stmt, || w);
            c
        } else {
            let mut c = Class::new(
                StmtPhase::Unparseable,
                Inverse::Unknown("the statement could not be read".into()),
            );
            let more = match stmt_errors.len() {
                1 => String::new(),
                n => format!(" (and {} more parse errors)", n - 1),
            };
            c.finding(RuleId::UnparseableStatement, format!("the SQL parser cannot read this statement: {}{more}", stmt_errors[0]), "fix the syntax (check it with `psql`), or split the statement; cutover will not guess what an unreadable statement does");
            c
        };
        // What cutover cannot see into takes the file's declared phase, and needs one.
        if (class.needs_declaration || class.declarable)
            && let Some(d) = declared_ok
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
                )
            });
        }
        let span = spans.len();
        for (rule_id, message, hint, at) in &class.findings {
            pending.push((
                Some(span),
                make(
                    rule_id.as_str(),
                    at.unwrap_or(line),
                    message.clone(),
                    hint.clone(),
                ),
            ));
        }
        let tx = match &stmt {
            ast::Stmt::Begin(_) => TxControl::Begin,
            ast::Stmt::Commit(_) if !w.iter().any(|x| x == "prepared") => TxControl::Commit,
            ast::Stmt::Commit(_) => TxControl::Other,
            ast::Stmt::Rollback(_) if w.iter().any(|x| x == "to") => TxControl::None,
            ast::Stmt::Rollback(_) => TxControl::Other,
            _ if has_seq(w, &["prepare", "transaction"]) => TxControl::Other,
            _ => TxControl::None,
        };
        let literals: Vec<String> = if matches!(stmt, ast::Stmt::Do(_)) {
            std::mem::take(&mut class.literals)
        } else {
            literal_values(literal_tokens)
        };
        let enum_add = match &stmt {
            ast::Stmt::AlterType(_) if has_seq(w, &["add", "value"]) => {
                // ADD VALUE 'v' [BEFORE | AFTER 'w']: the first literal is the new value.
                name_after(node, "type", &[])
                    .and_then(|ty| Some((normalize(&ty), literals.first()?.clone())))
            }
            _ => None,
        };
        prev_end = end;
        spans.push(Span {
            start,
            end,
            table_new: class.table.as_deref().is_some_and(|t| schema.is_new(t)),
            ignores,
        });
        extras.push(Extra {
            drops: std::mem::take(&mut class.drops),
            creates: std::mem::take(&mut class.creates),
            base: class.base,
            tx,
            literals,
            enum_add,
        });
        statements.push(StatementAnalysis {
            line,
            phase: class.phase,
            summary: summarize(&sql),
            transactional: class.transactional,
            sql,
            inverse: class.inverse,
            rename: class.rename,
            owner_of: class.owner_of,
            ignores: spans
                .last()
                .map(|s| s.ignores.keys().cloned().collect())
                .unwrap_or_default(),
        });
    }
    // The tables a file of this release created stay new for the next files; elsewhere (an
    // applied file, `lint`) they are live from now on.
    schema.end_file(report && opts.release);

    // Transaction control. A file wrapped in its own BEGIN ... COMMIT (golang-migrate's and
    // pop's habit) is one transaction as cutover runs it anyway: the wrapper is left out, so
    // the file and its history row commit together. Any other BEGIN, COMMIT or ROLLBACK would
    // commit or abort part of the file: the run could not be recorded or undone as one.
    let control: Vec<usize> = (0..extras.len())
        .filter(|&i| extras[i].tx != TxControl::None)
        .collect();
    let wrapper = match control.as_slice() {
        [b, c] => {
            extras[*b].tx == TxControl::Begin
                && extras[*c].tx == TxControl::Commit
                && *c == statements.len() - 1
                && statements[..*b]
                    .iter()
                    .all(|s| s.phase == StmtPhase::Neutral)
        }
        _ => false,
    };
    let mut wrapper_spans: Vec<(usize, usize)> = Vec::new();
    if wrapper {
        for &i in control.iter().rev() {
            wrapper_spans.push((spans[i].start, spans[i].end));
            pending.push((
                None,
                make("transaction-wrapper", statements[i].line, format!("`{}` is left out: cutover runs the file in one transaction of its own and records it in refinery's history in that same transaction", statements[i].summary), "nothing to do; the file runs exactly once, all or nothing".into()),
            ));
            statements.remove(i);
            spans.remove(i);
            extras.remove(i);
            for (s, _) in pending.iter_mut() {
                *s = match *s {
                    Some(x) if x == i => None,
                    Some(x) if x > i => Some(x - 1),
                    other => other,
                };
            }
        }
    } else {
        for &i in &control {
            pending.push((Some(i), make("transaction-control-in-migration", statements[i].line, format!("`{}` ends or opens a transaction inside the migration: what ran before it would commit (or roll back) on its own, so a failure after it leaves the file half applied while the run reports it undone", statements[i].summary), "remove it: cutover runs each file in one transaction; split the file into several migrations where parts must commit separately".into())));
        }
    }
    let transactional = statements.iter().all(|s| s.transactional);
    // Renames `plan` rewrites: their ignore comments may name the rewrite's findings.
    let rename_spans: BTreeSet<usize> = (0..statements.len())
        .filter(|&i| statements[i].rename.is_some())
        .collect();

    // An enum value added in a transaction cannot be used before it commits (PostgreSQL
    // manual, ALTER TYPE, Notes: "unsafe use of new value"), unless the type itself was
    // created in the same transaction.
    if transactional {
        let mut added: Vec<(String, String, u32)> = Vec::new();
        let mut created_types: BTreeSet<String> = BTreeSet::new();
        for (i, e) in extras.iter().enumerate() {
            for (v, literal, at) in &added {
                if e.literals.contains(literal)
                    && e.enum_add.as_ref().is_none_or(|(_, l)| l != literal)
                {
                    pending.push((Some(i), make("enum-value-in-same-transaction", statements[i].line, format!("the enum value '{literal}' added to `{v}` on line {at} is used here, in the same transaction: PostgreSQL refuses it (unsafe use of new value) until the transaction that added it commits"), "move the `ALTER TYPE ... ADD VALUE` into a migration of its own, before this one (cutover commits each migration separately)".into())));
                    break;
                }
            }
            if let Some((ty, literal)) = &e.enum_add
                && !created_types.contains(ty)
            {
                added.push((ty.clone(), literal.clone(), statements[i].line));
            }
            created_types.extend(
                e.creates
                    .iter()
                    .filter(|(k, _)| *k == "type")
                    .map(|(_, n)| n.clone()),
            );
        }
    }

    // One transaction is one unit: dropping an object and creating it again under the same
    // name is a replace, which the running version sees as one change.
    if transactional {
        // Where each object is created, in statement order.
        let mut created_at: std::collections::HashMap<&(&'static str, String), Vec<usize>> =
            std::collections::HashMap::new();
        for (j, e) in extras.iter().enumerate() {
            for c in &e.creates {
                created_at.entry(c).or_default().push(j);
            }
        }
        for i in 0..extras.len() {
            if extras[i].drops.is_empty() {
                continue;
            }
            // Each dropped object must be created again later in the file; the replace takes
            // the phase of what re-creates it (a unique index in place of a plain one is judged
            // as the unique index).
            let recreating: Option<Vec<usize>> = extras[i]
                .drops
                .iter()
                .map(|d| {
                    created_at
                        .get(d)
                        .and_then(|at| at.iter().copied().find(|&j| j > i))
                })
                .collect();
            let Some(recreating) = recreating else {
                continue;
            };
            let net = recreating
                .iter()
                .map(|&j| statements[j].phase)
                .fold(StmtPhase::Expand, StmtPhase::max);
            statements[i].phase = extras[i].base.max(net);
            for (kind, name) in extras[i]
                .drops
                .iter()
                .filter(|(k, _)| replace_is_visible(k))
            {
                pending.push((Some(i), make("replaces-object", statements[i].line, format!("this migration drops and re-creates the {kind} `{name}` in one transaction: the running version sees the new definition from the moment it commits"), "make sure the old version works with the new definition (a view that only gains columns does); otherwise create it under a new name (expand) and drop the old one in a contract migration".into())));
            }
        }
    }
    // Errors outside any statement: text the parser did not even start a statement for. Each
    // line gets one unparseable statement, placed after the statements that start on or before
    // its line, merged in one pass.
    let mut unparseable_lines: BTreeSet<u32> = statements
        .iter()
        .filter(|s| s.phase == StmtPhase::Unparseable)
        .map(|s| s.line)
        .collect();
    let mut orphans: Vec<StatementAnalysis> = Vec::new();
    for (i, (at, message)) in errors.iter().enumerate() {
        if taken[i] {
            continue;
        }
        let line = index.line(*at);
        if !unparseable_lines.insert(line) {
            continue;
        }
        pending.push((None, make("unparseable-statement", line, format!("the SQL parser cannot read this statement: {message}"), "fix the syntax (check it with `psql`); cutover will not guess what an unreadable statement does".into())));
        let rest = text[*at..].lines().next().unwrap_or("").trim().to_string();
        orphans.push(StatementAnalysis {
            line,
            phase: StmtPhase::Unparseable,
            summary: summarize(&rest),
            transactional: true,
            sql: rest,
            inverse: Inverse::Unknown("the statement could not be read".into()),
            rename: None,
            owner_of: None,
            ignores: BTreeSet::new(),
        });
    }
    if !orphans.is_empty() {
        orphans.sort_by_key(|s| s.line);
        let mut merged = Vec::with_capacity(statements.len() + orphans.len());
        let mut orphans = orphans.into_iter().peekable();
        for s in statements {
            while let Some(o) = orphans.next_if(|o| o.line < s.line) {
                merged.push(o);
            }
            merged.push(s);
        }
        merged.extend(orphans);
        statements = merged;
    }

    // squawk's lock-hazard rules.
    let violations = violations();
    if report {
        for v in violations {
            let at = usize::from(v.text_range.start());
            let id = v.code.to_string();
            if wrapper_spans.iter().any(|(s, e)| at >= *s && at < *e) {
                continue;
            }
            // Statements are in file order and do not overlap.
            let span = Some(spans.partition_point(|s| s.end <= at))
                .filter(|&i| spans.get(i).is_some_and(|s| s.start <= at));
            if let Some(s) = span.map(|i| &spans[i])
                && SQUAWK_LOCK_RULES.contains(&id.as_str())
                && s.table_new
            {
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
            let hint = v
                .help
                .clone()
                .unwrap_or_else(|| rule(&id).map_or(String::new(), |r| r.summary.to_string()));
            pending.push((
                span,
                make(
                    &id,
                    index.line(first_offset_at(&token_starts, at)),
                    v.message.clone(),
                    hint,
                ),
            ));
        }
    }

    // A statement that cannot run in a transaction must be alone (SET/RESET aside).
    if !transactional {
        let others = statements
            .iter()
            .filter(|s| s.transactional && s.phase != StmtPhase::Neutral)
            .count();
        if others > 0 {
            for s in statements.iter().filter(|s| !s.transactional) {
                pending.push((None, make("concurrently-in-transaction", s.line, format!("`{}` cannot run inside a transaction, but this migration has {others} other statement(s) that would share its run", s.summary), "move it into a migration file of its own; cutover runs such a file statement by statement outside a transaction".into())));
            }
        }
    }

    // Ignore comments: each silences the rules it names on its own statement, and one that
    // silences nothing is reported (a typo, or a rule that no longer fires).
    let mut used: BTreeSet<(usize, String)> = BTreeSet::new();
    for (span, f) in pending {
        if let Some(i) = span
            && f.rule != "unparseable-statement"
            && spans[i].ignores.contains_key(&f.rule)
        {
            used.insert((i, f.rule));
            continue;
        }
        findings.push(f);
    }
    if report {
        for (at, comment) in &comments {
            if comment.contains("cutover:ignore") && !attached_comments.contains(at) {
                push(&mut findings, "unused-ignore", index.line(*at), "this ignore comment silences nothing: it is neither on a statement's line nor in the comment lines right above one".into(), "move it onto the line of the statement it is for, or right above it (no blank line between)".into());
            }
        }
        for (i, s) in spans.iter().enumerate() {
            for (id, at) in &s.ignores {
                if used.contains(&(i, id.clone()))
                    || (rename_spans.contains(&i) && PLAN_IGNORABLE.contains(&id.as_str()))
                {
                    continue;
                }
                let why = if id == "unparseable-statement" {
                    "an unreadable statement cannot be ignored".to_string()
                } else if rule(id).is_none() {
                    format!("there is no rule `{id}` (`cutover lint --list-rules` lists them)")
                } else {
                    format!("`{id}` reports nothing on this statement")
                };
                push(&mut findings, "unused-ignore", *at, format!("this ignore comment silences nothing: {why}"), "remove it, or fix the rule id; an ignore applies to the statement on its own line or on the next line".into());
            }
        }
    }

    let mut phase = migration_phase(&statements);
    if let Some((decl, line)) = &declared {
        let line = *line;
        match decl {
            Err(value) => push(
                &mut findings,
                "phase-declaration-mismatch",
                line,
                format!("unknown phase `{value}` in `-- cutover:phase=`"),
                "declare `expand` or `contract`".into(),
            ),
            Ok(d) => {
                let d = *d;
                let unclassified: BTreeSet<u32> = findings
                    .iter()
                    .filter(|f| f.rule == "unclassified-statement")
                    .map(|f| f.line)
                    .collect();
                let contradicted: Vec<&StatementAnalysis> = statements
                    .iter()
                    .filter(|s| match d {
                        Phase::Expand => {
                            matches!(s.phase, StmtPhase::Contract | StmtPhase::Breaking)
                                && !unclassified.contains(&s.line)
                        }
                        _ => s.phase == StmtPhase::Breaking && s.rename.is_none(),
                    })
                    .collect();
                if let Some(s) = contradicted.first() {
                    push(&mut findings, "phase-declaration-mismatch", line, format!("the file declares `{}` but line {} is {}: `{}`", d.as_str(), s.line, phase_word(s.phase), s.summary), "remove the declaration, or move that statement into a migration of the right phase".into());
                } else if phase != Phase::Unknown {
                    // Nothing contradicts an expand declaration: what is not expand is only
                    // unclassified, and the declaration is what its finding asks for.
                    phase = if d == Phase::Expand {
                        Phase::Expand
                    } else {
                        phase.max(d)
                    };
                }
            }
        }
    }
    if phase == Phase::Expand || phase == Phase::Contract {
        let expand = statements.iter().find(|s| s.phase == StmtPhase::Expand);
        let contract = statements.iter().find(|s| s.phase == StmtPhase::Contract);
        if let (Some(e), Some(c)) = (expand, contract)
            && declared.is_none()
        {
            push(&mut findings, "mixed-phase-migration", c.line, format!("this migration mixes expand (line {}: `{}`) and contract (line {}: `{}`) statements", e.line, e.summary, c.line, c.summary), "split it: expand statements run before traffic moves, contract statements after the old version is retired".into());
        }
    }
    if statements.iter().all(|s| s.phase == StmtPhase::Neutral) {
        push(&mut findings, "empty-migration", 1, "a placeholder migration: it changes no schema (empty, comments only, or only SELECT/SET); it is applied and recorded in refinery's history like any other".into(), "nothing to do; refinery, diesel and pop accept placeholders too".into());
    }

    findings.sort_by(|a, b| (a.line, &a.rule).cmp(&(b.line, &b.rule)));
    // One unreadable line is one finding, however many errors the parser had on it.
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
