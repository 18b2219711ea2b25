//! The online rewrite of `ALTER COLUMN ... TYPE`: what `plan` generates, how it composes with a
//! rename of the same column, and the changes it refuses, with the finding that says why.

// Only `release_dir` of the shared helpers is used here.
#[allow(dead_code)]
mod common;

use cutover_planner::dag::{Params, Plan};
use cutover_planner::error::PlanError;
use cutover_planner::plan::plan_file;

const BASE: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, code \
                    varchar(20) UNIQUE, score integer NOT NULL DEFAULT 0, note text);\n\
                    CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES \
                    users (id), total integer);\n\
                    CREATE TABLE events (id bigint, at timestamptz NOT NULL, n integer) \
                    PARTITION BY RANGE (at);\n";

fn plan(sql: &str) -> Result<Plan, PlanError> {
    let dir = common::release_dir(BASE, &[("V2__types.sql", sql)]);
    plan_file(&dir.path().join("spec.toml")).map(|p| p.plan)
}

/// The generated SQL of the step `id`.
fn sql_of(plan: &Plan, id: &str) -> String {
    let s = plan
        .steps()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"));
    let Params::Migrate(p) = &s.params else {
        unreachable!()
    };
    p.sql.join("\n")
}

/// The rule ids of the findings that stopped the plan.
fn refused(sql: &str) -> Vec<String> {
    match plan(sql) {
        Err(PlanError::Blocked(f)) => f.into_iter().map(|f| f.rule).collect(),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("planned: {sql}"),
    }
}

#[test]
fn a_widening_becomes_a_shadow_column_a_backfill_and_a_swap() {
    let p = plan("ALTER TABLE users ALTER COLUMN score TYPE bigint;\n").unwrap();
    let expand = sql_of(&p, "migrate/expand/V2__types");
    assert!(
        expand.contains("ADD COLUMN _cutover_new_score bigint;"),
        "{expand}"
    );
    assert!(
        expand.contains("CREATE VIEW %s WITH (security_invoker = true)"),
        "{expand}"
    );
    assert!(expand.contains("'cutover_v2'"), "{expand}");
    let backfill = p
        .steps()
        .find(|s| s.id == "backfill/users._cutover_new_score")
        .expect("a backfill step");
    let Params::Backfill(b) = &backfill.params else {
        unreachable!()
    };
    assert_eq!(b.value.as_deref(), Some("CAST(score AS bigint)"));
    assert!(
        b.batch_sql.contains("SET _cutover_new_score = score "),
        "{}",
        b.batch_sql
    );
    let contract = sql_of(&p, "migrate/contract/V2__types");
    let order = [
        "DROP SCHEMA IF EXISTS cutover_v2 CASCADE;",
        "DROP TRIGGER IF EXISTS",
        "VALIDATE CONSTRAINT",
        "SET DEFAULT %s",
        "ALTER TABLE users DROP COLUMN score;",
        "ALTER TABLE users RENAME COLUMN _cutover_new_score TO score;",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|o| {
            contract
                .find(o)
                .unwrap_or_else(|| panic!("{o} in {contract}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{contract}");
    let f: Vec<_> = p
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.severity.to_string()))
        .collect();
    assert!(
        f.contains(&("breaking-alter-column-type", "warning".into())),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|(r, _)| *r == "type-change-rewrite-incomplete"),
        "{f:?}"
    );
}

#[test]
fn a_using_expression_needs_the_way_back_unless_it_is_a_plain_cast() {
    assert_eq!(
        refused("ALTER TABLE users ALTER COLUMN note TYPE integer USING length(note);\n"),
        ["type-change-needs-down"]
    );
    let p = plan(
        "-- cutover:down repeat('x', note)\nALTER TABLE users ALTER COLUMN note TYPE integer \
         USING length(note);\n",
    )
    .unwrap();
    let expand = sql_of(&p, "migrate/expand/V2__types");
    assert!(
        expand.contains(
            "(SELECT repeat('x', note) FROM (SELECT NEW._cutover_new_note AS note) AS users)"
        ),
        "{expand}"
    );
    assert!(
        expand.contains("(SELECT length(note) FROM (SELECT NEW.*) AS users)"),
        "{expand}"
    );
    // Django writes the cast it means: no way back is needed.
    plan("ALTER TABLE users ALTER COLUMN note TYPE varchar(50) USING note::varchar(50);\n")
        .unwrap();
}

#[test]
fn a_rename_and_a_type_change_of_one_column_are_one_rewrite_without_a_view() {
    let p = plan(
        "ALTER TABLE users RENAME COLUMN score TO points;\nALTER TABLE users ALTER COLUMN points \
         TYPE bigint;\n",
    )
    .unwrap();
    let expand = sql_of(&p, "migrate/expand/V2__types");
    assert!(expand.contains("ADD COLUMN points bigint;"), "{expand}");
    assert!(
        expand.contains("(done by the rewrite of line 1)"),
        "{expand}"
    );
    assert!(!expand.contains("_cutover_new_"), "{expand}");
    assert!(!expand.contains("CREATE VIEW"), "{expand}");
    let backfills: Vec<&str> = p
        .steps()
        .filter(|s| s.id.starts_with("backfill/"))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(backfills, ["backfill/users.points"]);
    let contract = sql_of(&p, "migrate/contract/V2__types");
    assert!(
        contract.contains("ALTER TABLE users DROP COLUMN score;"),
        "{contract}"
    );
    assert!(!contract.contains("RENAME COLUMN points"), "{contract}");
}

#[test]
fn what_the_swap_would_lose_stops_the_plan() {
    for sql in [
        // the primary key
        "ALTER TABLE orders ALTER COLUMN id TYPE numeric;\n",
        // a UNIQUE constraint
        "ALTER TABLE users ALTER COLUMN code TYPE char(20);\n",
        // a foreign key of its own
        "ALTER TABLE orders ALTER COLUMN user_id TYPE numeric;\n",
        // a partitioned table
        "ALTER TABLE events ALTER COLUMN n TYPE bigint;\n",
    ] {
        assert!(
            refused(sql).contains(&"type-change-rewrite-unsupported".to_string()),
            "{sql}"
        );
    }
    // As written on request: the breaking finding stops the online plan.
    assert_eq!(
        refused("ALTER TABLE users ALTER COLUMN score TYPE bigint; -- cutover:as-is\n"),
        ["breaking-alter-column-type"]
    );
}

#[test]
fn the_new_version_is_started_with_the_views_first_on_its_search_path() {
    let dir = common::release_dir(
        BASE,
        &[(
            "V2__types.sql",
            "ALTER TABLE users ALTER COLUMN score TYPE bigint;\n",
        )],
    );
    let spec = dir.path().join("spec.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        format!(
            "{text}\n[[service]]\nname = \"api\"\nimage = \"api\"\ncurrent = \"1\"\ntarget = \
             \"2\"\nport = 8080\nenv = {{ PGOPTIONS = \"-c statement_timeout=5s\" }}\n\
             [service.health]\npath = \"/health\"\n[service.strategy]\nkind = \
             \"blue-green\"\n[router]\nkind = \"nginx\"\nupstream_file = \"up.conf\"\n"
        ),
    )
    .unwrap();
    let p = plan_file(&spec).unwrap().plan;
    let deploy = p.steps().find(|s| s.id == "deploy/api").unwrap();
    let Params::Deploy(d) = &deploy.params else {
        unreachable!()
    };
    assert_eq!(
        d.env["PGOPTIONS"],
        "-c statement_timeout=5s -c search_path=cutover_v2,\"$user\",public"
    );
}

#[test]
fn what_the_rewrites_cannot_keep_apart_stops_the_plan() {
    for (sql, later, rule) in [
        // Two columns in one statement: the rewrite replaces the statement.
        (
            "ALTER TABLE users ALTER COLUMN score TYPE bigint, ALTER COLUMN note TYPE varchar(9);",
            None,
            "type-change-rewrite-unsupported",
        ),
        // The same column twice, or renamed in another migration.
        (
            "ALTER TABLE users ALTER COLUMN score TYPE bigint;",
            Some("ALTER TABLE users ALTER COLUMN score TYPE numeric(20,0);"),
            "type-change-rewrite-unsupported",
        ),
        (
            "ALTER TABLE users ALTER COLUMN score TYPE bigint;",
            Some("ALTER TABLE users RENAME COLUMN score TO points;"),
            "type-change-rewrite-unsupported",
        ),
        // A type changed in place (no rewrite) after a rename of the column, whose trigger uses
        // it; and a conversion reading a column whose type changed before it, which holds its
        // old value until the contract.
        (
            "ALTER TABLE orders RENAME COLUMN ref TO code;",
            Some("ALTER TABLE orders ALTER COLUMN code TYPE varchar(40);"),
            "type-change-rewrite-unsupported",
        ),
        (
            "ALTER TABLE orders RENAME COLUMN ref TO code;\nALTER TABLE orders ALTER COLUMN code \
             TYPE text;",
            None,
            "type-change-rewrite-unsupported",
        ),
        (
            "-- cutover:down (score / 10)::integer\nALTER TABLE users ALTER COLUMN score TYPE \
             text USING (score * 10)::text;\n-- cutover:down split_part(total, '-', \
             1)::integer\nALTER TABLE orders ALTER COLUMN total TYPE text USING total::text;",
            Some(
                "-- cutover:down split_part(note, '-', 1)\nALTER TABLE users ALTER COLUMN note TYPE \
                 varchar(300) USING note || '-' || score;",
            ),
            "type-change-rewrite-unsupported",
        ),
        // A conversion by the session's TimeZone, a target type without equality.
        (
            "ALTER TABLE orders ALTER COLUMN seen TYPE timestamptz;",
            None,
            "type-change-needs-down",
        ),
        (
            "ALTER TABLE users ALTER COLUMN note TYPE json USING note::json;",
            None,
            "type-change-rewrite-unsupported",
        ),
        // Nothing for the backfill to walk.
        (
            "ALTER TABLE logs ALTER COLUMN level TYPE bigint;",
            None,
            "backfill-key-unsupported",
        ),
    ] {
        let base = format!(
            "{BASE}ALTER TABLE orders ADD COLUMN seen timestamp;\nCREATE TABLE logs (msg text, \
             level integer);\nALTER TABLE orders ADD COLUMN ref varchar(20);\n"
        );
        let mut files = vec![("V2__a.sql", sql)];
        files.extend(later.map(|l| ("V3__b.sql", l)));
        let dir = common::release_dir(&base, &files);
        let rules: Vec<String> = match plan_file(&dir.path().join("spec.toml")) {
            Err(PlanError::Blocked(f)) => f.into_iter().map(|f| f.rule).collect(),
            Err(e) => panic!("{e}"),
            // Found while building the steps: an error finding, which `apply` refuses.
            Ok(p) => p
                .plan
                .findings
                .into_iter()
                .filter(|f| f.severity.to_string() == "error")
                .map(|f| f.rule)
                .collect(),
        };
        assert!(
            rules.iter().any(|r| r == rule),
            "{sql} {later:?}: {rules:?}"
        );
    }
}

#[test]
fn the_enum_idiom_sets_the_new_default_and_a_renamed_column_converts_its_old_values() {
    let p = plan(
        "CREATE TYPE mood AS ENUM ('ok', 'sad');\nALTER TABLE users ALTER COLUMN note DROP \
         DEFAULT, ALTER COLUMN note TYPE mood USING note::mood, ALTER COLUMN note SET DEFAULT \
         'ok';\n",
    )
    .unwrap();
    let contract = sql_of(&p, "migrate/contract/V2__types");
    assert!(
        contract.contains("ALTER TABLE users ALTER COLUMN _cutover_new_note SET DEFAULT 'ok';"),
        "{contract}"
    );
    assert!(
        !contract.contains("goes to _cutover_new_note"),
        "{contract}"
    );
    let p = plan(
        "ALTER TABLE users RENAME COLUMN score TO points;\n-- cutover:down (points * 10)::integer\n\
         ALTER TABLE users ALTER COLUMN points TYPE numeric USING points / 10.0;\n",
    )
    .unwrap();
    let b = p
        .steps()
        .find_map(|s| match &s.params {
            Params::Backfill(b) => Some(b.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        b.batch_sql
            .contains("SET points = (SELECT points / 10.0 FROM (SELECT score AS points) AS users)"),
        "{}",
        b.batch_sql
    );
}

#[test]
fn a_table_rename_keeps_the_old_name_as_a_view_until_the_contract() {
    let p = plan("ALTER TABLE orders RENAME TO purchases;\n").unwrap();
    let expand = sql_of(&p, "migrate/expand/V2__types");
    assert!(
        expand.contains("ALTER TABLE orders RENAME TO purchases;")
            && expand.contains("'CREATE VIEW %s AS %s', 'orders', 'SELECT * FROM purchases'"),
        "{expand}"
    );
    assert_eq!(
        sql_of(&p, "migrate/contract/V2__types"),
        "-- line 1: ALTER TABLE orders RENAME TO purchases\nDROP VIEW IF EXISTS orders;"
    );
    assert!(!p.steps().any(|s| s.id.starts_with("backfill/")));
    // As written on request; an ignore says the migration keeps the name itself.
    assert_eq!(
        refused("ALTER TABLE orders RENAME TO purchases; -- cutover:as-is\n"),
        ["breaking-rename-table"]
    );
    let p = plan(
        "-- cutover:ignore breaking-rename-table: the view keeps 1.0.0 working\nALTER TABLE \
         orders RENAME TO purchases;\nCREATE VIEW orders AS SELECT * FROM purchases;\n",
    )
    .unwrap();
    let sql = sql_of(&p, "migrate/expand/V2__types");
    assert_eq!(sql.matches("CREATE VIEW").count(), 1, "{sql}");
}

#[test]
fn a_table_renamed_after_a_rewrite_of_its_columns_stops_the_plan() {
    let dir = common::release_dir(
        BASE,
        &[
            (
                "V2__a.sql",
                "ALTER TABLE users RENAME COLUMN note TO memo;\n",
            ),
            ("V3__b.sql", "ALTER TABLE users RENAME TO members;\n"),
        ],
    );
    match plan_file(&dir.path().join("spec.toml")) {
        Err(PlanError::Blocked(f)) => {
            assert!(
                f.iter().any(|f| f.rule == "rename-rewrite-unsupported"),
                "{f:?}"
            )
        }
        other => panic!("{:?}", other.map(|p| p.plan.findings)),
    }
    // The other order works: the column rewrite names the table by its new name.
    let dir = common::release_dir(
        BASE,
        &[
            ("V2__a.sql", "ALTER TABLE users RENAME TO members;\n"),
            (
                "V3__b.sql",
                "ALTER TABLE members RENAME COLUMN note TO memo;\n",
            ),
        ],
    );
    plan_file(&dir.path().join("spec.toml")).unwrap();
}

#[test]
fn not_null_with_an_up_value_is_filled_in_phases_and_without_one_stays_as_it_was() {
    let p = plan(
        "-- cutover:up 'n/a'\nALTER TABLE users ALTER COLUMN note SET NOT NULL;\n-- cutover:up \
         0\nALTER TABLE orders ADD COLUMN qty bigint NOT NULL CHECK (qty IS NOT NULL);\n",
    )
    .unwrap();
    let expand = sql_of(&p, "migrate/expand/V2__types");
    assert!(
        expand.contains("ALTER TABLE orders ADD COLUMN qty bigint CHECK (qty IS NOT NULL);"),
        "{expand}"
    );
    assert!(expand.contains("WHEN (NEW.note IS NULL)"), "{expand}");
    let contract = sql_of(&p, "migrate/contract/V2__types");
    assert!(
        contract.contains("ALTER TABLE users ALTER COLUMN note SET NOT NULL;"),
        "{contract}"
    );
    assert!(
        contract.contains("ALTER TABLE orders ALTER COLUMN qty SET NOT NULL;"),
        "{contract}"
    );
    let backfills: Vec<&str> = p
        .steps()
        .filter(|s| s.id.starts_with("backfill/"))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(backfills, ["backfill/users.note", "backfill/orders.qty"]);
    assert!(
        p.findings.iter().all(|f| f.rule == "not-null-via-check"),
        "{:?}",
        p.findings
    );
    // Without a value, a required column still stops the plan.
    assert!(
        refused("ALTER TABLE orders ADD COLUMN qty integer NOT NULL;\n")
            .contains(&"breaking-add-required-column".to_string())
    );
}

#[test]
fn an_up_or_down_comment_its_statement_has_no_use_for_is_reported() {
    let a = common::release(
        BASE,
        &[(
            "V2__a.sql",
            "-- cutover:up 0\nALTER TABLE users ADD COLUMN extra text;\n-- cutover:down 1\nALTER \
             TABLE users ADD COLUMN more text;\n",
        )],
    );
    let unused: Vec<u32> = a
        .findings
        .iter()
        .filter(|f| f.rule == "unused-ignore")
        .map(|f| f.line)
        .collect();
    assert_eq!(unused, [1, 3]);
}

#[test]
fn a_fill_another_rewrite_of_the_release_touches_stops_the_plan() {
    for (v2, v3) in [
        // on a renamed column; naming a renamed one
        (
            "ALTER TABLE users RENAME COLUMN note TO memo;",
            "-- cutover:up 'n/a'\nALTER TABLE users ALTER COLUMN memo SET NOT NULL;",
        ),
        (
            "ALTER TABLE users RENAME COLUMN name TO full_name;",
            "-- cutover:up 'x-' || name\nALTER TABLE users ALTER COLUMN note SET NOT NULL;",
        ),
        // after a type change; before a rename; twice; naming another fill's column
        (
            "ALTER TABLE users ALTER COLUMN note TYPE varchar(10);",
            "-- cutover:up 'n/a'\nALTER TABLE users ALTER COLUMN note SET NOT NULL;",
        ),
        (
            "-- cutover:up 'n/a'\nALTER TABLE users ALTER COLUMN note SET NOT NULL;",
            "ALTER TABLE users RENAME COLUMN note TO memo;",
        ),
        (
            "-- cutover:up 'n/a'\nALTER TABLE users ADD COLUMN tier text NOT NULL;",
            "-- cutover:up tier || '-' || id\nALTER TABLE users ALTER COLUMN note SET NOT NULL;",
        ),
    ] {
        let dir = common::release_dir(BASE, &[("V2__a.sql", v2), ("V3__b.sql", v3)]);
        match plan_file(&dir.path().join("spec.toml")) {
            Err(PlanError::Blocked(f)) => assert!(
                f.iter().any(|f| f.rule == "not-null-fill-unsupported"),
                "{v2} / {v3}: {f:?}"
            ),
            other => panic!("{v2} / {v3}: {:?}", other.map(|p| p.plan.findings)),
        }
    }
    // A uuid key cannot be walked in integer ranges.
    let dir = common::release_dir(
        "CREATE TABLE tokens (id uuid PRIMARY KEY, label text);\n",
        &[(
            "V2__a.sql",
            "-- cutover:up 'none'\nALTER TABLE tokens ALTER COLUMN label SET NOT NULL;",
        )],
    );
    let p = plan_file(&dir.path().join("spec.toml")).unwrap().plan;
    assert!(
        p.findings
            .iter()
            .any(|f| f.rule == "backfill-key-unsupported" && f.severity.to_string() == "error"),
        "{:?}",
        p.findings
    );
}

#[test]
fn a_rewrite_after_a_type_change_of_its_table_runs_around_the_new_versions_view() {
    let dir = common::release_dir(
        BASE,
        &[
            (
                "V2__a.sql",
                "ALTER TABLE users ALTER COLUMN score TYPE bigint;\n",
            ),
            (
                "V3__b.sql",
                "ALTER TABLE users RENAME COLUMN note TO memo;\n",
            ),
        ],
    );
    let p = plan_file(&dir.path().join("spec.toml")).unwrap().plan;
    let expand = sql_of(&p, "migrate/expand/V3__b");
    assert!(
        expand.starts_with("-- the new version's views go while the columns they show change")
            && expand.contains("ADD COLUMN memo")
            && expand.trim_end().ends_with("$cutover$;"),
        "{expand}"
    );
}

#[test]
fn one_tables_rewrites_in_one_migration_share_one_trigger_and_one_backfill() {
    let p = plan(
        "ALTER TABLE users RENAME COLUMN name TO full_name;\nALTER TABLE orders RENAME COLUMN \
         total TO amount;\nALTER TABLE users ALTER COLUMN score TYPE bigint;\n",
    )
    .unwrap();
    let expand = sql_of(&p, "migrate/expand/V2__types");
    // users: one function for both columns, made after both new columns exist; orders: its own.
    assert_eq!(expand.matches("CREATE FUNCTION").count(), 2, "{expand}");
    assert_eq!(expand.matches("CREATE TRIGGER").count(), 4, "{expand}");
    let users_fn = "cutover_sync_users_name_full_name_score__cutover_new_score()";
    let made = expand
        .find(&format!("CREATE FUNCTION {users_fn}"))
        .expect("the users function");
    assert!(
        expand.find("ADD COLUMN _cutover_new_score bigint").unwrap() < made
            && expand.find("ADD COLUMN full_name").unwrap() < made,
        "{expand}"
    );
    // Both pieces in the one function: the plain rename's and the conversion's, with the
    // directive the conversion needs.
    let body = &expand[made..];
    assert!(
        body.contains("#variable_conflict use_column")
            && body.contains("NEW.full_name := NEW.name;")
            && body.contains("NEW._cutover_new_score := NEW.score;"),
        "{body}"
    );
    // The update trigger fires for either column; the conversion's part still leaves the
    // backfill's batches alone.
    assert!(
        body.contains(
            "WHEN ((NEW.name IS DISTINCT FROM OLD.name OR NEW.full_name IS DISTINCT FROM \
             NEW.name)\n    OR ((NEW.score IS DISTINCT FROM OLD.score"
        ),
        "{body}"
    );
    let backfills: Vec<&str> = p
        .steps()
        .filter(|s| s.id.starts_with("backfill/"))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        backfills,
        [
            "backfill/users.full_name+_cutover_new_score",
            "backfill/orders.amount"
        ]
    );
    let Params::Backfill(b) = &p.steps().find(|s| s.id == backfills[0]).unwrap().params else {
        unreachable!()
    };
    assert!(
        b.batch_sql.contains(
            "SET full_name = name, _cutover_new_score = score WHERE id > $1 AND id <= (SELECT \
             hi FROM bound) AND (full_name IS DISTINCT FROM name OR _cutover_new_score IS \
             DISTINCT FROM CAST(score AS bigint))"
        ),
        "{}",
        b.batch_sql
    );
    assert_eq!(b.more.len(), 1);
    assert_eq!(b.more[0].to_column, "_cutover_new_score");
    // Undo and contract drop the shared function (each rename's part drops it if it is there).
    let contract = sql_of(&p, "migrate/contract/V2__types");
    assert!(
        contract.contains(&format!("DROP FUNCTION IF EXISTS {users_fn};")),
        "{contract}"
    );
    assert!(
        !contract.contains("cutover_sync_users_name_full_name()"),
        "{contract}"
    );
}

#[test]
fn indexes_on_a_renamed_or_retyped_column_are_built_on_the_new_one_and_keep_their_names() {
    let base = format!(
        "{BASE}CREATE INDEX users_name_idx ON users (lower(name)) WHERE note IS NOT NULL;\n\
         CREATE INDEX users_score_note_idx ON users USING btree (score DESC, note);\n\
         CREATE INDEX orders_total_idx ON orders (total);\n"
    );
    let dir = common::release_dir(
        &base,
        &[
            (
                "V2__names.sql",
                "ALTER TABLE users RENAME COLUMN note TO remark;\n",
            ),
            (
                "V3__types.sql",
                "ALTER TABLE users RENAME COLUMN name TO full_name;\nALTER TABLE users ALTER \
                 COLUMN score TYPE bigint;\n",
            ),
        ],
    );
    let p = plan_file(&dir.path().join("spec.toml")).unwrap().plan;
    let built = |id: &str| {
        let s = p
            .steps()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("{id}"));
        let Params::Backfill(b) = &s.params else {
            unreachable!()
        };
        (b.indexes.clone(), b.lock_timeout, s.description.clone())
    };
    // V2: both indexes use note (one in its WHERE: dropping note drops it too), and are built
    // on remark.
    let (v2, timeout, _) = built("backfill/users.remark");
    assert_eq!(
        v2,
        [
            "CREATE INDEX CONCURRENTLY users_name_idx_cutover_remark ON users (lower(name)) WHERE \
             remark IS NOT NULL;",
            "CREATE INDEX CONCURRENTLY users_score_note_idx_cutover_remark ON users USING btree \
             (score DESC, remark);",
        ]
    );
    assert!(timeout.is_some());
    // V3 sees V2's rename: its copies name `remark`, and the expression and partial index's
    // references to the renamed column are replaced too. orders' index is not touched.
    let (v3, _, description) = built("backfill/users.full_name+_cutover_new_score");
    assert_eq!(
        v3,
        [
            "CREATE INDEX CONCURRENTLY users_name_idx_cutover_full_name ON users \
             (lower(full_name)) WHERE remark IS NOT NULL;",
            "CREATE INDEX CONCURRENTLY users_score_note_idx_cutover__cutover_new_score ON users \
             USING btree (_cutover_new_score DESC, remark);",
        ]
    );
    assert!(
        description.contains("build their 2 indexes"),
        "{description}"
    );
    // Contract: once the old column and its index are gone, the new index takes its name.
    let contract = sql_of(&p, "migrate/contract/V3__types");
    let dropped = contract
        .find("ALTER TABLE users DROP COLUMN name;")
        .unwrap();
    let renamed = contract
        .find("ALTER INDEX IF EXISTS users_name_idx_cutover_full_name RENAME TO users_name_idx;")
        .unwrap_or_else(|| panic!("{contract}"));
    assert!(dropped < renamed, "{contract}");
    assert!(
        contract.contains(
            "ALTER INDEX IF EXISTS users_score_note_idx_cutover__cutover_new_score RENAME TO \
             users_score_note_idx;"
        ),
        "{contract}"
    );
    let said = p
        .findings
        .iter()
        .find(|f| f.rule == "rename-rewrite-incomplete" && f.file.contains("V3"))
        .unwrap();
    assert!(
        said.message
            .contains("builds its index `users_name_idx` on the new column"),
        "{}",
        said.message
    );
}

/// The plan of `files` after a base of `base`, or the rules that stopped it.
fn plan_with(base: &str, files: &[(&str, &str)]) -> Result<Plan, Vec<String>> {
    let dir = common::release_dir(base, files);
    match plan_file(&dir.path().join("spec.toml")) {
        Ok(p) => Ok(p.plan),
        Err(PlanError::Blocked(f)) => Err(f.into_iter().map(|f| f.rule).collect()),
        Err(e) => panic!("{e}"),
    }
}

/// The index builds of the backfill `id` in `p`.
fn builds(p: &Plan, id: &str) -> Vec<String> {
    let s = p
        .steps()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("{id}"));
    let Params::Backfill(b) = &s.params else {
        unreachable!()
    };
    b.indexes.clone()
}

#[test]
fn unique_and_shared_indexes_keep_their_uniqueness_columns_and_final_names() {
    let base = "CREATE TABLE items (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, qty integer, \
                price integer, sku text);\nCREATE UNIQUE INDEX items_sku_live ON items (lower(sku)) \
                WHERE email <> '';\nCREATE INDEX items_qty_price_idx ON items (qty, price);\nCREATE \
                INDEX items_sku_idx ON items (sku);\n";
    // A rename carries the UNIQUE constraint and the unique index; an ALTER INDEX RENAME later
    // names the carried copy's final name.
    let p = plan_with(
        base,
        &[
            (
                "V2__a.sql",
                "ALTER TABLE items RENAME COLUMN email TO mail;\nALTER TABLE items RENAME COLUMN \
                 sku TO code;\nALTER INDEX items_sku_idx RENAME TO items_code_idx;\n",
            ),
            (
                "V3__b.sql",
                "ALTER TABLE items ALTER COLUMN qty TYPE bigint;\nALTER TABLE items ALTER COLUMN \
                 price TYPE bigint;\n",
            ),
        ],
    )
    .unwrap();
    assert_eq!(
        builds(&p, "backfill/items.mail+code"),
        [
            "CREATE UNIQUE INDEX CONCURRENTLY items_email_key_cutover_mail ON items (mail);",
            "CREATE INDEX CONCURRENTLY items_sku_idx_cutover_code ON items (code);",
            "CREATE UNIQUE INDEX CONCURRENTLY items_sku_live_cutover_code ON items (lower(code)) \
             WHERE mail <> '';",
        ]
    );
    let contract = sql_of(&p, "migrate/contract/V2__a");
    assert!(
        contract.contains(
            "ALTER TABLE items ADD CONSTRAINT items_email_key UNIQUE USING INDEX \
             items_email_key_cutover_mail;"
        ) && contract
            .contains("ALTER INDEX IF EXISTS items_sku_idx_cutover_code RENAME TO items_code_idx;"),
        "{contract}"
    );
    // Two type changes of one index's columns in one migration: one copy, on both new columns.
    assert_eq!(
        builds(&p, "backfill/items._cutover_new_qty+_cutover_new_price"),
        [
            "CREATE INDEX CONCURRENTLY items_qty_price_idx_cutover__cutover_new_price ON items \
          (_cutover_new_qty, _cutover_new_price);"
        ]
    );
    // The same two in different migrations, or an index created on a retyped column after it:
    // refused, since the old column and every copy naming it go at the first contract.
    for later in [
        "ALTER TABLE items ALTER COLUMN price TYPE bigint;\n",
        "ALTER TABLE items RENAME COLUMN price TO cost;\n",
        "CREATE INDEX CONCURRENTLY items_qty_idx ON items (qty);\n",
    ] {
        let rules = plan_with(
            base,
            &[
                (
                    "V2__a.sql",
                    "ALTER TABLE items ALTER COLUMN qty TYPE bigint;\n",
                ),
                ("V3__b.sql", later),
            ],
        )
        .unwrap_err();
        assert!(
            rules.contains(&"type-change-rewrite-unsupported".to_string()),
            "{later}: {rules:?}"
        );
    }
    // A type change of a column a unique expression index uses is refused, not done without it.
    let rules = plan_with(
        base,
        &[(
            "V2__a.sql",
            "ALTER TABLE items ALTER COLUMN sku TYPE varchar(80);\n",
        )],
    )
    .unwrap_err();
    assert!(
        rules.contains(&"type-change-rewrite-unsupported".to_string()),
        "{rules:?}"
    );
    // After a table rename, a carried index names the table by its new name.
    let p = plan_with(
        base,
        &[
            ("V2__a.sql", "ALTER TABLE items RENAME TO goods;\n"),
            (
                "V3__b.sql",
                "ALTER TABLE goods RENAME COLUMN price TO cost;\n",
            ),
        ],
    )
    .unwrap();
    assert_eq!(
        builds(&p, "backfill/goods.cost"),
        ["CREATE INDEX CONCURRENTLY items_qty_price_idx_cutover_cost ON goods (qty, cost);"]
    );
}

#[test]
fn a_unique_constraint_made_from_an_index_is_carried_once_as_the_constraint() {
    // The safe recipe for a UNIQUE constraint (and what cutover itself runs for one): the
    // index, then the constraint using it, which renames the index to the constraint's name.
    let base = "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\nCREATE UNIQUE \
                INDEX users_email_idx ON users (email);\nALTER TABLE users ADD CONSTRAINT \
                users_email_key UNIQUE USING INDEX users_email_idx;\n";
    let p = plan_with(
        base,
        &[(
            "V2__a.sql",
            "ALTER TABLE users RENAME COLUMN email TO mail;\n",
        )],
    )
    .unwrap();
    assert_eq!(
        builds(&p, "backfill/users.mail"),
        ["CREATE UNIQUE INDEX CONCURRENTLY users_email_key_cutover_mail ON users (mail);"]
    );
    let contract = sql_of(&p, "migrate/contract/V2__a");
    assert!(
        contract.contains(
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX \
             users_email_key_cutover_mail;"
        ) && !contract.contains("ALTER INDEX"),
        "{contract}"
    );
}
