//! DROP and TRUNCATE: what they drop, and whether the running version may still use it (a
//! contract change) or it is new to this release (expand).

use super::*;

/// Names a DROP statement drops.
pub(super) struct Dropped {
    /// Names as written, in order.
    pub(super) names: Vec<String>,
    /// The table after ON (DROP TRIGGER / POLICY / RULE).
    pub(super) on: Option<String>,
    /// CASCADE was given.
    pub(super) cascade: bool,
}

/// The names of `DROP <kind> [CONCURRENTLY] [IF EXISTS] a, b(args) [ON t] [CASCADE]`, where the
/// kind is `kind_words` words long.
pub(super) fn dropped_names(node: &SyntaxNode, kind_words: usize) -> Dropped {
    let toks = tokens(node);
    let mut out = Dropped {
        names: Vec::new(),
        on: None,
        cascade: false,
    };
    let mut i = 1 + kind_words;
    while i < toks.len()
        && matches!(
            toks[i].to_lowercase().as_str(),
            "concurrently" | "if" | "exists"
        )
    {
        i += 1;
    }
    let mut current = String::new();
    let mut depth = 0;
    while i < toks.len() {
        let t = &toks[i];
        let lower = t.to_lowercase();
        if depth > 0 {
            match t.as_str() {
                "(" => depth += 1,
                ")" => depth -= 1,
                _ => {}
            }
        } else if t == "(" {
            depth = 1;
        } else if t == "," || t == ";" {
            if !current.is_empty() {
                out.names.push(std::mem::take(&mut current));
            }
        } else if lower == "on" {
            if !current.is_empty() {
                out.names.push(std::mem::take(&mut current));
            }
            let mut table = String::new();
            for t in &toks[i + 1..] {
                if t == "." || table.ends_with('.') || table.is_empty() {
                    table.push_str(t);
                } else {
                    break;
                }
            }
            out.on = Some(table);
        } else if lower == "cascade" {
            out.cascade = true;
        } else if lower == "restrict" {
        } else if out.on.is_none() {
            current.push_str(t);
        }
        i += 1;
    }
    if !current.is_empty() {
        out.names.push(current);
    }
    out
}

/// The tables of `TRUNCATE [TABLE] [ONLY] a, b [RESTART IDENTITY] [CASCADE]`.
pub(super) fn truncated_names(node: &SyntaxNode) -> Dropped {
    let mut d = dropped_names(node, 0);
    d.names = d
        .names
        .into_iter()
        .map(|n| {
            let l = n.to_lowercase();
            let n = if l.starts_with("table") && n.len() > 5 && !n[5..].starts_with('.') {
                n[5..].to_string()
            } else {
                n
            };
            if n.to_lowercase().starts_with("only") && n.len() > 4 && !n[4..].starts_with('.') {
                n[4..].to_string()
            } else {
                n
            }
        })
        .map(|n| {
            let l = n.to_lowercase();
            for tail in ["restartidentity", "continueidentity"] {
                if l.ends_with(tail) {
                    return n[..n.len() - tail.len()].to_string();
                }
            }
            n
        })
        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("table"))
        .collect();
    d
}

/// DROP INDEX: expand for an index of this release; contract for one the running version may
/// use, or one cutover cannot name.
pub(super) fn drop_index(node: &SyntaxNode, schema: &Schema) -> Class {
    let mut c = Class::new(
        StmtPhase::Expand,
        Inverse::Unknown(
            "a dropped index is not re-created automatically; add a down migration".into(),
        ),
    );
    let dropped = dropped_names(node, 1);
    if dropped.names.is_empty() || dropped.cascade {
        c.raise(StmtPhase::Contract);
    }
    if let [one] = dropped.names.as_slice() {
        c.table = schema.index_table(&normalize(one)).map(str::to_string);
        // Dropping an index takes its table's owner (manual, DROP INDEX); `plan` also reads it
        // to keep a partitioned index out of the concurrent form.
        c.owner_of = c.table.clone();
    }
    for name in dropped.names {
        let key = normalize(&name);
        let on_new = schema.index_table(&key).is_some_and(|t| schema.is_new(t))
            || schema.is_new_object_in_file("index", &key);
        if !on_new {
            c.raise_drop("index", key);
        }
    }
    c
}

/// DROP TABLE and TRUNCATE: data loss, unless every table is new to this release.
pub(super) fn drop_table(stmt: &ast::Stmt, schema: &mut Schema) -> Class {
    let node = stmt.syntax();
    let is_drop = matches!(stmt, ast::Stmt::DropTable(_));
    let dropped = if is_drop {
        dropped_names(node, 1)
    } else {
        truncated_names(node)
    };
    // Tables this release created hold nothing the running version wrote.
    let all_new = !dropped.names.is_empty()
        && !dropped.cascade
        && dropped.names.iter().all(|n| schema.is_new(n));
    let mut c = Class::new(
        if all_new {
            StmtPhase::Expand
        } else {
            StmtPhase::Contract
        },
        Inverse::Unknown("dropped data can only come back from the backup".into()),
    );
    if !all_new {
        let what = summarize(&node.text().to_string());
        c.finding(
            RuleId::DataLoss,
            format!("`{what}` deletes data"),
            "run it only after the old version is retired; the pre-release backup is the only way \
             back",
        );
    }
    if is_drop {
        for name in &dropped.names {
            schema.drop_table(name);
        }
    } else if let [one] = dropped.names.as_slice() {
        c.table = Some(normalize(one));
    }
    c
}

/// DROP SCHEMA: contract, and data loss.
pub(super) fn drop_schema(node: &SyntaxNode) -> Class {
    let mut c = Class::new(
        StmtPhase::Contract,
        Inverse::Unknown("dropped data can only come back from the backup".into()),
    );
    let what = summarize(&node.text().to_string());
    c.finding(
        RuleId::DataLoss,
        format!("`{what}` deletes data"),
        "run it only after the old version is retired; the pre-release backup is the only way back",
    );
    c
}

/// DROP of a view, function, trigger, type or other tracked object: expand for one made
/// earlier in this transaction, contract otherwise (and always with CASCADE).
pub(super) fn drop_object(node: &SyntaxNode, w: &[SmolStr], schema: &Schema) -> Class {
    let mut c = Class::new(
        StmtPhase::Expand,
        Inverse::Unknown(
            "a dropped object is not re-created automatically; add a down migration".into(),
        ),
    );
    let materialized = w.get(1).is_some_and(|t| t == "materialized");
    let kind = object_kind(
        w.get(if materialized { 2 } else { 1 }).map_or("", |k| k),
        materialized,
    );
    let dropped = dropped_names(node, if materialized { 2 } else { 1 });
    // CASCADE also drops what depends on the object: never a clean replace.
    if dropped.names.is_empty() || dropped.cascade || kind.is_none() {
        c.raise(StmtPhase::Contract);
    }
    if let Some(kind) = kind {
        for name in dropped.names {
            let key = object_key(&name, dropped.on.as_deref());
            // Made earlier in this transaction: nobody else has seen it. Made by an
            // earlier file of the release, it may be there for the old version (a view
            // under a renamed table's old name): contract.
            if !schema.is_new_object_in_file(kind, &key) {
                c.raise_drop(kind, key);
            }
        }
    }
    c
}
