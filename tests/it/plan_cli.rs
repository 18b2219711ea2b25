//! `cutover plan` on the bundled samples: a snapshot of every format for every sample, plus the
//! properties reviewers rely on.

use crate::common::{SAMPLES, assert_no_panic, cutover, transcript};
use serde_json::Value;

#[test]
fn every_format_of_every_sample_matches_its_snapshot() {
    for sample in SAMPLES {
        for format in ["text", "json", "markdown", "mermaid", "dot"] {
            let spec = format!("plans/{sample}.toml");
            let out = cutover(&["plan", &spec, "--format", format]);
            assert_no_panic(&out);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{sample} {format}: {}",
                transcript(&out)
            );
            insta::assert_snapshot!(format!("plan-{sample}-{format}"), transcript(&out));
        }
    }
}

fn plan_json(sample: &str) -> Value {
    let out = cutover(&["plan", &format!("plans/{sample}.toml"), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    serde_json::from_slice(&out.stdout).expect("plan --format json prints JSON")
}

#[test]
fn json_has_the_documented_fields() {
    for sample in SAMPLES {
        let doc = plan_json(sample);
        assert_eq!(
            doc["plan_hash"].as_str().map(str::len),
            Some(64),
            "{sample}"
        );
        let steps = doc["steps"].as_array().expect("steps[]");
        assert!(!steps.is_empty());
        for s in steps {
            for key in [
                "id",
                "kind",
                "depends_on",
                "reversible",
                "idempotent",
                "undo",
                "params",
            ] {
                assert!(s.get(key).is_some(), "{sample}: step without `{key}`: {s}");
            }
            if s["kind"] == "migrate" {
                assert!(
                    matches!(s["phase"].as_str(), Some("expand" | "contract")),
                    "{s}"
                );
            }
        }
        for f in doc["findings"].as_array().expect("findings[]") {
            for key in ["rule", "severity", "file", "line", "message"] {
                assert!(
                    f.get(key).is_some(),
                    "{sample}: finding without `{key}`: {f}"
                );
            }
        }
    }
}

#[test]
fn the_seed_rename_is_planned_in_phases_with_generated_sql() {
    let doc = plan_json("canary-rename");
    let steps = doc["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let pos = |id: &str| {
        ids.iter()
            .position(|x| *x == id)
            .unwrap_or_else(|| panic!("no step {id} in {ids:?}"))
    };
    let expand = pos("migrate/expand/V2__rename_name_to_full_name");
    let backfill = pos("backfill/users.full_name");
    let first_shift = pos("shift/api/10");
    let retire = pos("retire/api");
    let contract = pos("migrate/contract/V2__rename_name_to_full_name");
    assert!(
        pos("backup/main") < expand
            && expand < backfill
            && backfill < first_shift
            && first_shift < retire
            && retire < contract
    );

    let expand_sql = steps[expand]["params"]["generated_sql"].as_str().unwrap();
    assert!(
        expand_sql.contains("ALTER TABLE users ADD COLUMN full_name varchar(255);"),
        "{expand_sql}"
    );
    assert!(
        expand_sql.contains("BEFORE INSERT ON users")
            && expand_sql.contains("BEFORE UPDATE ON users"),
        "{expand_sql}"
    );
    assert!(
        !expand_sql.contains("RENAME COLUMN name TO full_name;"),
        "the breaking statement must not run as written"
    );
    let contract_sql = steps[contract]["params"]["generated_sql"].as_str().unwrap();
    assert!(
        contract_sql
            .contains("DROP TRIGGER IF EXISTS cutover_sync_users_name_full_name_ins ON users;")
    );
    assert!(
        contract_sql
            .contains("DROP TRIGGER IF EXISTS cutover_sync_users_name_full_name_upd ON users;")
    );
    assert!(
        contract_sql
            .trim_end()
            .ends_with("ALTER TABLE users DROP COLUMN name;"),
        "{contract_sql}"
    );
    // name was NOT NULL, so full_name gets it without a table-scanning SET NOT NULL.
    assert!(contract_sql.contains("CHECK (full_name IS NOT NULL) NOT VALID"));
    assert_eq!(steps[backfill]["params"]["key"], "id");
    assert_eq!(steps[contract]["reversible"], false);
    assert_eq!(
        doc["point_of_no_return"],
        "migrate/contract/V2__rename_name_to_full_name"
    );
    // The expand step can be undone exactly.
    let undo = steps[expand]["params"]["undo_sql"].as_str().unwrap();
    assert!(
        undo.contains("ALTER TABLE users DROP COLUMN IF EXISTS full_name;"),
        "{undo}"
    );
}

#[test]
fn recreate_stops_the_old_version_first_and_reports_downtime() {
    let doc = plan_json("recreate");
    let ids: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let retire = ids.iter().position(|i| *i == "retire/api").unwrap();
    let first_migrate = ids.iter().position(|i| i.starts_with("migrate/")).unwrap();
    assert!(retire < first_migrate);
    assert_eq!(doc["downtime"]["from"], "retire/api");
    assert_eq!(doc["downtime"]["to"], "health/api");
    let text = String::from_utf8(cutover(&["plan", "plans/recreate.toml"]).stdout).unwrap();
    assert!(
        text.contains("Downtime: from `retire/api` until `health/api` passes"),
        "{text}"
    );
}

#[test]
fn independent_steps_are_parallel_in_the_dag() {
    // In the rename canary the new version can start while the backfill runs: neither depends on
    // the other, both depend on the expand migration.
    let doc = plan_json("canary-rename");
    let steps = doc["steps"].as_array().unwrap();
    let find = |id: &str| steps.iter().find(|s| s["id"] == id).unwrap();
    let deps = |id: &str| {
        find(id)["depends_on"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        deps("deploy/api"),
        vec!["migrate/expand/V2__rename_name_to_full_name"]
    );
    assert_eq!(
        deps("backfill/users.full_name"),
        vec!["migrate/expand/V2__rename_name_to_full_name"]
    );
}

#[test]
fn plan_hash_does_not_depend_on_the_directory_it_is_run_from() {
    let a = plan_json("canary-rename")["plan_hash"].clone();
    let plans = crate::common::root().join("plans");
    let out =
        crate::common::cutover_in(&plans, &["plan", "canary-rename.toml", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a, b["plan_hash"]);
}

#[test]
fn markdown_leads_with_a_summary_line_and_stays_under_the_comment_limit() {
    for sample in SAMPLES {
        let out = cutover(&[
            "plan",
            &format!("plans/{sample}.toml"),
            "--format",
            "markdown",
        ]);
        let md = String::from_utf8(out.stdout).unwrap();
        assert!(md.starts_with("### cutover plan `"), "{md}");
        assert!(md.len() < 60_000);
        assert!(md.contains("```mermaid"));
    }
}

#[test]
fn help_teaches_the_commands_and_exit_codes() {
    let out = cutover(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "plan",
        "lint",
        "Exit codes: 0 ok, 1 bad input or internal error, 2 error-severity findings",
        "--format markdown",
    ] {
        assert!(help.contains(needle), "missing {needle:?} in:\n{help}");
    }
    let out = cutover(&["plan", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("point after which a rollback needs the backup"),
        "{help}"
    );
}

#[test]
fn usage_errors_exit_1_not_2() {
    // 2 means "error findings" to CI; a typo in the command line must not look like that.
    let out = cutover(&["plan", "plans/canary.toml", "--format", "yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let out = cutover(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
}

#[test]
fn backups_and_deploys_of_independent_databases_and_services_run_in_parallel() {
    let out = cutover(&[
        "plan",
        "tests/fixtures/two-databases/spec.toml",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = doc["steps"].as_array().unwrap();
    let deps = |id: &str| -> Vec<String> {
        let s = steps
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no step {id}"));
        s["depends_on"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect()
    };
    // Both backups wait only for preflight: they run at the same time.
    assert_eq!(deps("backup/users"), ["preflight"]);
    assert_eq!(deps("backup/billing"), ["preflight"]);
    // Migration ids carry the database when there are several.
    assert_eq!(
        deps("migrate/expand/users/V2__rename_name_to_full_name"),
        ["backup/users"]
    );
    // `api` uses only `users`: its first batch starts without waiting for billing's migrations.
    assert_eq!(
        deps("deploy/api/batch-1"),
        ["migrate/expand/users/V2__rename_name_to_full_name"]
    );
    assert_eq!(
        deps("deploy/billing"),
        ["migrate/expand/billing/V6__validate_orders_fk"]
    );
    // Contract migrations of both databases wait for both old versions to be retired.
    for c in [
        "migrate/contract/users/V2__rename_name_to_full_name",
        "migrate/contract/billing/V7__drop_users_legacy_flags",
    ] {
        let d = deps(c);
        assert!(
            d.contains(&"retire/api/batch-2".to_string())
                && d.contains(&"retire/billing".to_string()),
            "{c}: {d:?}"
        );
    }
}

/// The rename's backfill walks an integer key: a table keyed by uuid (or a composite key) is an
/// error finding at plan time, not a cast error half-way through the release.
#[test]
fn a_rename_on_a_table_without_an_integer_key_is_an_error_finding() {
    for (create, what) in [
        (
            "CREATE TABLE users (id uuid PRIMARY KEY, name text NOT NULL);",
            "`id` of type uuid",
        ),
        (
            "CREATE TABLE users (tenant bigint, id bigint, name text, PRIMARY KEY (tenant, id));",
            "a composite key (bigint, bigint)",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("m")).unwrap();
        std::fs::write(dir.path().join("m/V1__users.sql"), create).unwrap();
        std::fs::write(
            dir.path().join("m/V2__rename.sql"),
            "ALTER TABLE users RENAME COLUMN name TO full_name;",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("spec.toml"),
            "[release]\nname = \"r\"\n\n[[database]]\nname = \"main\"\nurl_env \
             = \"DATABASE_URL\"\nmigrations = \"m\"\nbaseline = 1\n",
        )
        .unwrap();
        let out = cutover(&["plan", dir.path().join("spec.toml").to_str().unwrap()]);
        assert_no_panic(&out);
        let text = transcript(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            text.contains("backfill-key-unsupported") && text.contains(what),
            "{text}"
        );
    }
    // An integer key is fine.
    let doc = plan_json("canary-rename");
    assert!(
        !doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "backfill-key-unsupported")
    );
}

/// A release spec in a temporary directory whose `m/` holds `files`; no services, so an online
/// release unless `recreate` adds a recreate service.
fn release_dir(files: &[(&str, &str)], recreate: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("m")).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join("m").join(name), sql).unwrap();
    }
    let service = if recreate {
        "[[service]]\nname = \"api\"\nimage = \"api\"\ncurrent = \"1\"\ntarget = \"2\"\nport = \
         3333\n\n[service.strategy]\nkind = \"recreate\"\n\n"
    } else {
        ""
    };
    std::fs::write(
        dir.path().join("spec.toml"),
        format!(
            "[release]\nname = \"r\"\n\n{service}[[database]]\nname = \"main\"\nurl_env \
             = \"DATABASE_URL\"\nmigrations = \"m\"\nbaseline = 1\n"
        ),
    )
    .unwrap();
    dir
}

/// Renaming a column that is a primary key, an identity, generated or serial column, or that a
/// foreign key or a view depends on, cannot be rewritten into add/copy/drop: the copy would leave
/// the table without its key or identity, or the contract step's DROP COLUMN would fail after
/// traffic moved (field case f07). `plan` stops with an error naming the file, line and why, in
/// text and in JSON; the same rename in a recreate release runs as written.
#[test]
fn renaming_what_a_copy_cannot_carry_stops_the_plan_with_file_and_line() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "primary key with a foreign key referencing it",
            "CREATE TABLE members (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                display_name text NOT NULL);
CREATE TABLE posts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, member_id bigint NOT NULL \
    REFERENCES members (id), body text);",
            "ALTER TABLE members RENAME COLUMN id TO member_id;",
            &[
                "`id` is the primary key (`members_pkey`)",
                "an identity column (GENERATED ALWAYS AS IDENTITY)",
                "referenced by the foreign key `posts_member_id_fkey` of `posts`",
            ],
        ),
        (
            "primary key, no foreign key",
            "CREATE TABLE members (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, display_name \
             text NOT NULL);",
            "ALTER TABLE members RENAME COLUMN id TO member_id;",
            &["`id` is the primary key (`members_pkey`) and an identity column"],
        ),
        (
            "primary key declared pg_dump's way",
            "CREATE TABLE public.accounts (account_no integer NOT NULL, name text);
ALTER TABLE ONLY public.accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY (account_no);",
            "ALTER TABLE accounts RENAME COLUMN account_no TO number;",
            &["`account_no` is the primary key (`accounts_pkey`)"],
        ),
        (
            "identity column outside the key",
            "CREATE TABLE tickets (code text PRIMARY KEY, seq bigint GENERATED BY DEFAULT AS \
             IDENTITY, title text);",
            "ALTER TABLE tickets RENAME COLUMN seq TO position;",
            &["`seq` is an identity column (GENERATED BY DEFAULT AS IDENTITY)"],
        ),
        (
            "serial column",
            "CREATE TABLE tickets (id bigint PRIMARY KEY, ticket_no bigserial, title text);",
            "ALTER TABLE tickets RENAME COLUMN ticket_no TO number;",
            &["`ticket_no` is numbered from a sequence (`bigserial`)"],
        ),
        (
            "generated column",
            "CREATE TABLE lines (id bigint PRIMARY KEY, price numeric, qty int, total numeric \
             GENERATED ALWAYS AS (price * qty) STORED);",
            "ALTER TABLE lines RENAME COLUMN total TO amount;",
            &["`total` is a generated column"],
        ),
        (
            "source of a generated column",
            "CREATE TABLE lines (id bigint PRIMARY KEY, price numeric, qty int, total numeric \
             GENERATED ALWAYS AS (price * qty) STORED);",
            "ALTER TABLE lines RENAME COLUMN qty TO quantity;",
            &["`qty` is the source of the generated column `total`"],
        ),
        (
            "column a view reads",
            "CREATE TABLE users (id bigint PRIMARY KEY, email text, name text);
CREATE VIEW user_emails AS SELECT id, email FROM users WHERE email IS NOT NULL;",
            "ALTER TABLE users RENAME COLUMN email TO address;",
            &["`email` is read by the view `user_emails`"],
        ),
        (
            "UNIQUE column another table's foreign key references",
            "CREATE TABLE countries (id bigint PRIMARY KEY, code text NOT NULL, name text);
ALTER TABLE ONLY countries ADD CONSTRAINT countries_code_key UNIQUE (code);
CREATE TABLE cities (id bigint PRIMARY KEY, country_code text);
ALTER TABLE ONLY cities ADD CONSTRAINT cities_country_fk FOREIGN KEY (country_code) REFERENCES \
    countries(code) NOT VALID;",
            "ALTER TABLE countries RENAME COLUMN code TO iso_code;",
            &["`code` is referenced by the foreign key `cities_country_fk` of `cities`"],
        ),
        (
            "member of a composite primary key",
            "CREATE TABLE memberships (org_id bigint, member_id bigint, role text, PRIMARY KEY \
             (org_id, member_id));",
            "ALTER TABLE memberships RENAME COLUMN member_id TO user_id;",
            &["`member_id` is part of the primary key `memberships_pkey` (org_id, member_id)"],
        ),
        (
            "quoted, schema-qualified table",
            "CREATE SCHEMA app;
CREATE TABLE app.\"Members\" (\"MemberId\" bigint GENERATED ALWAYS AS IDENTITY, \"Name\" text);
ALTER TABLE ONLY app.\"Members\" ADD CONSTRAINT \"Members_pkey\" PRIMARY KEY (\"MemberId\");",
            "ALTER TABLE APP.\"Members\" RENAME COLUMN \"MemberId\" TO member_id;",
            &["`\"MemberId\"` is the primary key (`\"Members_pkey\"`) and an identity column"],
        ),
    ];
    for (what, v1, rename, phrases) in cases {
        // The rename on line 2, under a comment: the finding names the statement's line.
        let v2 = format!("-- {what}\n{rename}\n");
        let dir = release_dir(&[("V1__base.sql", v1), ("V2__rename.sql", &v2)], false);
        let spec = dir.path().join("spec.toml");
        let out = cutover(&["plan", spec.to_str().unwrap()]);
        assert_no_panic(&out);
        let text = transcript(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("nothing was planned")
                && stderr.contains("m/V2__rename.sql:2: error [rename-rewrite-unsupported]")
                && stderr.contains("hint: keep the name")
                && stderr.contains("`recreate` release"),
            "{what}: {text}"
        );
        for phrase in *phrases {
            assert!(stderr.contains(phrase), "{what}: no `{phrase}` in {text}");
        }
        assert!(out.stdout.is_empty(), "{what}: {text}");

        let out = cutover(&["plan", spec.to_str().unwrap(), "--format", "json"]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", transcript(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let d = &doc["error"]["diagnostics"][0];
        assert!(
            d["file"].as_str().unwrap().ends_with("m/V2__rename.sql") && d["line"] == 2,
            "{what}: {doc}"
        );
        assert!(
            d["message"]
                .as_str()
                .unwrap()
                .contains("[rename-rewrite-unsupported]"),
            "{what}: {doc}"
        );

        // A recreate release stops the old version first: the RENAME runs as written.
        let dir = release_dir(&[("V1__base.sql", v1), ("V2__rename.sql", &v2)], true);
        let out = cutover(&[
            "plan",
            dir.path().join("spec.toml").to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", transcript(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let rules: Vec<&str> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap())
            .collect();
        assert!(
            rules.contains(&"recreate-runs-as-is")
                && !rules.contains(&"rename-rewrite-unsupported"),
            "{what}: {rules:?}"
        );
    }
}

/// The refusal is about the column, not the table: other columns of the same tables still get
/// the rewrite, and a view that does not read a column does not hold it.
#[test]
fn columns_nothing_depends_on_are_still_rewritten() {
    let v1 = "CREATE TABLE members (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
        display_name text NOT NULL, bio text);
CREATE TABLE posts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, member_id bigint NOT NULL \
    REFERENCES members (id), body text);
CREATE VIEW member_names AS SELECT m.id, m.display_name FROM members m;";
    for (rename, key) in [
        ("ALTER TABLE members RENAME COLUMN bio TO about;", "id"),
        ("ALTER TABLE posts RENAME COLUMN body TO content;", "id"),
        // The referencing column itself: the rewrite warns that its constraint is not copied.
        (
            "ALTER TABLE posts RENAME COLUMN member_id TO author_id;",
            "id",
        ),
    ] {
        let dir = release_dir(&[("V1__base.sql", v1), ("V2__rename.sql", rename)], false);
        let out = cutover(&[
            "plan",
            dir.path().join("spec.toml").to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{rename}: {}", transcript(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let backfill = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == "backfill")
            .unwrap_or_else(|| panic!("{rename}: no backfill in {doc}"));
        assert_eq!(backfill["params"]["key"], key, "{rename}");
        assert!(
            doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["rule"] == "rename-rewrite-incomplete"),
            "{rename}"
        );
    }
}

/// Durations as Go, Argo Rollouts and Kamal users write them plan like their one-unit spelling;
/// a duration that is not one is refused naming the file, the key and an example.
#[test]
fn durations_are_read_as_users_of_go_argo_and_kamal_write_them() {
    let root = crate::common::root();
    let canary = std::fs::read_to_string(root.join("plans/canary.toml")).unwrap();
    let migrations = root.join("migrations-sample/app");
    let plan_with = |pause: &str, p99: &str| {
        let dir = tempfile::tempdir().unwrap();
        let spec = canary
            .replace("pause = \"1m\"", &format!("pause = \"{pause}\""))
            .replace(
                "max_p99_latency = \"300ms\"",
                &format!("max_p99_latency = \"{p99}\""),
            )
            .replace("../migrations-sample/app", migrations.to_str().unwrap());
        std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
        let out = crate::common::cutover_in(dir.path(), &["plan", "spec.toml", "--format", "json"]);
        (out, dir)
    };
    let hash = |out: &std::process::Output| -> Value {
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["plan_hash"].clone()
    };
    let (plain, _d1) = plan_with("90s", "300ms");
    let (go, _d2) = plan_with("1m30s", "0.3s");
    assert_eq!(plain.status.code(), Some(0), "{}", transcript(&plain));
    assert_eq!(go.status.code(), Some(0), "{}", transcript(&go));
    assert_eq!(
        hash(&plain),
        hash(&go),
        "1m30s and 0.3s must plan as 90s and 300ms"
    );
    let (bad, _d3) = plan_with("1m30", "300ms");
    assert_eq!(bad.status.code(), Some(1), "{}", transcript(&bad));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("spec.toml") && stderr.contains("1m30") && stderr.contains("e.g. \"30s\""),
        "{stderr}"
    );
}

/// `cutover completions bash` is a script bash loads, and it completes every command.
#[test]
fn completions_load_in_bash_and_complete_every_command() {
    let out = crate::common::cutover(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let script = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cutover.bash");
    std::fs::write(&path, &script).unwrap();
    // Load it, then ask its completion function for the words after `cutover `.
    let probe = format!(
        "source {}; COMP_WORDS=(cutover ''); COMP_CWORD=1; COMP_LINE='cutover '; COMP_POINT=8; \
         _cutover cutover '' cutover; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let bash = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    assert!(bash.status.success(), "{}", transcript(&bash));
    let words = String::from_utf8_lossy(&bash.stdout);
    for command in [
        "plan", "lint", "apply", "resume", "rollback", "status", "log", "runs",
    ] {
        assert!(
            words.lines().any(|w| w == command),
            "`{command}` not offered:\n{words}"
        );
    }
    let bad = crate::common::cutover(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(1), "{}", transcript(&bad));
}

/// A pull request whose migrations stop planning still gets its comment: the verdict and the
/// findings, on stdout, exit 2 (findings, not bad input); the JSON error names rule and severity.
#[test]
fn a_blocked_plan_still_renders_its_comment_and_exits_2() {
    let spec = "tests/fixtures/breaking-without-rewrite/spec.toml";
    let out = cutover(&["plan", spec, "--format", "markdown"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.starts_with("### cutover plan `") && md.contains("**blocked**"),
        "{md}"
    );
    assert!(
        md.contains(
            "| error | `breaking-alter-column-type` | `tests/fixtures/breaking-without-rewrite/"
        ),
        "{md}"
    );
    let out = cutover(&["plan", spec, "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &doc["error"]["diagnostics"][0];
    assert_eq!(d["rule"], "breaking-alter-column-type", "{doc:#}");
    assert_eq!(d["severity"], "error", "{doc:#}");
    assert_eq!(d["line"], 1, "{doc:#}");
    assert_eq!(d["column"], 1, "{doc:#}");
    assert!(
        d["file"].as_str().unwrap().ends_with("V2__email_type.sql"),
        "{doc:#}"
    );
}

/// The comment leads with a verdict, shows the schema changes as SQL and the traffic plan with
/// its expected duration, and a release of hundreds of steps is summarised, not cut: its
/// contract migration is still there, under GitHub's comment limit.
#[test]
fn the_comment_of_a_large_release_keeps_what_matters() {
    let root = crate::common::root();
    let canary = std::fs::read_to_string(root.join("plans/canary.toml")).unwrap();
    let (head, rest) = canary.split_once("[[service]]").unwrap();
    let (service, tail) = rest.split_once("[[database]]").unwrap();
    let mut spec = head.to_string();
    for i in 0..40 {
        spec += &format!("[[service]]{service}")
            .replace("name = \"api\"", &format!("name = \"api{i}\""))
            .replace("port = 3333", &format!("port = {}", 4000 + 2 * i))
            .replace(
                "candidate_port = 3334",
                &format!("candidate_port = {}", 4001 + 2 * i),
            );
    }
    spec += &format!("[[database]]{tail}").replace(
        "../migrations-sample/app",
        root.join("migrations-sample/app").to_str().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    let out = crate::common::cutover_in(dir.path(), &["plan", "spec.toml", "--format", "markdown"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let md = String::from_utf8(out.stdout).unwrap();
    let steps = md.lines().next().unwrap().to_string();
    assert!(steps.contains("**needs review**"), "{steps}");
    assert!(
        md.len() <= cutover_planner::render::MARKDOWN_LIMIT,
        "{} bytes",
        md.len()
    );
    assert!(
        !md.contains("Truncated"),
        "a large plan is summarised, not cut"
    );
    assert!(
        md.contains("`migrate/contract/V7__drop_users_legacy_flags`"),
        "contract step lost"
    );
    assert!(
        md.contains("DROP COLUMN"),
        "the schema changes show the contract's SQL"
    );
    assert!(
        md.contains("Not listed:") && md.contains("deploy"),
        "the rest is counted by kind"
    );
    assert!(
        md.contains("- `api39`: 10% → pause 1m (gate watched) → gate"),
        "traffic plan per service"
    );
    assert!(md.contains("Expected duration: at least"), "{md}");
}

/// `plans/canary.toml` with `pause = PAUSE`, in a temporary directory.
fn canary_with_pause(pause: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let root = crate::common::root();
    let spec = std::fs::read_to_string(root.join("plans/canary.toml"))
        .unwrap()
        .replace("pause = \"1m\"", &format!("pause = {pause}"))
        .replace(
            "\"../migrations-sample/app\"",
            &format!("\"{}\"", root.join("migrations-sample/app").display()),
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("canary.toml");
    std::fs::write(&path, spec).unwrap();
    (dir, path)
}

#[test]
fn a_manual_canary_pause_is_a_gate_in_the_plan_and_a_wrong_value_names_the_choices() {
    let (_dir, spec) = canary_with_pause("\"manual\"");
    let spec = spec.to_str().unwrap();
    let out = cutover(&["plan", spec, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pauses: Vec<&Value> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "pause")
        .collect();
    assert_eq!(pauses.len(), 3, "one per weight below 100");
    for p in &pauses {
        assert!(p["params"].get("duration").is_none(), "{p}");
        assert!(
            p["description"]
                .as_str()
                .unwrap()
                .contains("cutover promote"),
            "{p}"
        );
    }
    let md = cutover(&["plan", spec, "--format", "markdown"]);
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(md.contains("manual gate (`cutover promote`)"), "{md}");

    let (_dir, spec) = canary_with_pause("\"soon\"");
    let out = cutover(&["plan", spec.to_str().unwrap()]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("canary.toml") && text.contains("\"manual\""),
        "{text}"
    );
}

#[test]
fn schema_spec_prints_the_committed_json_schema() {
    let out = cutover(&["schema", "spec"]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let committed =
        std::fs::read(crate::common::root().join("docs/schemas/spec.schema.json")).unwrap();
    assert!(
        out.stdout == committed,
        "docs/schemas/spec.schema.json is stale: run `cutover schema spec > \
         docs/schemas/spec.schema.json`"
    );
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["required"], serde_json::json!(["release"]));
    assert_eq!(schema["additionalProperties"], false);
}

/// `plans/SAMPLE.toml` with `extra` added to its `[service.strategy]` table, in a temporary
/// directory (its migrations found where they are).
fn sample_with_strategy(sample: &str, extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let root = crate::common::root();
    let spec = std::fs::read_to_string(root.join(format!("plans/{sample}.toml")))
        .unwrap()
        .replace(
            "[service.strategy]\n",
            &format!("[service.strategy]\n{extra}\n"),
        )
        .replace(
            "\"../migrations-sample/",
            &format!("\"{}/migrations-sample/", root.display()),
        );
    assert!(
        spec.contains(extra),
        "{sample} has a [service.strategy] table"
    );
    // A gate behind nginx reads its JSON access log.
    let spec = if spec.contains("kind = \"nginx\"") && !spec.contains("access_log") {
        spec.replace(
            "[router]\n",
            "[router]\naccess_log = \"/var/log/nginx/cutover.json\"\n",
        )
    } else {
        spec
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{sample}.toml"));
    std::fs::write(&path, spec).unwrap();
    (dir, path)
}

#[test]
fn a_bake_window_holds_retire_and_contract_until_the_new_version_took_all_traffic() {
    let bake = "bake = { window = \"15m\", max_error_rate = 0.005, max_p99_latency = \"300ms\" }";
    for sample in ["canary", "blue-green", "rolling"] {
        let (_dir, spec) = sample_with_strategy(sample, bake);
        let out = cutover(&["plan", spec.to_str().unwrap(), "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{sample}: {}", transcript(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let steps = doc["steps"].as_array().unwrap();
        let by_id = |id: &str| steps.iter().find(|s| s["id"] == id);
        let bake_step = steps
            .iter()
            .find(|s| s["id"].as_str().unwrap().ends_with("/bake"))
            .unwrap_or_else(|| panic!("{sample}: no bake step"));
        assert_eq!(bake_step["kind"], "analysis", "{sample}");
        assert_eq!(bake_step["params"]["weight"], 100, "{sample}");
        let last_shift = bake_step["depends_on"][0].as_str().unwrap();
        assert!(last_shift.starts_with("shift/"), "{sample}: {last_shift}");
        assert!(by_id(last_shift).is_some());
        // Every retire step is after the bake (directly or through another step).
        let retire = steps
            .iter()
            .rfind(|s| s["id"].as_str().unwrap().starts_with("retire/"))
            .unwrap();
        assert!(
            retire["depends_on"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d == &bake_step["id"]),
            "{sample}: {retire}"
        );
    }
    let (_dir, spec) = sample_with_strategy(
        "recreate",
        "bake = { window = \"1m\", max_error_rate = 0.01, max_p99_latency = \"300ms\" }",
    );
    let out = cutover(&["plan", spec.to_str().unwrap()]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("`bake` does not apply to a recreate strategy") && text.contains("hint:"),
        "{text}"
    );
}
