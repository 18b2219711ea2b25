//! Classification by what the old version can still do (issue 10): constraints judged by the
//! old version's writes, DO blocks read, one transaction as one unit, what one transaction
//! cannot hold, and ignore comments that silence nothing. Each case is a release against a
//! baseline where `users`, `orders` and a `mood` enum already serve the old version.

use cutover_planner::analysis::{Analysis, AnalyzeOptions, Phase, StmtPhase, analyze};
use cutover_planner::migrations::MigrationFile;

mod common;

const BASE: &str = "\
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text, feeling mood);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total numeric NOT NULL);
CREATE INDEX orders_user_idx ON orders (user_id);
CREATE VIEW active_users AS SELECT id, name FROM users;
";

/// Analyzes `files` (name, SQL) as one release after the baseline.
fn release(files: &[(&str, &str)]) -> Analysis {
    common::release(BASE, files)
}

/// One file's phase and its findings' rule ids.
fn one(sql: &str) -> (Phase, Vec<String>) {
    common::one(BASE, sql)
}

/// Checks each case (SQL, phase, rules present, rules absent) as a one-file release.
fn check(cases: &[(&str, Phase, &[&str], &[&str])]) {
    common::check(BASE, cases)
}

#[test]
fn constraints_are_judged_by_the_old_versions_writes() {
    use Phase::*;
    check(&[
        // Rejects every insert of the old version, which leaves the new column NULL.
        (
            "ALTER TABLE users ADD COLUMN org_id bigint;\nALTER TABLE users ADD CONSTRAINT org_nn \
             CHECK (org_id IS NOT NULL) NOT VALID;",
            Breaking,
            &["breaking-add-constraint"],
            &[],
        ),
        (
            "ALTER TABLE users ADD COLUMN org_id bigint CHECK (org_id IS NOT NULL);",
            Breaking,
            &["breaking-add-constraint"],
            &[],
        ),
        (
            "ALTER TABLE users ADD COLUMN org_id bigint CONSTRAINT org_set CHECK \
             (num_nonnulls(org_id) = 1);",
            Breaking,
            &["breaking-add-constraint"],
            &[],
        ),
        // A default the constraint accepts keeps the old version's inserts passing.
        (
            "ALTER TABLE users ADD COLUMN org_id bigint NOT NULL DEFAULT 0;",
            Expand,
            &[],
            &["breaking-add-constraint"],
        ),
        (
            "ALTER TABLE users ADD COLUMN tier int DEFAULT 1 CHECK (tier IS NOT NULL);",
            Expand,
            &[],
            &["breaking-add-constraint", "constraint-rejects-old-writes"],
        ),
        // NULL passes a plain CHECK, a foreign key and a unique constraint: fine for a new column.
        (
            "ALTER TABLE users ADD COLUMN age int CHECK (age > 0);",
            Expand,
            &[],
            &["constraint-rejects-old-writes"],
        ),
        (
            "ALTER TABLE users ADD COLUMN manager_id bigint REFERENCES users (id);",
            Expand,
            &[],
            &["constraint-rejects-old-writes"],
        ),
        (
            "ALTER TABLE users ADD COLUMN handle text;\nALTER TABLE users ADD CONSTRAINT \
             users_handle_key UNIQUE (handle);",
            Expand,
            &[],
            &["constraint-rejects-old-writes"],
        ),
        (
            "ALTER TABLE orders ADD COLUMN coupon text;\nCREATE UNIQUE INDEX CONCURRENTLY \
             orders_coupon_key ON orders (coupon);",
            Expand,
            &[],
            &["constraint-rejects-old-writes"],
        ),
        // On columns the old version writes: may reject them, so after its retirement.
        (
            "ALTER TABLE users ADD CONSTRAINT email_len CHECK (length(email) < 300) NOT VALID;",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES \
             users (id) NOT VALID;",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (lower(email));",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;",
            Contract,
            &["constraint-rejects-old-writes"],
            &["breaking-add-constraint"],
        ),
        (
            "ALTER DOMAIN positive ADD CONSTRAINT pos CHECK (VALUE > 0) NOT VALID;",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        // A unique index that already enforces it: nothing new is rejected.
        (
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;",
            Expand,
            &[],
            &["constraint-rejects-old-writes"],
        ),
        // SET NOT NULL: breaking, and its recipe runs after the old version.
        (
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
            Breaking,
            &["breaking-set-not-null"],
            &[],
        ),
        // DROP NOT NULL: the new version may write NULLs the old one reads.
        (
            "ALTER TABLE users ALTER COLUMN name DROP NOT NULL;",
            Expand,
            &["ban-drop-not-null"],
            &[],
        ),
        (
            "CREATE TABLE notes (id bigint, body text NOT NULL);\nALTER TABLE notes ALTER COLUMN \
             body DROP NOT NULL;",
            Expand,
            &[],
            &["ban-drop-not-null"],
        ),
        // On a table the release creates nobody writes yet.
        (
            "CREATE TABLE notes (id bigint, body text);\nALTER TABLE notes ADD CONSTRAINT body_nn \
             CHECK (body IS NOT NULL);",
            Expand,
            &[],
            &["breaking-add-constraint", "constraint-rejects-old-writes"],
        ),
    ]);
    // The recipe the hint gives is the one that is safe.
    let a = release(&[(
        "V2__x.sql",
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
    )]);
    let hint = &a
        .findings
        .iter()
        .find(|f| f.rule == "breaking-set-not-null")
        .unwrap()
        .hint;
    assert!(
        hint.contains("contract") && hint.contains("NOT VALID alone does not make it safe"),
        "{hint}"
    );
}

#[test]
fn validating_a_deferred_constraint_runs_after_the_old_version_too() {
    let a = release(&[
        (
            "V2__fk.sql",
            "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES \
             users (id) NOT VALID;",
        ),
        (
            "V3__validate.sql",
            "ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;",
        ),
    ]);
    assert_eq!(a.migrations[0].phase, Phase::Contract);
    assert_eq!(a.migrations[1].phase, Phase::Contract, "{:?}", a.findings);
}

#[test]
fn do_blocks_are_classified_by_the_statements_inside() {
    use Phase::*;
    check(&[
        (
            "DO $$ BEGIN\n  CREATE TYPE status AS ENUM ('new', 'done');\nEXCEPTION\n  WHEN \
             duplicate_object THEN NULL;\nEND $$;",
            Expand,
            &[],
            &["unreadable-do-block", "unclassified-statement"],
        ),
        (
            "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE \
             table_name = 'users' AND column_name = 'nick') THEN\n    ALTER TABLE users ADD COLUMN \
             nick text;\n  END IF;\nEND\n$$;",
            Expand,
            &[],
            &["unreadable-do-block"],
        ),
        (
            "DO $$ BEGIN ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled boolean NULL; END $$;",
            Expand,
            &[],
            &[],
        ),
        (
            "DO $$ BEGIN IF true THEN ALTER TABLE users DROP COLUMN email; END IF; END $$;",
            Contract,
            &["data-loss"],
            &[],
        ),
        (
            "DO $$ BEGIN ALTER TABLE users RENAME COLUMN name TO full_name; END $$;",
            Breaking,
            &["breaking-do-block"],
            &["breaking-rename-column"],
        ),
        (
            "DO $$ BEGIN ALTER TABLE users ADD COLUMN org_id bigint NOT NULL; END $$;",
            Breaking,
            &["breaking-add-required-column"],
            &[],
        ),
        (
            "DO $$ BEGIN CREATE INDEX users_name_idx ON users (name); END $$;",
            Expand,
            &["require-concurrent-index-creation"],
            &[],
        ),
        (
            "DO $$ BEGIN RAISE NOTICE 'nothing to do'; END $$;",
            Expand,
            &[],
            &["unreadable-do-block"],
        ),
        (
            "DO $$ BEGIN CREATE INDEX CONCURRENTLY users_name_idx ON users (name); END $$;",
            Expand,
            &["concurrently-in-transaction"],
            &[],
        ),
        // What cutover cannot read stops until the file says its phase.
        (
            "DO $$ DECLARE r record; BEGIN FOR r IN SELECT id FROM users LOOP UPDATE orders SET \
             total = 0 WHERE user_id = r.id; END LOOP; END $$;",
            Contract,
            &["unreadable-do-block"],
            &[],
        ),
        (
            "DO $$ BEGIN EXECUTE 'ALTER TABLE users DROP COLUMN ' || 'email'; END $$;",
            Contract,
            &["unreadable-do-block"],
            &[],
        ),
        (
            "DO LANGUAGE plpython3u $$ plpy.execute('select 1') $$;",
            Contract,
            &["unreadable-do-block"],
            &[],
        ),
        (
            "-- cutover:phase=expand\nDO $$ BEGIN EXECUTE format('CREATE TABLE IF NOT EXISTS %I (id \
             bigint)', 'audit_2026'); END $$;",
            Expand,
            &[],
            &["unreadable-do-block"],
        ),
        (
            "-- cutover:phase=contract\nDO $$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM \
             users; END $$;",
            Contract,
            &[],
            &["unreadable-do-block"],
        ),
        // And a statement kind cutover does not know is no longer placed by default.
        (
            "CALL refresh_everything();",
            Contract,
            &["unclassified-statement"],
            &[],
        ),
        (
            "-- cutover:phase=expand\nCALL refresh_everything();",
            Expand,
            &[],
            &["unclassified-statement"],
        ),
    ]);
    let (_, findings) = {
        let a = release(&[(
            "V2__x.sql",
            "DO $$\nBEGIN\n  IF true THEN\n    ALTER TABLE users DROP COLUMN email;\n  END IF;\nEND \
             $$;",
        )]);
        (a.migrations[0].phase, a.findings)
    };
    let loss = findings.iter().find(|f| f.rule == "data-loss").unwrap();
    assert_eq!(
        loss.line, 4,
        "the finding points at the statement inside the block"
    );
}

#[test]
fn one_transaction_is_one_unit() {
    use Phase::*;
    check(&[
        (
            "DROP VIEW active_users;\nCREATE VIEW active_users AS SELECT id, name, email FROM users;",
            Expand,
            &["replaces-object"],
            &["mixed-phase-migration"],
        ),
        (
            "DROP INDEX orders_user_idx;\nCREATE INDEX orders_user_idx ON orders (user_id, id);",
            Expand,
            &["require-concurrent-index-creation"],
            &["mixed-phase-migration"],
        ),
        (
            "DROP FUNCTION IF EXISTS total_of(bigint);\nCREATE FUNCTION total_of(o bigint) RETURNS \
             numeric LANGUAGE sql AS $$ SELECT total FROM orders WHERE id = o $$;",
            Expand,
            &["replaces-object"],
            &[],
        ),
        (
            "ALTER TABLE orders DROP CONSTRAINT IF EXISTS total_positive, ADD CONSTRAINT \
             total_positive CHECK (total >= 0) NOT VALID;",
            Contract,
            &["constraint-rejects-old-writes"],
            &["mixed-phase-migration"],
        ),
        // Not a replace: the object is gone (or CASCADE takes more with it).
        (
            "DROP VIEW active_users;",
            Contract,
            &[],
            &["replaces-object"],
        ),
        // Created again without `name` and `email`: both statements belong after the old
        // version (which may read them) is retired, so the file is one contract migration.
        (
            "DROP VIEW active_users CASCADE;\nCREATE VIEW active_users AS SELECT id FROM users;",
            Contract,
            &["view-drops-columns"],
            &["mixed-phase-migration"],
        ),
        // Created again with every column it had: a replace, in expand.
        (
            "DROP VIEW active_users;\nCREATE VIEW active_users AS SELECT id, name, email, 1 AS \
             tier FROM users;",
            Expand,
            &["replaces-object"],
            &["view-drops-columns", "breaking-view-columns"],
        ),
        // Objects the release creates are nobody's yet, whatever the statement.
        (
            "CREATE TABLE audit (id bigint, note text);\nCREATE INDEX audit_note ON audit \
             (note);\nDROP INDEX audit_note;\nALTER TABLE audit DROP COLUMN note;\nTRUNCATE \
             audit;\nDROP TABLE audit;",
            Expand,
            &[],
            &[
                "data-loss",
                "require-concurrent-index-creation",
                "require-concurrent-index-deletion",
            ],
        ),
        (
            "CREATE TABLE archive AS SELECT * FROM orders WHERE false;\nCREATE INDEX archive_user \
             ON archive (user_id);",
            Expand,
            &[],
            &["require-concurrent-index-creation"],
        ),
        (
            "ALTER TABLE users ADD COLUMN scratch text;\nALTER TABLE users DROP COLUMN scratch;",
            Expand,
            &[],
            &["data-loss"],
        ),
        (
            "CREATE VIEW v2 AS SELECT 1;\nDROP VIEW v2;",
            Expand,
            &[],
            &[],
        ),
    ]);
    // Across the files of one release as well.
    let a = release(&[
        (
            "V2__t.sql",
            "CREATE TABLE audit (id bigint, note text);\nCREATE INDEX audit_note ON audit (note);",
        ),
        (
            "V3__d.sql",
            "DROP INDEX audit_note;\nALTER TABLE audit DROP COLUMN note;",
        ),
    ]);
    assert_eq!(a.migrations[1].phase, Phase::Expand, "{:?}", a.findings);
    assert!(a.findings.is_empty(), "{:?}", a.findings);
    assert!(
        a.migrations[1]
            .statements
            .iter()
            .all(|s| s.phase == StmtPhase::Expand)
    );
}

#[test]
fn lint_treats_tables_created_earlier_in_the_file_as_new() {
    let files =
        vec![MigrationFile::from_bytes(
        "V7__t.sql",
        "V7__t.sql",
        b"CREATE TABLE actions (person_id bigint, post_id bigint);\nALTER TABLE actions ALTER \
          COLUMN person_id SET NOT NULL, ALTER COLUMN post_id SET NOT NULL;\nCREATE INDEX \
          actions_person ON actions (person_id);",
    )
    .unwrap()];
    let a = analyze(&files, None, AnalyzeOptions::default());
    let rules: Vec<&str> = a.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(a.migrations[0].phase, Phase::Expand, "{rules:?}");
    assert!(!rules.contains(&"breaking-set-not-null"), "{rules:?}");
    assert!(
        !rules.contains(&"require-concurrent-index-creation"),
        "{rules:?}"
    );
}

#[test]
fn what_one_transaction_cannot_hold_stops_or_is_handled() {
    use Phase::*;
    check(&[
        (
            "ALTER TYPE mood ADD VALUE 'calm';\nALTER TABLE users ALTER COLUMN feeling SET DEFAULT \
             'calm';",
            Expand,
            &["enum-value-in-same-transaction"],
            &[],
        ),
        (
            "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'calm';\nUPDATE users SET feeling = \
             'calm'::mood WHERE feeling IS NULL;",
            Expand,
            &["enum-value-in-same-transaction"],
            &[],
        ),
        // A type created in the same transaction may use its new values.
        (
            "CREATE TYPE size AS ENUM ('s');\nALTER TYPE size ADD VALUE 'm';\nALTER TABLE orders \
             ADD COLUMN size size DEFAULT 'm';",
            Expand,
            &[],
            &["enum-value-in-same-transaction"],
        ),
        (
            "ALTER TYPE mood ADD VALUE 'calm';",
            Expand,
            &[],
            &["enum-value-in-same-transaction"],
        ),
        // golang-migrate's wrapper: left out, the body is one transaction anyway.
        (
            "BEGIN;\nALTER TABLE users ADD COLUMN nick text;\nCOMMIT;",
            Expand,
            &["transaction-wrapper"],
            &["transaction-nesting", "transaction-control-in-migration"],
        ),
        (
            "SET statement_timeout = 0;\nBEGIN;\nCREATE TABLE tags (id bigint);\nEND;",
            Expand,
            &["transaction-wrapper"],
            &["transaction-control-in-migration"],
        ),
        // Anything else commits or aborts part of the file.
        (
            "ALTER TABLE users ADD COLUMN nick text;\nCOMMIT;\nALTER TABLE users ADD COLUMN bio \
             text;",
            Expand,
            &["transaction-control-in-migration"],
            &[],
        ),
        (
            "BEGIN;\nALTER TABLE users ADD COLUMN nick text;\nROLLBACK;",
            Expand,
            &["transaction-control-in-migration"],
            &[],
        ),
        (
            "BEGIN;\nALTER TABLE users ADD COLUMN nick text;",
            Expand,
            &["transaction-control-in-migration"],
            &[],
        ),
        (
            "SAVEPOINT a;\nALTER TABLE users ADD COLUMN nick text;\nROLLBACK TO SAVEPOINT a;",
            Expand,
            &[],
            &["transaction-control-in-migration"],
        ),
        // Statements that cannot run in a transaction, with others.
        (
            "ALTER TABLE users ADD COLUMN nick text;\nVACUUM users;",
            Expand,
            &["concurrently-in-transaction"],
            &[],
        ),
        (
            "VACUUM ANALYZE users;",
            Expand,
            &["empty-migration"],
            &["concurrently-in-transaction"],
        ),
    ]);
    let a = release(&[(
        "V2__w.sql",
        "BEGIN;\nALTER TABLE users ADD COLUMN nick text;\nCOMMIT;\n",
    )]);
    let m = &a.migrations[0];
    assert_eq!(
        m.statements.len(),
        1,
        "the wrapper is not run: {:?}",
        m.statements
    );
    assert!(m.transactional);
    // Each of these is refused inside a transaction block (checked on PostgreSQL 15: "... cannot
    // run inside a transaction block"; manual, REINDEX, ALTER DATABASE, ALTER SUBSCRIPTION):
    // alone in its file it runs outside one, beside a statement that needs one it is reported.
    for sql in [
        "REINDEX SCHEMA public;",
        "REINDEX (VERBOSE) SCHEMA public;",
        "reindex system app;",
        "REINDEX DATABASE app;",
        "REINDEX TABLE CONCURRENTLY users;",
        "REINDEX (VERBOSE) INDEX CONCURRENTLY users_email_idx;",
        "ALTER DATABASE app SET TABLESPACE fast;",
        "ALTER SUBSCRIPTION sub REFRESH PUBLICATION;",
        "ALTER SUBSCRIPTION sub SET PUBLICATION p2;",
        "CLUSTER;",
        "DISCARD ALL;",
    ] {
        let a = release(&[("V2__x.sql", sql)]);
        assert!(
            !a.migrations[0].transactional,
            "{sql} runs outside a transaction"
        );
        let mixed = format!("ALTER TABLE users ADD COLUMN tier text;\n{sql}");
        let (_, rules) = one(&mixed);
        assert!(
            rules.iter().any(|r| r == "concurrently-in-transaction"),
            "{mixed}: {rules:?}"
        );
    }
    for sql in [
        "REINDEX TABLE users;",
        "REINDEX INDEX users_email_idx;",
        "ALTER DATABASE app SET work_mem = '8MB';",
        "ALTER SUBSCRIPTION sub SET PUBLICATION p2 WITH (refresh = false);",
        "ALTER SUBSCRIPTION sub ENABLE;",
    ] {
        let a = release(&[("V2__x.sql", sql)]);
        assert!(a.migrations[0].transactional, "{sql} runs in a transaction");
    }
    // Two statements that cannot run in one: the executor runs them one by one.
    let (_, rules) = one(
        "CREATE INDEX CONCURRENTLY a_idx ON users (name);\nCREATE INDEX CONCURRENTLY b_idx ON \
         users (nickname);",
    );
    assert!(
        !rules.iter().any(|r| r == "concurrently-in-transaction"),
        "{rules:?}"
    );
    // Split over two files, the enum value is committed before it is used.
    let a = release(&[
        ("V2__add.sql", "ALTER TYPE mood ADD VALUE 'calm';"),
        (
            "V3__use.sql",
            "ALTER TABLE users ALTER COLUMN feeling SET DEFAULT 'calm';",
        ),
    ]);
    assert!(
        !a.findings
            .iter()
            .any(|f| f.rule == "enum-value-in-same-transaction"),
        "{:?}",
        a.findings
    );
}

#[test]
fn an_ignore_that_silences_nothing_is_reported() {
    let a = release(&[(
        "V2__i.sql",
        "CREATE INDEX users_name_idx ON users (name); -- cutover:ignore \
         require-concurrent-index-creation\n-- cutover:ignore data-loss: the column was never \
         read\nALTER TABLE users ADD COLUMN nick text;\n-- cutover:ignore \
         require-concurent-index-creation\nCREATE INDEX CONCURRENTLY users_nick_idx ON users \
         (nick);\n",
    )]);
    let unused: Vec<(u32, &str)> = a
        .findings
        .iter()
        .filter(|f| f.rule == "unused-ignore")
        .map(|f| (f.line, f.message.as_str()))
        .collect();
    assert_eq!(unused.len(), 2, "{unused:?}");
    assert_eq!(unused[0].0, 2);
    assert!(
        unused[0].1.contains("`data-loss` reports nothing"),
        "{unused:?}"
    );
    assert_eq!(unused[1].0, 4);
    assert!(
        unused[1]
            .1
            .contains("no rule `require-concurent-index-creation`"),
        "{unused:?}"
    );
    // The used one silences its own statement and reports nothing about itself.
    assert!(
        !a.findings
            .iter()
            .any(|f| f.rule == "require-concurrent-index-creation")
    );
}

#[test]
fn a_declaration_places_a_constraint_the_old_version_never_violates() {
    // The new version needs the unique key for ON CONFLICT, and the old one never writes
    // duplicates: the author says so, and cutover follows.
    let (phase, rules) = one(
        "-- cutover:phase=expand\nCREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);",
    );
    assert_eq!(phase, Phase::Expand, "{rules:?}");
    assert!(
        !rules
            .iter()
            .any(|r| r == "constraint-rejects-old-writes" || r == "phase-declaration-mismatch"),
        "{rules:?}"
    );
    // A constraint that rejects every old insert is not a matter of declaration.
    let (_, rules) = one(
        "-- cutover:phase=expand\nALTER TABLE users ADD COLUMN org_id bigint;\nALTER TABLE users \
         ADD CONSTRAINT org_nn CHECK (org_id IS NOT NULL) NOT VALID;",
    );
    assert!(
        rules.iter().any(|r| r == "phase-declaration-mismatch"),
        "{rules:?}"
    );
}

#[test]
fn what_an_earlier_file_of_the_release_made_for_the_old_version_is_dropped_after_it() {
    // The rename-table recipe: the old name lives on as a view for the old version, and its
    // drop must wait for that version's retirement.
    let a = release(&[
        (
            "V2__rename.sql",
            "-- cutover:phase=expand\nALTER TABLE orders RENAME TO purchases;\nCREATE VIEW orders \
             AS SELECT * FROM purchases;",
        ),
        ("V3__drop_view.sql", "DROP VIEW orders;"),
    ]);
    assert_eq!(a.migrations[1].phase, Phase::Contract, "{:?}", a.findings);
    // Made and dropped in one transaction, nobody saw it.
    let (phase, _) = one("CREATE VIEW scratch AS SELECT 1;\nDROP VIEW scratch;");
    assert_eq!(phase, Phase::Expand);
}

#[test]
fn ignore_comments_reach_the_findings_plan_adds_for_a_rename() {
    let dir = common::release_dir(
        BASE,
        &[(
            "V2__rename.sql",
            "-- cutover:ignore rename-rewrite-incomplete: nothing is indexed on email\nALTER TABLE \
             users RENAME COLUMN email TO email_address;\n",
        )],
    );
    let m = dir.path().join("m");
    let plan = cutover_planner::plan_file(&dir.path().join("spec.toml"))
        .unwrap()
        .plan;
    let rules: Vec<&str> = plan.findings.iter().map(|f| f.rule.as_str()).collect();
    assert!(rules.contains(&"breaking-rename-column"), "{rules:?}");
    assert!(!rules.contains(&"rename-rewrite-incomplete"), "{rules:?}");
    assert!(!rules.contains(&"unused-ignore"), "{rules:?}");
    // Without the comment the reminder is there.
    std::fs::write(
        m.join("V2__rename.sql"),
        "ALTER TABLE users RENAME COLUMN email TO email_address;\n",
    )
    .unwrap();
    let plan = cutover_planner::plan_file(&dir.path().join("spec.toml"))
        .unwrap()
        .plan;
    assert!(
        plan.findings
            .iter()
            .any(|f| f.rule == "rename-rewrite-incomplete")
    );
}

#[test]
fn switching_off_the_executors_timeouts_is_reported() {
    use Phase::*;
    check(&[
        (
            "SET statement_timeout = 0;\nSET lock_timeout = 0;\nALTER TABLE users ADD COLUMN bio \
             text;",
            Expand,
            &["timeout-disabled"],
            &[],
        ),
        (
            "SET LOCAL lock_timeout = '0';\nALTER TABLE users ADD COLUMN bio text;",
            Expand,
            &["timeout-disabled"],
            &[],
        ),
        (
            "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN bio text;",
            Expand,
            &[],
            &["timeout-disabled"],
        ),
    ]);
}

/// Inputs a tester found after the first round, each of a kind fixed above.
#[test]
fn inputs_found_by_breaking_the_first_round() {
    use Phase::*;
    check(&[
        // IF NOT EXISTS on a table that is there changes nothing: the table stays live.
        (
            "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text);\nALTER TABLE \
             users ALTER COLUMN email SET NOT NULL;",
            Breaking,
            &["breaking-set-not-null"],
            &[],
        ),
        (
            "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY);\nALTER TABLE users DROP \
             COLUMN email;",
            Contract,
            &["data-loss"],
            &[],
        ),
        (
            "ALTER TABLE users ADD COLUMN IF NOT EXISTS email text;\nALTER TABLE users DROP COLUMN \
             email;",
            Contract,
            &["data-loss"],
            &[],
        ),
        // The old version's inserts write a new column's default: constraints judge it.
        (
            "ALTER TABLE users ADD COLUMN tier text DEFAULT 'free';\nALTER TABLE users ADD \
             CONSTRAINT users_tier_check CHECK (tier IN ('paid', 'pro')) NOT VALID;",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "ALTER TABLE users ADD COLUMN score int DEFAULT 0 CHECK (score > 0);",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "ALTER TABLE users ADD COLUMN coupon_id bigint DEFAULT 0;\nALTER TABLE users ADD \
             CONSTRAINT users_coupon_fk FOREIGN KEY (coupon_id) REFERENCES orders (id) NOT VALID;",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "ALTER TABLE users ADD COLUMN slug text NOT NULL DEFAULT '';\nCREATE UNIQUE INDEX \
             CONCURRENTLY users_slug_key ON users (slug);",
            Breaking,
            &["breaking-add-constraint"],
            &[],
        ),
        (
            "ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();\nCREATE \
             UNIQUE INDEX CONCURRENTLY users_token_key ON users (token);",
            Expand,
            &[],
            &["breaking-add-constraint", "constraint-rejects-old-writes"],
        ),
        (
            "ALTER TABLE users ADD COLUMN slug text UNIQUE NULLS NOT DISTINCT;",
            Breaking,
            &["breaking-add-constraint"],
            &[],
        ),
        // DEFAULT NULL is no default.
        (
            "ALTER TABLE users ADD COLUMN x text DEFAULT NULL NOT NULL;",
            Breaking,
            &["breaking-add-required-column"],
            &[],
        ),
        // IS TRUE / IS NOT UNKNOWN are false for NULL.
        (
            "ALTER TABLE users ADD COLUMN x text;\nALTER TABLE users ADD CONSTRAINT x_set CHECK ((x \
             <> '') IS TRUE) NOT VALID;",
            Breaking,
            &["breaking-add-constraint"],
            &[],
        ),
        // A PRIMARY KEY made from a unique index makes its columns NOT NULL.
        (
            "ALTER TABLE orders ADD CONSTRAINT orders_pkey2 PRIMARY KEY USING INDEX orders_user_idx;",
            Breaking,
            &["breaking-add-constraint"],
            &[],
        ),
        // An ignore comment reaches the statement right below its comment block, not further.
        (
            "-- cutover:ignore breaking-set-not-null\n-- ALTER TABLE users DROP COLUMN legacy;  \
             (next release)\n\nALTER TABLE users ALTER COLUMN email SET NOT NULL;",
            Breaking,
            &["breaking-set-not-null", "unused-ignore"],
            &[],
        ),
        (
            "-- cutover:ignore data-loss: never read since 0.9\n-- (kept for the audit)\nALTER \
             TABLE users DROP COLUMN email;",
            Contract,
            &[],
            &["data-loss", "unused-ignore"],
        ),
        // A DO block is one transaction too, and one phase.
        (
            "DO $$ BEGIN ALTER TYPE mood ADD VALUE 'calm'; UPDATE users SET feeling = 'calm' WHERE \
             id = 1; END $$;",
            Expand,
            &["enum-value-in-same-transaction"],
            &[],
        ),
        (
            "ALTER TYPE mood ADD VALUE 'calm';\nDO $$ BEGIN UPDATE users SET feeling = 'calm' WHERE \
             id = 1; END $$;",
            Expand,
            &["enum-value-in-same-transaction"],
            &[],
        ),
        (
            "ALTER TYPE mood ADD VALUE 'calm';\nUPDATE users SET feeling = E'calm' WHERE id = 1;",
            Expand,
            &["enum-value-in-same-transaction"],
            &[],
        ),
        (
            "ALTER TYPE mood ADD VALUE 'calm';\nUPDATE users SET feeling = $$calm$$ WHERE id = 1;",
            Expand,
            &["enum-value-in-same-transaction"],
            &[],
        ),
        (
            "DO $$ BEGIN ALTER TABLE users ADD COLUMN locale text; ALTER TABLE users DROP COLUMN \
             email; END $$;",
            Contract,
            &["mixed-phase-migration"],
            &[],
        ),
        // More statements that cannot run in a transaction block.
        (
            "ALTER TABLE users ADD COLUMN bio text;\nREINDEX DATABASE app;",
            Expand,
            &["concurrently-in-transaction"],
            &[],
        ),
        (
            "ALTER TABLE users ADD COLUMN bio text;\nCLUSTER;",
            Expand,
            &["concurrently-in-transaction"],
            &[],
        ),
        (
            "ALTER TABLE users ADD COLUMN bio text;\nDISCARD ALL;",
            Expand,
            &["concurrently-in-transaction"],
            &[],
        ),
        // A replace takes the phase of what re-creates it.
        (
            "DROP INDEX orders_user_idx;\nCREATE UNIQUE INDEX orders_user_idx ON orders (user_id);",
            Contract,
            &["constraint-rejects-old-writes"],
            &["mixed-phase-migration"],
        ),
        // CLUSTER rewrites the table under its lock: not a placeholder.
        (
            "CLUSTER users USING users_pkey;",
            Expand,
            &["table-rewrite"],
            &["empty-migration"],
        ),
        (
            "VACUUM FULL users;",
            Expand,
            &["table-rewrite"],
            &["empty-migration"],
        ),
        // Row-level security decides what the running version's role sees and writes.
        (
            "ALTER TABLE users ENABLE ROW LEVEL SECURITY;",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "CREATE POLICY only_active ON users AS RESTRICTIVE USING (name <> '');",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "CREATE POLICY read_all ON users FOR SELECT USING (true);",
            Expand,
            &[],
            &["constraint-rejects-old-writes"],
        ),
        (
            "CREATE TABLE notes (id bigint, owner text);\nALTER TABLE notes ENABLE ROW LEVEL \
             SECURITY;",
            Expand,
            &[],
            &["constraint-rejects-old-writes"],
        ),
    ]);
    // A CHECK that does not prove NOT NULL does not make SET NOT NULL safe, and a dropped one
    // no longer does.
    for base_check in [
        "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL OR name = 'guest');",
        "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL);\nALTER TABLE users \
         DROP CONSTRAINT email_nn;",
    ] {
        let files = vec![
            MigrationFile::from_bytes(
                "V1__base.sql",
                "V1__base.sql",
                format!("{BASE}\n{base_check}").as_bytes(),
            )
            .unwrap(),
            MigrationFile::from_bytes(
                "V2__x.sql",
                "V2__x.sql",
                b"ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
            )
            .unwrap(),
        ];
        let a = analyze(&files, Some(1), AnalyzeOptions { release: true });
        assert_eq!(
            a.migrations[0].phase,
            Phase::Breaking,
            "{base_check}: {:?}",
            a.findings
        );
    }
}

#[test]
fn a_using_clause_that_only_casts_to_the_new_type_is_no_using_clause() {
    let files = |sql: &str| {
        vec![
            MigrationFile::from_bytes(
                "V1__base.sql",
                "V1__base.sql",
                b"CREATE TABLE \"p\" (\"id\" bigint PRIMARY KEY, \"name\" varchar(100) NOT NULL);",
            )
            .unwrap(),
            MigrationFile::from_bytes("V2__x.sql", "V2__x.sql", sql.as_bytes()).unwrap(),
        ]
    };
    for (sql, phase) in [
        // Django's CharField -> TextField.
        (
            "ALTER TABLE \"p\" ALTER COLUMN \"name\" TYPE text USING \"name\"::text;",
            Phase::Expand,
        ),
        (
            "ALTER TABLE p ALTER COLUMN name TYPE varchar(200) USING CAST(name AS varchar(200));",
            Phase::Expand,
        ),
        // A real conversion stays breaking.
        (
            "ALTER TABLE p ALTER COLUMN name TYPE text USING upper(name)::text;",
            Phase::Breaking,
        ),
        (
            "ALTER TABLE p ALTER COLUMN name TYPE varchar(50) USING name::varchar(50);",
            Phase::Breaking,
        ),
    ] {
        let a = analyze(&files(sql), Some(1), AnalyzeOptions { release: true });
        assert_eq!(a.migrations[0].phase, phase, "{sql}: {:?}", a.findings);
    }
}

#[test]
fn a_rename_of_a_column_a_policy_or_trigger_names_stops_the_plan() {
    for (base, why) in [
        (
            "CREATE POLICY own_rows ON users USING (email = current_user);",
            "policy `own_rows`",
        ),
        (
            "CREATE TRIGGER email_changed AFTER UPDATE OF email ON users FOR EACH ROW EXECUTE \
             FUNCTION f();",
            "trigger `email_changed`",
        ),
    ] {
        let dir = common::release_dir(
            &format!("{BASE}\n{base}\n"),
            &[(
                "V2__rename.sql",
                "ALTER TABLE users RENAME COLUMN email TO email_address;\n",
            )],
        );
        let err = cutover_planner::plan_file(&dir.path().join("spec.toml"))
            .unwrap_err()
            .to_string();
        let detail = format!(
            "{:?}",
            cutover_planner::plan_file(&dir.path().join("spec.toml")).unwrap_err()
        );
        assert!(
            detail.contains("rename-rewrite-unsupported") && detail.contains(why),
            "{err}\n{detail}"
        );
    }
}

#[test]
fn identity_changes_rules_and_constraint_triggers_judge_the_old_versions_writes() {
    use Phase::*;
    check(&[
        (
            "ALTER TABLE orders ALTER COLUMN id DROP IDENTITY;",
            Breaking,
            &["breaking-add-constraint"],
            &[],
        ),
        (
            "ALTER TABLE orders ALTER COLUMN id SET GENERATED ALWAYS;",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "CREATE RULE no_deletes AS ON DELETE TO orders DO INSTEAD NOTHING;",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "CREATE CONSTRAINT TRIGGER orders_check AFTER INSERT ON orders FOR EACH ROW EXECUTE \
             FUNCTION check_order();",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        // A trigger runs a function cutover cannot read on the old version's writes: it may
        // change or reject them (issue 10), until the file declares its phase.
        (
            "CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION \
             touch();",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "-- cutover:phase=expand\nCREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH \
             ROW EXECUTE FUNCTION touch();",
            Expand,
            &[],
            &["constraint-rejects-old-writes"],
        ),
        (
            "CREATE TABLE notes (id bigint);\nCREATE TRIGGER notes_touch BEFORE UPDATE ON notes \
             FOR EACH ROW EXECUTE FUNCTION touch();",
            Expand,
            &[],
            &["constraint-rejects-old-writes"],
        ),
        (
            "ALTER TABLE orders DISABLE TRIGGER ALL;",
            Contract,
            &[],
            &[],
        ),
        (
            "ALTER TABLE orders ENABLE TRIGGER orders_touch;",
            Contract,
            &["constraint-rejects-old-writes"],
            &[],
        ),
        (
            "CREATE TABLE notes (id bigint GENERATED BY DEFAULT AS IDENTITY);\nALTER TABLE notes \
             ALTER COLUMN id SET GENERATED ALWAYS;",
            Expand,
            &[],
            &["constraint-rejects-old-writes"],
        ),
    ]);
}
