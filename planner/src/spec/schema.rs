//! The JSON Schema of a release spec ([`json_schema`], `cutover schema spec`,
//! `docs/schemas/spec.schema.json`), derived by schemars from the serde types that parse specs.
//! Durations and a canary's `pause` deserialize from strings by hand, so their schemas are
//! written here (and serve the JSON outputs' schemas too).

use super::{CanaryPause, ReleaseSpec};
use crate::duration::Duration;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::borrow::Cow;

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit (ms, s, m or h), as Go, Argo Rollouts \
                            and Kamal users write them; whole milliseconds, at most 2147483647 ms.",
            "examples": ["500ms", "30s", "1m30s", "1.5s", "1h 30m"]
        })
    }
}

impl JsonSchema for CanaryPause {
    fn schema_name() -> Cow<'static, str> {
        "CanaryPause".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let duration = generator.subschema_for::<Duration>();
        json_schema!({
            "description": "A canary's pause after each weight below 100: a duration, or \
                            \"manual\" to wait for `cutover promote RUN`.",
            "anyOf": [duration, { "const": "manual" }]
        })
    }
}

/// The JSON Schema (draft 2020-12) of a release spec, pretty-printed, ending in a newline.
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(ReleaseSpec).to_value();
    drop_null(&mut schema);
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}

/// TOML has no null: an optional key is left out. schemars writes an `Option<T>` as "T or
/// null" (`"type": ["string", "null"]`, or `anyOf` with `{"type": "null"}`, and `"default":
/// null`); this keeps the T.
fn drop_null(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if map.get("default").is_some_and(Value::is_null) {
                map.remove("default");
            }
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = map.get_mut("anyOf") {
                any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                if let [Value::Object(only)] = any.as_slice() {
                    let only = only.clone();
                    map.remove("anyOf");
                    for (k, v) in only {
                        map.entry(k).or_insert(v);
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const COMMITTED: &str = include_str!("../../../docs/schemas/spec.schema.json");

    #[test]
    fn the_committed_schema_is_the_generated_one() {
        assert!(
            COMMITTED == json_schema(),
            "docs/schemas/spec.schema.json is stale: run `cargo run -q -- schema spec > \
             docs/schemas/spec.schema.json` and commit it"
        );
    }

    /// The part of JSON Schema the generated schema uses: `$ref`, `type`, `properties`,
    /// `additionalProperties`, `required`, `items`, `const`, `anyOf`/`oneOf`, `minimum`.
    fn valid(v: &Value, s: &Value, root: &Value) -> bool {
        if let Some(r) = s["$ref"].as_str() {
            let name = r.trim_start_matches("#/$defs/");
            return valid(v, &root["$defs"][name], root) && valid(v, &without_ref(s), root);
        }
        let any = |k: &str| s[k].as_array().map(|a| a.iter().any(|b| valid(v, b, root)));
        let checks = [
            s.get("const").is_none_or(|c| c == v),
            any("anyOf").unwrap_or(true),
            any("oneOf").unwrap_or(true),
            s["type"].as_str().is_none_or(|t| type_is(v, t)),
            s["minimum"]
                .as_f64()
                .is_none_or(|m| v.as_f64().is_none_or(|x| x >= m)),
            s["items"].is_null()
                || v.as_array()
                    .is_none_or(|a| a.iter().all(|i| valid(i, &s["items"], root))),
            object_valid(v, s, root),
        ];
        checks.iter().all(|c| *c)
    }

    fn without_ref(s: &Value) -> Value {
        let mut s = s.clone();
        s.as_object_mut().unwrap().remove("$ref");
        s
    }

    fn type_is(v: &Value, t: &str) -> bool {
        match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => false,
        }
    }

    fn object_valid(v: &Value, s: &Value, root: &Value) -> bool {
        let Some(obj) = v.as_object() else {
            return true;
        };
        let has_required = s["required"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|k| k.as_str().is_some_and(|k| obj.contains_key(k)));
        has_required
            && obj.iter().all(|(k, x)| match s["properties"].get(k) {
                Some(p) => valid(x, p, root),
                None => match &s["additionalProperties"] {
                    Value::Bool(false) => false,
                    Value::Null | Value::Bool(true) => true,
                    extra => valid(x, extra, root),
                },
            })
    }

    fn spec_value(text: &str) -> Value {
        serde_json::to_value(toml::from_str::<toml::Table>(text).unwrap()).unwrap()
    }

    #[test]
    fn every_sample_spec_parses_and_validates_against_the_schema() {
        let root: Value = serde_json::from_str(COMMITTED).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../plans");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.display().to_string();
            if let Err(e) = ReleaseSpec::parse(&name, &text) {
                panic!("{name} does not parse: {e:?}");
            }
            assert!(
                valid(&spec_value(&text), &root, &root),
                "{name} fails the schema"
            );
            seen += 1;
        }
        assert!(seen >= 5, "only {seen} sample specs in plans/");
    }

    #[test]
    fn the_schema_refuses_an_unknown_key_a_wrong_type_and_a_missing_key() {
        let root: Value = serde_json::from_str(COMMITTED).unwrap();
        let base = "[release]\nname = \"r\"\n\n[[service]]\nname = \"api\"\nimage = \"api\"\n\
                    current = \"1\"\ntarget = \"2\"\nport = 3333\n\n[service.strategy]\n\
                    kind = \"canary\"\npause = \"manual\"\n";
        assert!(valid(&spec_value(base), &root, &root));
        for (old, new) in [
            ("port = 3333", "prot = 3333"),
            ("port = 3333", "port = \"3333\""),
            ("name = \"r\"\n", ""),
            ("kind = \"canary\"", "kind = \"blue_green\""),
            ("pause = \"manual\"", "pause = 5"),
        ] {
            let text = base.replacen(old, new, 1);
            assert!(!valid(&spec_value(&text), &root, &root), "{new:?} passes");
        }
    }
}
