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

/// A type as a signature compares it: PostgreSQL's name, without modifiers.
fn canonical(text: &str) -> String {
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
