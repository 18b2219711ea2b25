//! CREATE statements: tables, indexes, views, functions, triggers, rules and the other objects
//! the schema model tracks, each with the DROP that undoes it.

use super::*;

/// The schema part of a qualified name as written (`app.t` → `app`, `"My.App"."T"` →
/// `"My.App"`), `None` for an unqualified one.
pub(super) fn schema_of(name: &str) -> Option<&str> {
    let mut quoted = false;
    let mut last_dot = None;
    for (i, c) in name.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => last_dot = Some(i),
            _ => {}
        }
    }
    last_dot.map(|i| &name[..i])
}

/// The kind of object a DROP or CREATE keyword names, as cutover tracks it (`None` for kinds it
/// does not).
pub(super) fn object_kind(word: &str, materialized: bool) -> Option<&'static str> {
    Some(match word {
        "view" if materialized => "materialized view",
        "view" => "view",
        "function" => "function",
        "procedure" => "procedure",
        "trigger" => "trigger",
        "sequence" => "sequence",
        "type" => "type",
        "domain" => "domain",
        "policy" => "policy",
        "extension" => "extension",
        "rule" => "rule",
        "statistics" => "statistics",
        "aggregate" => "aggregate",
        "collation" => "collation",
        "schema" => "schema",
        _ => return None,
    })
}

/// The key of an object in [`Schema::create_object`]: its normalized name, with `@table` for
/// objects named per table.
pub(super) fn object_key(name: &str, on: Option<&str>) -> String {
    match on {
        Some(table) => format!("{}@{}", normalize(name), normalize(table)),
        None => normalize(name),
    }
}

/// The object a CREATE statement makes, by kind and key.
pub(super) fn created_object(node: &SyntaxNode, w: &[SmolStr]) -> Option<(&'static str, String)> {
    let p = w.iter().position(|t| object_kind(t, false).is_some())?;
    let materialized = p > 0 && w[p - 1] == "materialized";
    let kind = object_kind(&w[p], materialized)?;
    let name = name_after(node, &w[p], &["if", "not", "exists"])?;
    let on = matches!(kind, "trigger" | "rule" | "policy")
        .then(|| name_after(node, "on", &[]))
        .flatten();
    Some((kind, object_key(&name, on.as_deref())))
}

/// `DROP <kind> <name>` for a CREATE statement, where the name can be read.
pub(super) fn create_inverse(node: &SyntaxNode, w: &[SmolStr]) -> Inverse {
    let kind_pos = w.iter().position(|t| {
        matches!(
            t.as_str(),
            "view"
                | "function"
                | "procedure"
                | "trigger"
                | "rule"
                | "sequence"
                | "type"
                | "schema"
                | "extension"
                | "domain"
                | "policy"
                | "statistics"
                | "collation"
                | "aggregate"
        )
    });
    let Some(p) = kind_pos else {
        return Inverse::Unknown(no_inverse_reason());
    };
    let kind = w[p].as_str();
    let materialized = p > 0 && w[p - 1] == "materialized";
    let Some(name) = name_after(node, kind, &["if", "not", "exists"]) else {
        return Inverse::Unknown(no_inverse_reason());
    };
    let kw = if materialized {
        "MATERIALIZED VIEW".to_string()
    } else {
        kind.to_uppercase()
    };
    match kind {
        "function" | "procedure" | "aggregate" => {
            let params = node
                .descendants()
                .find(|n| n.kind() == SyntaxKind::PARAM_LIST)
                .map(|n| n.text().to_string());
            match params {
                Some(p) if !p.to_lowercase().contains("default") && !p.contains('=') => {
                    Inverse::Sql(format!("DROP {kw} IF EXISTS {name}{p};"))
                }
                _ => Inverse::Unknown(
                    "the function's argument list has defaults; add a down migration".into(),
                ),
            }
        }
        "trigger" | "rule" | "policy" => match name_after(node, "on", &[]) {
            Some(table) => Inverse::Sql(format!("DROP {kw} IF EXISTS {name} ON {table};")),
            None => Inverse::Unknown(no_inverse_reason()),
        },
        _ => Inverse::Sql(format!("DROP {kw} IF EXISTS {name};")),
    }
}
