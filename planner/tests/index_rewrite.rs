//! The online rewrite of plain `CREATE INDEX` / `DROP INDEX` into the concurrent form: which
//! migrations `plan` rewrites, what runs, and what it leaves as written with the lock finding.

// Only `release_dir` of the shared helpers is used here.
#[allow(dead_code)]
mod common;

use cutover_planner::dag::{Params, Plan};
use cutover_planner::plan::plan_file;

const BASE: &str = "CREATE TABLE users (id bigint PRIMARY KEY, email text, name text);\n\
                    CREATE INDEX users_name_idx ON users (name);\n\
                    CREATE TABLE events (at timestamptz, kind text) PARTITION BY RANGE (at);\n";

fn plan(migrations: &[(&str, &str)]) -> Plan {
    let dir = common::release_dir(BASE, migrations);
    plan_file(&dir.path().join("spec.toml")).unwrap().plan
}

/// The SQL, transactionality and phase of the migrate step of `stem`.
fn step(plan: &Plan, stem: &str) -> (Vec<String>, bool, String) {
    let s = plan
        .steps()
        .find(|s| s.id.ends_with(&format!("/{stem}")) && s.id.starts_with("migrate/"))
        .unwrap_or_else(|| panic!("no migrate step for {stem}"));
    let Params::Migrate(p) = &s.params else {
        unreachable!()
    };
    (p.sql.clone(), p.transactional, s.id.clone())
}

fn rules_at(plan: &Plan, file: &str) -> Vec<String> {
    plan.findings
        .iter()
        .filter(|f| f.file.ends_with(file))
        .map(|f| f.rule.clone())
        .collect()
}

#[test]
fn index_only_migrations_run_concurrently_outside_a_transaction() {
    let p = plan(&[
        (
            "V2__index_email.sql",
            "-- diesel up.sql\ncreate index if not exists users_email_key\n    on users \
             (lower(email));\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_id_name ON users (id, name);\n",
        ),
        (
            "V3__drop_name_idx.sql",
            "DROP INDEX IF EXISTS users_name_idx;\n",
        ),
    ]);
    let (sql, transactional, id) = step(&p, "V2__index_email");
    assert_eq!(
        sql,
        [
            "create index CONCURRENTLY if not exists users_email_key\n    on users \
             (lower(email));",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_id_name ON users (id, name);",
        ]
    );
    assert!(!transactional);
    assert_eq!(id, "migrate/expand/V2__index_email");
    assert_eq!(
        rules_at(&p, "V2__index_email.sql"),
        ["index-built-concurrently"]
    );
    // Dropping an index the old version may use stays in contract, now concurrent.
    let (sql, transactional, id) = step(&p, "V3__drop_name_idx");
    assert_eq!(sql, ["DROP INDEX CONCURRENTLY IF EXISTS users_name_idx;"]);
    assert!(!transactional);
    assert_eq!(id, "migrate/contract/V3__drop_name_idx");
    assert_eq!(
        rules_at(&p, "V3__drop_name_idx.sql"),
        ["index-built-concurrently"]
    );
}

#[test]
fn what_the_concurrent_form_cannot_hold_runs_as_written_with_its_finding() {
    // Beside another statement: the concurrent form would lose the file's transaction.
    let p = plan(&[(
        "V2__email_lookup.sql",
        "ALTER TABLE users ADD COLUMN nickname text;\nCREATE INDEX users_email_idx ON users \
         (email);\n",
    )]);
    let (sql, transactional, _) = step(&p, "V2__email_lookup");
    assert!(
        sql[1].starts_with("CREATE INDEX users_email_idx"),
        "{sql:?}"
    );
    assert!(transactional);
    let f = p
        .findings
        .iter()
        .find(|f| f.rule == "require-concurrent-index-creation")
        .expect("the lock finding stays");
    assert!(f.hint.contains("migration of its own"), "{}", f.hint);

    // An ignore comment naming the lock rule is the opt-out.
    let p = plan(&[(
        "V2__small_table.sql",
        "-- cutover:ignore require-concurrent-index-creation\nCREATE INDEX users_email_idx ON \
         users (email);\n",
    )]);
    let (sql, transactional, _) = step(&p, "V2__small_table");
    assert_eq!(sql, ["CREATE INDEX users_email_idx ON users (email);"]);
    assert!(transactional);
    assert!(rules_at(&p, "V2__small_table.sql").is_empty());

    // A partitioned table: concurrent builds are not supported there.
    let p = plan(&[(
        "V2__events_kind.sql",
        "CREATE INDEX events_kind ON events (kind);\n",
    )]);
    assert_eq!(
        step(&p, "V2__events_kind").0,
        ["CREATE INDEX events_kind ON events (kind);"]
    );
    assert!(
        rules_at(&p, "V2__events_kind.sql")
            .contains(&"require-concurrent-index-creation".to_string())
    );
}

#[test]
fn an_index_on_a_table_of_the_same_release_is_built_plainly() {
    // Nobody uses the new table yet: the plain build is faster and shares the file's transaction.
    let p = plan(&[(
        "V2__audit.sql",
        "CREATE TABLE audit (id bigint PRIMARY KEY, at timestamptz);\nCREATE INDEX audit_at ON \
         audit (at);\n",
    )]);
    let (sql, transactional, _) = step(&p, "V2__audit");
    assert_eq!(sql[1], "CREATE INDEX audit_at ON audit (at);");
    assert!(transactional);
    assert!(rules_at(&p, "V2__audit.sql").is_empty());
}

#[test]
fn an_index_rebuilt_under_its_name_is_left_as_written_with_the_rebuild_recipe() {
    // Concurrently, the table would be without the index between the drop and the build (and
    // without its uniqueness, for a unique one): one transaction keeps the swap atomic.
    let p = plan(&[(
        "V2__rebuild_name_idx.sql",
        "DROP INDEX users_name_idx;\n\nCREATE INDEX users_name_idx ON users (name, id);\n",
    )]);
    let (sql, transactional, _) = step(&p, "V2__rebuild_name_idx");
    assert_eq!(
        sql,
        [
            "DROP INDEX users_name_idx;",
            "CREATE INDEX users_name_idx ON users (name, id);"
        ]
    );
    assert!(transactional);
    let f = p
        .findings
        .iter()
        .find(|f| f.rule == "require-concurrent-index-creation")
        .expect("the lock finding stays");
    assert!(
        f.hint
            .contains("ALTER INDEX users_name_idx_new RENAME TO users_name_idx"),
        "{}",
        f.hint
    );
}

#[test]
fn a_unique_key_is_built_concurrently_and_attached_in_contract() {
    let p = plan(&[(
        "V2__users_email_key.sql",
        "-- prisma migration.sql\nALTER TABLE \"users\" ADD CONSTRAINT \"users_email_key\" UNIQUE \
         (\"email\");\n",
    )]);
    let (sql, transactional, id) = step(&p, "V2__users_email_key");
    assert_eq!(
        sql,
        [
            "CREATE UNIQUE INDEX CONCURRENTLY \"users_email_key\" ON \"users\" (\"email\");",
            "ALTER TABLE \"users\" ADD CONSTRAINT \"users_email_key\" UNIQUE USING INDEX \
             \"users_email_key\";",
        ]
    );
    assert!(!transactional);
    // A unique key can reject the old version's writes: it still waits for the contract.
    assert_eq!(id, "migrate/contract/V2__users_email_key");
    let mut rules = rules_at(&p, "V2__users_email_key.sql");
    rules.sort();
    assert_eq!(
        rules,
        ["constraint-rejects-old-writes", "index-built-concurrently"]
    );
}

#[test]
fn as_is_keeps_a_statement_out_of_every_rewrite_and_keeps_its_finding() {
    // A concurrent form declined: the lock finding stays, the statement runs as written.
    let p = plan(&[(
        "V2__email_idx.sql",
        "-- cutover:as-is (a small table, a maintenance window)\nCREATE INDEX users_email_idx ON \
         users (email);\n",
    )]);
    assert_eq!(
        step(&p, "V2__email_idx").0,
        ["CREATE INDEX users_email_idx ON users (email);"]
    );
    assert_eq!(
        rules_at(&p, "V2__email_idx.sql"),
        ["require-concurrent-index-creation"]
    );
    // A rename kept as written breaks the running version: the online plan stops on it.
    let dir = common::release_dir(
        BASE,
        &[(
            "V2__rename.sql",
            "ALTER TABLE users RENAME COLUMN name TO full_name; -- cutover:as-is\n",
        )],
    );
    let err = plan_file(&dir.path().join("spec.toml")).unwrap_err();
    let text = format!("{:?}", err.diagnostics());
    assert!(
        text.contains("breaking-rename-column") && text.contains("kept as written by"),
        "{text}"
    );
}

#[test]
fn partitioned_tables_keep_what_postgresql_cannot_run_concurrently_or_not_valid() {
    // `BASE` has `events` partitioned; its index and a foreign key on it.
    let base = format!(
        "{BASE}CREATE INDEX events_kind_idx ON events (kind);\nCREATE TABLE kinds (kind text \
         PRIMARY KEY);\n"
    );
    let dir = common::release_dir(
        &base,
        &[
            (
                "V2__drop_events_kind_idx.sql",
                "DROP INDEX events_kind_idx;\n",
            ),
            (
                "V3__events_kind_fk.sql",
                "ALTER TABLE events ADD CONSTRAINT events_kind_fk FOREIGN KEY (kind) REFERENCES \
                 kinds (kind);\n",
            ),
        ],
    );
    let p = plan_file(&dir.path().join("spec.toml")).unwrap().plan;
    assert_eq!(
        step(&p, "V2__drop_events_kind_idx").0,
        ["DROP INDEX events_kind_idx;"]
    );
    assert_eq!(
        step(&p, "V3__events_kind_fk").0,
        [
            "ALTER TABLE events ADD CONSTRAINT events_kind_fk FOREIGN KEY (kind) REFERENCES kinds \
          (kind);"
        ]
    );
}
