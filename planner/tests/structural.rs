//! Structural classification (issue 10): ignore comments and the file's phase, search_path,
//! replaces by drop and create, statements that depend on a contract statement, what the rename
//! rewrite cannot carry, enum values added in DO blocks, partitioned tables and column types
//! that views read. Each case is a release against a baseline where every object already serves
//! the old version.

use cutover_planner::analysis::{Analysis, Phase};

mod common;

const BASE: &str = "\
CREATE TYPE order_state AS ENUM ('new', 'paid');
CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, email text UNIQUE,
  nickname text, status text, legacy_flags int, score int, created_at timestamptz DEFAULT now());
CREATE FUNCTION touch() RETURNS trigger AS $$ BEGIN NEW.created_at := now(); RETURN NEW; END $$
  LANGUAGE plpgsql;
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint REFERENCES users (id),
  state order_state, total numeric, note varchar(100));
CREATE FUNCTION order_count(uid bigint) RETURNS bigint LANGUAGE sql
  AS $$ SELECT count(*) FROM orders WHERE user_id = uid $$;
CREATE VIEW active_users AS SELECT id, name, email FROM users;
CREATE TABLE events (id bigint, at timestamptz NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id bigint PRIMARY KEY, total numeric);
CREATE MATERIALIZED VIEW user_stats AS SELECT status, count(*) AS n FROM users GROUP BY status;
";

/// Analyzes `files` (name, SQL) as one release after the baseline.
fn release(files: &[(&str, &str)]) -> Analysis {
    common::release(BASE, files)
}

/// Checks each case (SQL, phase, rules present, rules absent) as a one-file release.
fn check(cases: &[(&str, Phase, &[&str], &[&str])]) {
    common::check(BASE, cases)
}

#[test]
fn an_ignored_breaking_statement_keeps_the_mixed_phase_check() {
    use Phase::*;
    check(&[
        (
            "-- cutover:ignore breaking-rename-table\nALTER TABLE users RENAME TO members;\n\
             CREATE VIEW users AS SELECT * FROM members;\nALTER TABLE orders DROP COLUMN note;",
            Breaking,
            &["mixed-phase-migration"],
            &["breaking-rename-table"],
        ),
        (
            "-- cutover:ignore breaking-rename-table\nALTER TABLE users RENAME TO members;\n\
             CREATE VIEW users AS SELECT * FROM members;",
            Breaking,
            &[],
            &["mixed-phase-migration", "breaking-rename-table"],
        ),
        (
            "CREATE TABLE tags (id bigint);\nALTER TABLE orders DROP COLUMN note;",
            Contract,
            &["mixed-phase-migration"],
            &[],
        ),
    ]);
}

#[test]
fn changing_the_type_of_a_column_a_view_reads_fails() {
    use Phase::*;
    check(&[
        (
            "ALTER TABLE users ALTER COLUMN email TYPE varchar(320);",
            Breaking,
            &["column-type-used-by-view"],
            &[],
        ),
        // A materialized view reads it too.
        (
            "ALTER TABLE users ALTER COLUMN status TYPE varchar(50);",
            Breaking,
            &["column-type-used-by-view"],
            &[],
        ),
        // A widening PostgreSQL makes in place still fails on a viewed column.
        (
            "CREATE VIEW order_notes AS SELECT id, note FROM orders;\n\
             ALTER TABLE orders ALTER COLUMN note TYPE varchar(200);",
            Breaking,
            &["column-type-used-by-view"],
            &[],
        ),
        // A column no view reads.
        (
            "ALTER TABLE orders ALTER COLUMN note TYPE varchar(200);",
            Expand,
            &[],
            &["column-type-used-by-view"],
        ),
        // The view is dropped first (and created again after).
        (
            "DROP VIEW active_users;\nALTER TABLE users ALTER COLUMN email TYPE varchar(320);\n\
             CREATE VIEW active_users AS SELECT id, name, email FROM users;",
            Breaking,
            &[],
            &["column-type-used-by-view"],
        ),
    ]);
}

#[test]
fn a_partitioned_table_is_not_indexed_concurrently() {
    use Phase::*;
    check(&[
        (
            "CREATE INDEX CONCURRENTLY events_id_idx ON events (id);",
            Breaking,
            &["concurrent-index-on-partitioned-table"],
            &[],
        ),
        // A partition is a plain table.
        (
            "CREATE INDEX CONCURRENTLY events_2026_id_idx ON events_2026 (id);",
            Expand,
            &[],
            &["concurrent-index-on-partitioned-table"],
        ),
        // ON ONLY the parent builds nothing.
        (
            "CREATE INDEX events_id_idx ON ONLY events (id);",
            Expand,
            &[],
            &[
                "concurrent-index-on-partitioned-table",
                "require-concurrent-index-creation",
            ],
        ),
    ]);
    // A plain CREATE INDEX on the parent: the hint is the recipe, not CONCURRENTLY.
    let a = release(&[("V2__x.sql", "CREATE INDEX events_id_idx ON events (id);")]);
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "require-concurrent-index-creation")
        .expect("a plain index on the parent blocks writes");
    assert!(f.hint.contains("ON ONLY"), "{}", f.hint);
}

#[test]
fn after_a_search_path_change_unqualified_names_are_existing_objects() {
    use Phase::*;
    check(&[
        (
            "CREATE TABLE scratch (id bigint);\nSET search_path = billing, public;\nDROP TABLE scratch;",
            Contract,
            &["data-loss"],
            &[],
        ),
        (
            "CREATE TABLE scratch (id bigint);\nSELECT pg_catalog.set_config('search_path', 'billing', false);\n\
             CREATE INDEX scratch_id_idx ON scratch (id);",
            Expand,
            &["require-concurrent-index-creation"],
            &[],
        ),
        // Qualified names still resolve.
        (
            "CREATE TABLE billing.scratch (id bigint);\nSELECT pg_catalog.set_config('search_path', '', false);\n\
             CREATE INDEX scratch_id_idx ON billing.scratch (id);\nDROP TABLE billing.scratch;",
            Expand,
            &[],
            &["require-concurrent-index-creation", "data-loss"],
        ),
        // Without the change, the file's own table is new.
        (
            "CREATE TABLE scratch (id bigint);\nCREATE INDEX scratch_id_idx ON scratch (id);",
            Expand,
            &[],
            &["require-concurrent-index-creation"],
        ),
    ]);
}

#[test]
fn create_or_replace_then_drop_drops_what_the_old_version_uses() {
    use Phase::*;
    check(&[
        (
            "CREATE OR REPLACE VIEW active_users AS SELECT id, name, email FROM users;\n\
             DROP VIEW active_users;",
            Contract,
            &[],
            &[],
        ),
        (
            "CREATE OR REPLACE FUNCTION order_count(uid bigint) RETURNS bigint LANGUAGE sql\n\
             AS $$ SELECT 0::bigint $$;\nDROP FUNCTION order_count(bigint);",
            Contract,
            &[],
            &[],
        ),
        // A plain CREATE makes a new object: dropping it again drops nothing anyone uses.
        (
            "CREATE VIEW recent_orders AS SELECT id FROM orders;\nDROP VIEW recent_orders;",
            Expand,
            &[],
            &[],
        ),
    ]);
}

/// Plans `rename` (a migration) on top of the baseline: the plan error's detail, or `None` when
/// the plan is built.
fn plan_error(rename: &str) -> Option<String> {
    let dir = common::release_dir(BASE, &[("V2__rename.sql", rename)]);
    cutover_planner::plan_file(&dir.path().join("spec.toml"))
        .err()
        .map(|e| format!("{e:?}"))
}

#[test]
fn the_rename_rewrite_refuses_columns_functions_and_partition_keys_use() {
    for (rename, why) in [
        // The trigger users_touch runs touch(), whose body sets NEW.created_at.
        (
            "ALTER TABLE users RENAME COLUMN created_at TO created;\n",
            "function `touch`",
        ),
        // order_count's SQL body reads orders.user_id.
        (
            "ALTER TABLE orders RENAME COLUMN user_id TO customer_id;\n",
            "function `order_count`",
        ),
        (
            "ALTER TABLE events RENAME COLUMN at TO happened_at;\n",
            "partition key",
        ),
    ] {
        let detail = plan_error(rename).unwrap_or_else(|| panic!("{rename}: planned"));
        assert!(
            detail.contains("rename-rewrite-unsupported") && detail.contains(why),
            "{rename}: {detail}"
        );
    }
    // A column no function, trigger or partition key reads is rewritten.
    let detail = plan_error("ALTER TABLE users RENAME COLUMN legacy_flags TO flags;\n");
    assert!(
        detail
            .as_deref()
            .is_none_or(|d| !d.contains("rename-rewrite-unsupported")),
        "{detail:?}"
    );
}

#[test]
fn an_enum_value_a_do_block_adds_is_not_used_after_it() {
    use Phase::*;
    check(&[
        (
            "DO $$ BEGIN ALTER TYPE order_state ADD VALUE 'refunded'; END $$;\n\
             UPDATE orders SET state = 'refunded' WHERE id = 1;",
            Expand,
            &["enum-value-in-same-transaction"],
            &[],
        ),
        (
            "DO $$ BEGIN ALTER TYPE order_state ADD VALUE 'refunded'; END $$;",
            Expand,
            &[],
            &["enum-value-in-same-transaction"],
        ),
    ]);
}

#[test]
fn the_phase_split_does_not_reorder_what_depends_on_a_contract_statement() {
    // A contract migration numbered before a rename's expand part.
    let dir = common::release_dir(
        BASE,
        &[
            ("V2__drop.sql", "ALTER TABLE users DROP COLUMN nickname;\n"),
            (
                "V3__rename.sql",
                "ALTER TABLE users RENAME COLUMN legacy_flags TO nickname;\n",
            ),
        ],
    );
    let err = cutover_planner::plan_file(&dir.path().join("spec.toml"))
        .err()
        .map(|e| format!("{e:?}"))
        .expect("the rename's expand part would run before the drop");
    assert!(err.contains("numbered after contract migration"), "{err}");
    // Within one file: the split would run the ADD before the DROP.
    let detail = plan_error(
        "ALTER TABLE users RENAME COLUMN legacy_flags TO flags;\nALTER TABLE orders DROP COLUMN \
         note;\nALTER TABLE orders ADD COLUMN IF NOT EXISTS note jsonb;\n",
    )
    .expect("refused");
    assert!(detail.contains("mixed-phase-migration"), "{detail}");
    // Expand before contract keeps the file's order: split as before.
    let detail = plan_error(
        "ALTER TABLE users RENAME COLUMN legacy_flags TO flags;\nALTER TABLE orders ADD COLUMN \
         memo text;\nALTER TABLE orders DROP COLUMN note;\n",
    );
    assert!(
        detail
            .as_deref()
            .is_none_or(|d| !d.contains("mixed-phase-migration")),
        "{detail:?}"
    );
}

#[test]
fn dropping_a_function_and_creating_another_overload_is_no_replace() {
    use Phase::*;
    check(&[
        (
            "DROP FUNCTION order_count(bigint);\nCREATE FUNCTION order_count(uid bigint, since \
             timestamptz) RETURNS bigint LANGUAGE sql AS $$ SELECT 0::bigint $$;",
            Contract,
            &["mixed-phase-migration"],
            &[],
        ),
        // The same argument types: a replace, as before.
        (
            "DROP FUNCTION order_count(bigint);\nCREATE FUNCTION order_count(uid bigint) RETURNS \
             bigint LANGUAGE sql AS $$ SELECT 0::bigint $$;",
            Expand,
            &["replaces-object"],
            &["mixed-phase-migration"],
        ),
    ]);
}

/// Plans `migrations` on top of `base`: the plan error's detail, or the plan.
fn plan_on(base: &str, migrations: &[(&str, &str)]) -> Result<cutover_planner::dag::Plan, String> {
    let dir = common::release_dir(base, migrations);
    cutover_planner::plan_file(&dir.path().join("spec.toml"))
        .map(|p| p.plan)
        .map_err(|e| format!("{e:?}"))
}

/// Every migrate step's SQL of `plan`, one string.
fn migrate_sql(plan: &cutover_planner::dag::Plan) -> String {
    plan.steps()
        .filter_map(|s| match &s.params {
            cutover_planner::dag::Params::Migrate(p) => Some(p.sql.join("\n")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tester cases ren_pk_include, ren_fk_include: a column in the INCLUDE list of the primary
/// key, of a UNIQUE constraint (a foreign key depends on it or not) or of a unique index goes
/// with the key when the contract step drops it, so the rewrite refuses it like a key column.
/// An INCLUDE column of a plain index, or of a unique index dropped since, is rewritten.
#[test]
fn the_rename_rewrite_refuses_include_columns_of_keys() {
    let rename = [(
        "V2__rename.sql",
        "ALTER TABLE users RENAME COLUMN nickname TO display_name;\n",
    )];
    for (base, why) in [
        (
            "CREATE TABLE users (id bigint, nickname text, PRIMARY KEY (id) INCLUDE (nickname));",
            "INCLUDE list of the primary key `users_pkey`",
        ),
        (
            "CREATE TABLE users (id bigint PRIMARY KEY, code text NOT NULL, nickname text,\n\
             CONSTRAINT users_code_key UNIQUE (code) INCLUDE (nickname));\n\
             CREATE TABLE orders (id bigint PRIMARY KEY, code text REFERENCES users (code));",
            "INCLUDE list of the unique constraint `users_code_key`",
        ),
        (
            "CREATE TABLE users (id bigint PRIMARY KEY, code text, nickname text);\n\
             ALTER TABLE users ADD CONSTRAINT users_code_uq UNIQUE (code) INCLUDE (nickname);",
            "INCLUDE list of the unique constraint `users_code_uq`",
        ),
        (
            "CREATE TABLE users (id bigint PRIMARY KEY, code text, nickname text);\n\
             CREATE UNIQUE INDEX users_code_idx ON users (code) INCLUDE (nickname);",
            "INCLUDE list of the unique index `users_code_idx`",
        ),
    ] {
        let detail = plan_on(base, &rename)
            .err()
            .unwrap_or_else(|| panic!("{base}: planned"));
        assert!(
            detail.contains("rename-rewrite-unsupported") && detail.contains(why),
            "{base}: {detail}"
        );
    }
    for base in [
        "CREATE TABLE users (id bigint PRIMARY KEY, code text, nickname text);\n\
         CREATE INDEX users_code_idx ON users (code) INCLUDE (nickname);",
        "CREATE TABLE users (id bigint PRIMARY KEY, code text, nickname text);\n\
         CREATE UNIQUE INDEX users_code_idx ON users (code) INCLUDE (nickname);\n\
         DROP INDEX users_code_idx;",
        "CREATE TABLE users (id bigint PRIMARY KEY, code text, nickname text,\n\
         CONSTRAINT users_code_key UNIQUE (code) INCLUDE (nickname));\n\
         ALTER TABLE users DROP CONSTRAINT users_code_key;",
    ] {
        if let Err(detail) = plan_on(base, &rename) {
            panic!("{base}: {detail}");
        }
    }
}

/// Tester cases ren_chain, ren_swap, ren_reuse: a column renamed twice in one release (the two
/// rewrites' triggers would leave the first old name NULL for the old version), and a name
/// reused while the rewrite still keeps the old column (a swap through a temporary name, an ADD
/// COLUMN of the old name: the expand step would fail, "column already exists"), are refused.
#[test]
fn the_rename_rewrite_refuses_a_column_renamed_twice_or_a_reused_name() {
    let base = "CREATE TABLE users (id bigint PRIMARY KEY, first text, last text);";
    for (files, at, why) in [
        (
            &[
                (
                    "V2__a.sql",
                    "ALTER TABLE users RENAME COLUMN first TO given;\n",
                ),
                (
                    "V3__b.sql",
                    "ALTER TABLE users RENAME COLUMN given TO forename;\n",
                ),
            ][..],
            "V3__b.sql",
            "renamed twice in one release",
        ),
        (
            &[(
                "V2__a.sql",
                "ALTER TABLE users RENAME COLUMN first TO tmp;\n\
                 ALTER TABLE users RENAME COLUMN last TO first;\n\
                 ALTER TABLE users RENAME COLUMN tmp TO last;\n",
            )][..],
            "V2__a.sql",
            "reuses the name `first`",
        ),
        (
            &[
                (
                    "V2__a.sql",
                    "ALTER TABLE users RENAME COLUMN first TO given;\n",
                ),
                ("V3__b.sql", "ALTER TABLE users ADD COLUMN first int;\n"),
            ][..],
            "V3__b.sql",
            "adds a column named `first` again",
        ),
    ] {
        let detail = plan_on(base, files)
            .err()
            .unwrap_or_else(|| panic!("{files:?}: planned"));
        assert!(
            detail.contains("rename-rewrite-unsupported")
                && detail.contains(why)
                && detail.contains(at),
            "{files:?}: {detail}"
        );
    }
    // Renames of different columns, and a new name the release had not used, are rewritten.
    let plan = plan_on(
        base,
        &[
            (
                "V2__a.sql",
                "ALTER TABLE users RENAME COLUMN first TO given;\n",
            ),
            (
                "V3__b.sql",
                "ALTER TABLE users RENAME COLUMN last TO family;\nALTER TABLE users ADD COLUMN \
                 middle text;\n",
            ),
        ],
    );
    if let Err(detail) = plan {
        panic!("{detail}");
    }
}

/// Tester case ren_collate: the new column gets the old column's collation; one the model
/// cannot spell for sure (a dot in its name) or a type it does not know is copied from the
/// catalog.
#[test]
fn the_rename_rewrite_carries_the_collation() {
    let rename = [(
        "V2__rename.sql",
        "ALTER TABLE users RENAME COLUMN code TO sku;\n",
    )];
    let plan = plan_on(
        "CREATE TABLE users (id bigint PRIMARY KEY, code text COLLATE \"C\");",
        &rename,
    )
    .unwrap();
    let sql = migrate_sql(&plan);
    assert!(
        sql.contains("ALTER TABLE users ADD COLUMN sku text COLLATE \"C\";"),
        "{sql}"
    );
    let plan = plan_on(
        "CREATE TABLE users (id bigint PRIMARY KEY, code text);",
        &rename,
    )
    .unwrap();
    assert!(
        migrate_sql(&plan).contains("ALTER TABLE users ADD COLUMN sku text;"),
        "{}",
        migrate_sql(&plan)
    );
    let plan = plan_on(
        "CREATE TABLE users (id bigint PRIMARY KEY, code text COLLATE \"en_US.utf8\");",
        &rename,
    )
    .unwrap();
    let sql = migrate_sql(&plan);
    assert!(
        sql.contains("may name a schema") && sql.contains("quote_ident(c.collname)"),
        "{sql}"
    );
}

/// Tester case ren_colgrant: column privileges are not carried (the model does not learn
/// grants); the rewrite's reminder names them, with the GRANT to add.
#[test]
fn the_rename_rewrite_reminds_of_column_privileges() {
    let plan = plan_on(
        "CREATE TABLE users (id bigint PRIMARY KEY, nickname text);\n\
         GRANT SELECT (id, nickname) ON users TO app_ro;",
        &[(
            "V2__rename.sql",
            "ALTER TABLE users RENAME COLUMN nickname TO display_name;\n",
        )],
    )
    .unwrap();
    let f = plan
        .findings
        .iter()
        .find(|f| f.rule == "rename-rewrite-incomplete")
        .expect("the reminder");
    assert!(
        f.message
            .contains("column privileges (`GRANT ... (nickname) ON users`)")
            && f.hint
                .contains("GRANT SELECT (display_name) ON users TO role"),
        "{f:?}"
    );
}
