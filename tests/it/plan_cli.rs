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
        std::fs::write(dir.path().join("spec.toml"), "[release]\nname = \"r\"\n\n[[database]]\nname = \"main\"\nurl_env = \"DATABASE_URL\"\nmigrations = \"m\"\nbaseline = 1\n").unwrap();
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
