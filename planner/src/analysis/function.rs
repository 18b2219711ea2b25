//! New overloads of a function the running version calls. PostgreSQL picks the function a call
//! runs by its argument types (PostgreSQL manual, 10.3 Functions): a second function of the same
//! name whose parameters, defaults counted, also fit the old version's calls makes them fail
//! (`function f(bigint) is not unique`); one that fits them only through implicit casts may
//! take them over.

use super::*;
use crate::schema::FunctionSig;

/// The signature of a CREATE FUNCTION or PROCEDURE: the types of its IN, INOUT and VARIADIC
/// parameters, and how many of them have defaults.
pub(crate) fn signature(params: Option<ast::ParamList>) -> FunctionSig {
    let mut sig = FunctionSig::default();
    for p in params.iter().flat_map(|l| l.params()) {
        if matches!(p.mode(), Some(ast::ParamMode::ParamOut(_))) {
            continue;
        }
        let ty = p
            .func_type()
            .map(|t| canonical(&t.syntax().text().to_string()))
            .unwrap_or_default();
        sig.args.push(ty);
        if p.param_default().is_some() {
            sig.defaults += 1;
        }
    }
    sig
}

/// What a call of `cf` returns, as [`FunctionSig::returns`] keeps it: `RETURNS t`, `RETURNS
/// SETOF t`, `RETURNS TABLE (name t, ...)` or the OUT parameters (names and types: a caller
/// reads the result's columns by name); empty for a procedure.
pub(crate) fn returns(cf: &ast::CreateFunction) -> String {
    if let Some(rt) = cf.ret_type() {
        if let Some(list) = rt.return_table_arg_list() {
            let cols: Vec<String> = list
                .args()
                .map(|a| column_of(&crate::analysis::one_line(a.syntax())))
                .collect();
            return format!("table({})", cols.join(", "));
        }
        let text = rt
            .func_type()
            .map(|t| crate::analysis::one_line(t.syntax()))
            .unwrap_or_default();
        let lower = text.to_lowercase();
        return match lower.strip_prefix("setof ") {
            Some(rest) => format!("setof {}", canonical(rest)),
            None => canonical(&text),
        };
    }
    let outs: Vec<String> = cf
        .param_list()
        .iter()
        .flat_map(|l| l.params())
        .filter(|p| {
            matches!(
                p.mode(),
                Some(ast::ParamMode::ParamOut(_) | ast::ParamMode::ParamInOut(_))
            )
        })
        .map(|p| column_of(&crate::analysis::one_line(p.syntax())))
        .collect();
    if outs.is_empty() {
        String::new()
    } else {
        format!("out({})", outs.join(", "))
    }
}

/// `name type` of a result column or OUT parameter (an `OUT`/`INOUT` word left out), the
/// type canonical.
fn column_of(text: &str) -> String {
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| !matches!(w.to_lowercase().as_str(), "out" | "inout"))
        .collect();
    match words.split_first() {
        Some((name, ty)) if !ty.is_empty() => {
            format!("{} {}", normalize(name), canonical(&ty.join(" ")))
        }
        _ => text.to_lowercase(),
    }
}

/// A type as a signature compares it: PostgreSQL's name, without modifiers.
///
/// The schema of a built-in type (`pg_catalog.int8`) or of one in `public` (`public.order_state`)
/// is left out: the unqualified name finds the same type on the default `search_path`.
pub(crate) fn canonical(text: &str) -> String {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let text = ["pg_catalog.", "public."]
        .iter()
        .find_map(|p| lower.starts_with(p).then(|| &trimmed[p.len()..]))
        .unwrap_or(trimmed);
    match crate::types::parse(text) {
        Some(t) => format!("{}{}", t.name, if t.array { "[]" } else { "" }),
        None => text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    }
}

/// Whether a call of `old` (its leading arguments, the rest left to defaults) is also a call of
/// `new` with the same argument types: PostgreSQL then finds two best candidates.
pub(crate) fn takes_calls_of(new: &FunctionSig, old: &FunctionSig) -> bool {
    let (m, k) = (old.args.len(), new.args.len());
    (m - old.defaults.min(m)..=m)
        .any(|j| j <= k && j + new.defaults >= k && new.args[..j] == old.args[..j])
}

/// The function's key in the schema model: its normalized name without `public.`.
pub(crate) fn key(name: &str) -> String {
    let n = normalize(name);
    n.strip_prefix("public.").map_or(n.clone(), str::to_string)
}

/// The signatures of the functions named like `cf` that the running version may call, other
/// than the one `cf` defines.
fn other_overloads(cf: &ast::CreateFunction, schema: &Schema) -> Vec<FunctionSig> {
    let Some(name) = text_of(cf.name()) else {
        return Vec::new();
    };
    if schema.is_new_object("function", &object_key(&name, None)) {
        return Vec::new();
    }
    let new = signature(cf.param_list());
    schema
        .functions(&key(&name))
        .iter()
        .filter(|old| old.args != new.args)
        .cloned()
        .collect()
}

/// CREATE FUNCTION `f` where functions named `f` the running version may call exist with other
/// signatures.
pub(super) fn is_overload(cf: &ast::CreateFunction, schema: &Schema) -> bool {
    !other_overloads(cf, schema).is_empty()
}

/// An [`is_overload`] CREATE FUNCTION: `breaking-function-overload` when the new function takes
/// the calls of an existing one, `function-overload` otherwise.
pub(super) fn overload(
    cf: &ast::CreateFunction,
    node: &SyntaxNode,
    w: &[SmolStr],
    schema: &mut Schema,
) -> Class {
    let name = text_of(cf.name()).unwrap_or_default();
    let new = signature(cf.param_list());
    let others = other_overloads(cf, schema);
    let mut c = create_replaceable(node, w, schema);
    let show = |s: &FunctionSig| format!("{name}({})", s.args.join(", "));
    if let Some(old) = others.iter().find(|old| takes_calls_of(&new, old)) {
        c.raise(StmtPhase::Breaking);
        c.finding(
            RuleId::BreakingFunctionOverload,
            format!(
                "`{}` also takes the calls of the existing `{}` (its defaults fill the rest): \
                 PostgreSQL refuses them as ambiguous (`function {} is not unique`), the running \
                 version's included",
                show(&new),
                show(old),
                show(old)
            ),
            "give the new function another name; or leave out the defaults that let it take the \
             old calls; or replace the old function (DROP and CREATE in one file) when both \
             versions work with the new one",
        );
    } else {
        c.finding(
            RuleId::FunctionOverload,
            format!(
                "`{}` is another overload of `{name}`, which exists as `{}`: a call of the running \
                 version whose argument types are not exact (a literal, an implicit cast) may now \
                 run the new function",
                show(&new),
                others.iter().map(show).collect::<Vec<_>>().join("`, `")
            ),
            "give the new function another name, or check that every call of the old version \
             names its argument types exactly",
        );
    }
    c
}

/// The function `cf` defines again, as the running version may call it, when `cf` returns
/// something else (see [`FunctionSig::returns`]): the one it replaces (CREATE OR REPLACE; `true`:
/// PostgreSQL refuses it, "cannot change return type of existing function", PostgreSQL manual,
/// CREATE FUNCTION), or the one the file dropped before (`false`: the replace succeeds, and the
/// old version's calls get the new type).
pub(super) fn return_change(
    cf: &ast::CreateFunction,
    w: &[SmolStr],
    schema: &Schema,
) -> Option<(FunctionSig, bool)> {
    let name = text_of(cf.name())?;
    let new = FunctionSig {
        returns: returns(cf),
        ..signature(cf.param_list())
    };
    let differs = |old: &&FunctionSig| {
        old.args == new.args && !old.returns.is_empty() && old.returns != new.returns
    };
    if has_seq(w, &["or", "replace"])
        && let Some(old) = schema.functions(&key(&name)).iter().find(differs)
    {
        return Some((old.clone(), true));
    }
    let dropped = schema.functions_dropped_in_file(&key(&name));
    dropped.iter().find(differs).map(|old| (old.clone(), false))
}

/// A [`return_change`]: `breaking-function-signature`.
pub(super) fn changed_return(
    cf: &ast::CreateFunction,
    node: &SyntaxNode,
    w: &[SmolStr],
    schema: &mut Schema,
) -> Class {
    let name = text_of(cf.name()).unwrap_or_default();
    let (old, refused) = return_change(cf, w, schema).unwrap_or_default();
    let new = returns(cf);
    let mut c = create_replaceable(node, w, schema);
    c.raise(StmtPhase::Breaking);
    let what = format!(
        "`{name}({})` returns `{}` in the running version's schema and `{new}` here",
        old.args.join(", "),
        old.returns
    );
    c.finding(
        RuleId::BreakingFunctionSignature,
        if refused {
            format!(
                "{what}: PostgreSQL refuses CREATE OR REPLACE that changes a function's return \
                 type (cannot change return type of existing function); dropped and created \
                 again instead, the running version's calls would get the new type"
            )
        } else {
            format!("{what}: the running version's calls of it get the new type from the commit on")
        },
        RECIPE_FUNCTION_SIGNATURE,
    );
    c
}

/// How to change what a function returns while the old version calls it.
pub(super) const RECIPE_FUNCTION_SIGNATURE: &str = "create the new function under a new name \
     (expand), move the app to it, and drop the old one in a contract migration";

/// The triggers of tables the running version writes that run the function `cf` replaces:
/// `CREATE OR REPLACE FUNCTION f()`, or `CREATE FUNCTION f()` after the file dropped it.
pub(super) fn live_triggers(
    cf: &ast::CreateFunction,
    w: &[SmolStr],
    schema: &Schema,
) -> Vec<(String, String)> {
    let Some(name) = text_of(cf.name()) else {
        return Vec::new();
    };
    let k = key(&name);
    let replaces = has_seq(w, &["or", "replace"])
        || schema
            .functions_dropped_in_file(&k)
            .iter()
            .any(|s| s.args.is_empty());
    if !replaces
        || !signature(cf.param_list()).args.is_empty()
        || schema.is_new_object_in_file("function", &object_key(&name, None))
    {
        return Vec::new();
    }
    schema.live_triggers_running(&k)
}

/// CREATE [OR REPLACE] FUNCTION of the function of [`live_triggers`]: the new body runs on the
/// running version's writes from the commit on (PostgreSQL manual, 37.1 Overview of Trigger
/// Behavior), and may change or reject them as a new trigger would: contract, with
/// `constraint-rejects-old-writes`, unless the file declares its phase.
pub(super) fn trigger_function(
    cf: &ast::CreateFunction,
    node: &SyntaxNode,
    w: &[SmolStr],
    schema: &mut Schema,
) -> Class {
    let name = text_of(cf.name()).unwrap_or_default();
    let triggers: Vec<String> = live_triggers(cf, w, schema)
        .into_iter()
        .map(|(table, trigger)| format!("`{trigger}` on `{table}`"))
        .collect();
    let mut c = create_replaceable(node, w, schema);
    c.raise(StmtPhase::Contract);
    c.declarable = true;
    c.finding(
        RuleId::ConstraintRejectsOldWrites,
        format!(
            "`{name}` is the function of the trigger {}: its new body runs on the running \
             version's writes, and cutover cannot read whether it changes or rejects them; \
             cutover places it after that version is retired",
            triggers.join(", ")
        ),
        RECIPE_CONSTRAINT_OLD_WRITES,
    );
    c
}

/// ALTER FUNCTION / PROCEDURE changing how an existing function behaves (STRICT, VOLATILE,
/// SECURITY DEFINER, SET search_path, ...): the running version's calls see it at once, and a
/// `SET search_path` or `STRICT` can make them fail or return NULL. Contract with
/// `replaces-object`; on a function this release created, expand.
pub(super) fn alter_function(af: &ast::AlterFunction, schema: &Schema) -> Class {
    let name = af
        .function_sig()
        .and_then(|s| s.function_name_ref())
        .map(|n| super::tokens::one_line(n.syntax()))
        .unwrap_or_default();
    let unknown = || Inverse::Unknown(no_inverse_reason());
    if name.is_empty() || schema.is_new_object("function", &object_key(&name, None)) {
        return Class::new(StmtPhase::Expand, unknown());
    }
    let mut c = Class::new(StmtPhase::Contract, unknown());
    c.declarable = true;
    c.finding(
        RuleId::ReplacesObject,
        format!(
            "ALTER FUNCTION changes how `{name}` behaves for the version still running (a \
             `STRICT` returns NULL for its NULL arguments, a `SET search_path` changes what its \
             body finds); cutover places it after that version is retired"
        ),
        "nothing to do if it may wait for the contract; if both versions work with the new \
         behaviour, declare `-- cutover:phase=expand` at the top of the file",
    );
    c
}
