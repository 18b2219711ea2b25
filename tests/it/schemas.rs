//! The JSON Schemas of the JSON outputs (`cutover schema NAME`, `docs/schemas/NAME.schema.json`):
//! the committed files are what the binary generates, and what the binary really prints
//! (plans, lint runs, the rule list, an error, a run's events, status and list) conforms to them.
//!
//! The validator below is a small one, strict where the schemas are open: an object may hold only
//! keys its schema names (in `properties`, through `$ref`, `allOf` and the `anyOf`/`oneOf`
//! branches it matches), unless the schema is a map (`additionalProperties`) or any value (`true`).
//! So a field renamed in the output but not in the schema (or the other way round) fails here.
//! (The `jsonschema` crate would not: the schemas leave `additionalProperties` open, as the
//! documents may gain fields within a version; and even without default features it brings some
//! twenty crates of its own.)

use crate::common::{SAMPLES, assert_no_panic, cutover, cutover_in, root, transcript};
use serde_json::Value;
use std::collections::BTreeSet;

const NAMES: &[&str] = &[
    "spec", "plan", "lint", "rules", "error", "event", "status", "runs",
];

fn committed(name: &str) -> Value {
    let path = root().join(format!("docs/schemas/{name}.schema.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn schema_files_are_what_the_binary_generates() {
    for name in NAMES {
        let out = cutover(&["schema", name]);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
        let file = format!("docs/schemas/{name}.schema.json");
        let committed = std::fs::read(root().join(&file)).unwrap();
        assert!(
            out.stdout == committed,
            "{file} is stale: run `cutover schema {name} > {file}`"
        );
    }
}

/// Every problem of `v` against the schema `s` (resolving `$ref` in `root`), with its path.
fn problems(v: &Value, s: &Value, root: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(v, s, root, "$", true, &mut out);
    out
}

fn def<'a>(r: &str, root: &'a Value) -> &'a Value {
    let name = r
        .strip_prefix("#/$defs/")
        .unwrap_or_else(|| panic!("unsupported $ref {r}"));
    root["$defs"]
        .get(name)
        .unwrap_or_else(|| panic!("no $defs/{name}"))
}

/// `top`: `s` is the whole schema of the value at `path` (not a `$ref`, `allOf` or branch
/// of it), so this is where its keys are checked against every name the schema allows.
fn check(v: &Value, s: &Value, root: &Value, path: &str, top: bool, out: &mut Vec<String>) {
    if s == &Value::Bool(true) {
        return;
    }
    if let Some(r) = s["$ref"].as_str() {
        check(v, def(r, root), root, path, false, out);
    }
    if let Some(c) = s.get("const").filter(|c| *c != v) {
        out.push(format!("{path}: {v} is not {c}"));
    }
    if let Some(e) = s["enum"].as_array().filter(|e| !e.contains(v)) {
        out.push(format!("{path}: {v} is not one of {e:?}"));
    }
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_is(v, t)) {
        out.push(format!("{path}: {v} is not of type {types:?}"));
    }
    if let (Some(m), Some(x)) = (s["minimum"].as_f64(), v.as_f64())
        && x < m
    {
        out.push(format!("{path}: {x} < minimum {m}"));
    }
    for sub in s["allOf"].as_array().into_iter().flatten() {
        check(v, sub, root, path, false, out);
    }
    branches(v, s, root, path, out);
    if let Some(a) = v.as_array() {
        array(a, s, root, path, out);
    }
    if let Some(o) = v.as_object() {
        object(o, s, root, path, out);
        if top && let Some(known) = known_keys(v, s, root) {
            for k in o.keys().filter(|k| !known.contains(*k)) {
                out.push(format!("{path}: key `{k}` is not in the schema"));
            }
        }
    }
}

fn branches(v: &Value, s: &Value, root: &Value, path: &str, out: &mut Vec<String>) {
    for (kw, exactly_one) in [("anyOf", false), ("oneOf", true)] {
        let Some(list) = s[kw].as_array() else {
            continue;
        };
        let fits = list
            .iter()
            .filter(|b| problems_in(v, b, root, path).is_empty())
            .count();
        if fits == 0 || (exactly_one && fits > 1) {
            let why: Vec<String> = list
                .iter()
                .flat_map(|b| problems_in(v, b, root, path))
                .take(6)
                .collect();
            out.push(format!("{path}: {fits} of the {kw} branches fit: {why:?}"));
        }
    }
}

fn problems_in(v: &Value, s: &Value, root: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    check(v, s, root, path, false, &mut out);
    out
}

fn array(a: &[Value], s: &Value, root: &Value, path: &str, out: &mut Vec<String>) {
    let prefix = s["prefixItems"].as_array().map_or(&[][..], Vec::as_slice);
    for (i, x) in a.iter().enumerate() {
        let item = prefix.get(i).unwrap_or(&s["items"]);
        if !item.is_null() {
            check(x, item, root, &format!("{path}[{i}]"), true, out);
        }
    }
    let len = a.len() as u64;
    if s["minItems"].as_u64().is_some_and(|m| len < m)
        || s["maxItems"].as_u64().is_some_and(|m| len > m)
    {
        out.push(format!("{path}: {len} items"));
    }
}

fn object(
    o: &serde_json::Map<String, Value>,
    s: &Value,
    root: &Value,
    path: &str,
    out: &mut Vec<String>,
) {
    for k in s["required"].as_array().into_iter().flatten() {
        let k = k.as_str().unwrap();
        if !o.contains_key(k) {
            out.push(format!("{path}: required key `{k}` is missing"));
        }
    }
    for (k, x) in o {
        let at = format!("{path}.{k}");
        match (s["properties"].get(k), &s["additionalProperties"]) {
            (Some(p), _) => check(x, p, root, &at, true, out),
            (None, Value::Bool(false)) => out.push(format!("{at}: not allowed")),
            (None, extra @ Value::Object(_)) => check(x, extra, root, &at, true, out),
            (None, _) => {}
        }
    }
}

/// The keys the schema names for this object, or `None` when it takes any key (a map, any value).
fn known_keys(v: &Value, s: &Value, root: &Value) -> Option<BTreeSet<String>> {
    if s == &Value::Bool(true) || s["additionalProperties"].is_object() {
        return None;
    }
    let combined = ["$ref", "allOf", "anyOf", "oneOf"];
    if s["properties"].is_null() && combined.iter().all(|k| s[k].is_null()) {
        return None;
    }
    let mut keys: BTreeSet<String> = s["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.keys().cloned())
        .collect();
    let mut parts: Vec<&Value> = s["allOf"].as_array().into_iter().flatten().collect();
    if let Some(r) = s["$ref"].as_str() {
        parts.push(def(r, root));
    }
    for kw in ["anyOf", "oneOf"] {
        parts.extend(
            s[kw]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| problems_in(v, b, root, "").is_empty()),
        );
    }
    for p in parts {
        keys.extend(known_keys(v, p, root)?);
    }
    Some(keys)
}

fn type_is(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => panic!("unknown type {t}"),
    }
}

fn assert_conforms(what: &str, v: &Value, schema: &str) {
    let root = committed(schema);
    let found = problems(v, &root, &root);
    assert!(
        found.is_empty(),
        "{what} does not conform to docs/schemas/{schema}.schema.json:\n{}",
        found.join("\n")
    );
}

fn json(what: &str, out: &std::process::Output) -> Value {
    assert_no_panic(out);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}\n{}", transcript(out)))
}

#[test]
fn schema_real_plans_lint_runs_and_the_rule_list_conform() {
    for sample in SAMPLES {
        let spec = format!("plans/{sample}.toml");
        let out = cutover(&["plan", &spec, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
        assert_conforms(&spec, &json(&spec, &out), "plan");
    }
    let mut findings = 0;
    for dir in ["migrations-sample/app", "migrations-sample/rename"] {
        let out = cutover(&["lint", dir, "--format", "json"]);
        let doc = json(dir, &out);
        assert_conforms(dir, &doc, "lint");
        findings += doc["findings"].as_array().map_or(0, Vec::len);
    }
    assert!(findings > 0, "no findings to check");
    // Both at once: the same versions twice, an error document.
    let out = cutover(&["lint", "migrations-sample", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert_conforms("lint migrations-sample", &json("lint", &out), "error");
    let out = cutover(&["lint", "--list-rules", "--format", "json"]);
    assert_conforms("the rule list", &json("rules", &out), "rules");
}

/// Every bad-input fixture (`tests/fixtures/*/spec.toml`): those `plan` refuses print the error
/// document (exit 1, or 2 when error findings stop it), the others a plan.
#[test]
fn schema_real_errors_conform() {
    let mut refused = 0;
    let mut findings = 0;
    for entry in std::fs::read_dir(root().join("tests/fixtures")).unwrap() {
        let spec = entry.unwrap().path().join("spec.toml");
        if !spec.exists() {
            continue;
        }
        let spec = spec.strip_prefix(root()).unwrap().display().to_string();
        let out = cutover(&["plan", &spec, "--format", "json"]);
        let doc = json(&spec, &out);
        // Exit 1 (bad input), or 2 when findings stop the plan: the error document either way.
        match doc.get("error") {
            Some(_) => {
                assert_conforms(&spec, &doc, "error");
                refused += 1;
                let diagnostics = doc["error"]["diagnostics"].as_array().unwrap();
                findings += diagnostics.iter().filter(|d| d["rule"].is_string()).count();
            }
            _ => assert_conforms(&spec, &doc, "plan"),
        }
    }
    assert!(
        refused >= 5 && findings >= 1,
        "{refused} refused, {findings} findings"
    );
}

/// A release of `command` steps only (no Docker, no database): `a` and `b` succeed, `c` fails,
/// so the run rolls back, and `b`'s undo fails: the events take most of their shapes.
const RUN_SPEC: &str = r#"[release]
name = "schemas"

[[command]]
name = "a"
stage = "pre-migrate"
argv = ["sh", "-c", "echo a >> journal"]
undo = ["sh", "-c", "echo undo-a >> journal"]

[[command]]
name = "b"
stage = "post-release"
argv = ["sh", "-c", "echo b >> journal"]
undo = ["sh", "-c", "exit 2"]

[[command]]
name = "c"
stage = "post-release"
argv = ["sh", "-c", "exit 1"]
"#;

fn lines(what: &str, out: &std::process::Output) -> Vec<Value> {
    assert_no_panic(out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: {e}: {l}")))
        .collect()
}

#[test]
fn schema_real_events_status_and_runs_conform() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), RUN_SPEC).unwrap();
    let at = |args: &[&str]| {
        let mut all = vec!["--state-dir", "st"];
        all.extend(args);
        cutover_in(dir.path(), &all)
    };
    let out = at(&["apply", "spec.toml", "--format", "json"]);
    assert_eq!(out.status.code(), Some(4), "{}", transcript(&out));
    let events = lines("apply", &out);
    let types: BTreeSet<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(
        types.contains("compensation_failed") && types.contains("rollback_stopped"),
        "{types:?}"
    );
    for e in &events {
        assert_conforms("an event of `apply --format json`", e, "event");
    }
    let out = at(&["log", "latest", "--format", "json"]);
    let logged = lines("log", &out);
    assert_eq!(logged.len(), events.len());
    for e in &logged {
        assert_conforms("an event of `log --format json`", e, "event");
    }
    let out = at(&["status", "latest", "--format", "json"]);
    let status = json("status", &out);
    assert!(status["rollback_stopped"].is_object(), "{status:#}");
    assert_conforms("`status --format json`", &status, "status");
    let out = at(&["runs", "--format", "json"]);
    let runs = json("runs", &out);
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs:#}");
    assert_conforms("`runs --format json`", &runs, "runs");
}

#[test]
fn schema_validator_refuses_a_renamed_a_missing_and_a_mistyped_field() {
    let out = cutover(&["plan", "plans/canary.toml", "--format", "json"]);
    let doc = json("canary", &out);
    assert_conforms("plans/canary.toml", &doc, "plan");
    let root = committed("plan");
    type Edit = (&'static str, fn(&mut Value));
    let edits: [Edit; 4] = [
        ("a renamed top-level key", |d| {
            let h = d.as_object_mut().unwrap().remove("plan_hash").unwrap();
            d["plan-hash"] = h;
        }),
        ("a renamed params key", |d| {
            let p = d["steps"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|s| s["kind"] == "health")
                .unwrap();
            let urls = p["params"].as_object_mut().unwrap().remove("urls").unwrap();
            p["params"]["url"] = urls;
        }),
        ("a missing required key", |d| {
            d["summary"].as_object_mut().unwrap().remove("steps");
        }),
        ("a mistyped value", |d| {
            d["steps"][0]["reversible"] = "yes".into()
        }),
    ];
    for (what, edit) in edits {
        let mut bad = doc.clone();
        edit(&mut bad);
        assert!(!problems(&bad, &root, &root).is_empty(), "{what} passes");
    }
}
