//! Sequences moved backwards or capped: `setval`, `RESTART`, a `MAXVALUE` or `MINVALUE`, `CYCLE`,
//! a narrower `AS` type or a negative `INCREMENT`, on a sequence or an identity column the
//! running version inserts with. cutover cannot know where the sequence stands against the rows
//! already there, so the old version's next insert may collide with a key it issued before or
//! fail at the limit (PostgreSQL manual, ALTER SEQUENCE; 9.17 Sequence Manipulation Functions).

use super::*;

/// Whether the words of an ALTER SEQUENCE, or of an identity column's ALTER COLUMN, move the
/// sequence somewhere the running version's inserts may not expect. Only forward changes pass:
/// `INCREMENT` by a positive step, `CACHE`, `OWNED BY`, `START WITH` (read by a later RESTART
/// only), `NO MAXVALUE`, `NO MINVALUE`, `NO CYCLE`, `AS bigint`.
pub(super) fn moves(w: &[SmolStr]) -> bool {
    w.iter().enumerate().any(|(i, t)| {
        let prev = i.checked_sub(1).and_then(|p| w.get(p)).map(SmolStr::as_str);
        let next = |k: usize| w.get(i + k).map(SmolStr::as_str);
        match t.as_str() {
            "restart" => true,
            "maxvalue" | "minvalue" | "cycle" => prev != Some("no"),
            "as" => matches!(
                next(1),
                Some("smallint" | "int2" | "integer" | "int" | "int4")
            ),
            "increment" => next(1) == Some("-") || (next(1) == Some("by") && next(2) == Some("-")),
            _ => false,
        }
    })
}

/// Raises `c` for a moved sequence: contract until the file declares its phase (`expand` when
/// the move is forward, past every key already issued), with a `sequence-moved` finding.
pub(super) fn moved(c: &mut Class, what: String) {
    c.raise(StmtPhase::Contract);
    c.needs_declaration = true;
    c.finding(
        RuleId::SequenceMoved,
        format!(
            "{what}: cutover cannot tell whether it moves the sequence behind keys already issued \
             or caps it, and the running version's next insert would then collide or fail"
        ),
        "move a sequence only forward, past every key in the table (and never while inserts \
         run if it is computed from max(id)); then declare the file's phase at its top, \
         `-- cutover:phase=expand`; or run it in a `recreate` release",
    );
}

/// `SELECT setval(...)` and `ALTER SEQUENCE` that [`moves`] a sequence the running version may
/// use: see [`moved`].
pub(super) fn alter_sequence(node: &SyntaxNode, w: &[SmolStr], schema: &Schema) -> Option<Class> {
    if !moves(w) {
        return None;
    }
    let name = name_after(node, "sequence", &["if", "exists"]).unwrap_or_default();
    if schema.is_new_object("sequence", &object_key(&name, None)) {
        return None;
    }
    let mut c = Class::new(StmtPhase::Expand, Inverse::Unknown(no_inverse_reason()));
    moved(
        &mut c,
        format!(
            "`{}` moves sequence `{name}`",
            summarize(&node.text().to_string())
        ),
    );
    Some(c)
}

/// `setval(...)` in `node`, a SELECT: see [`moved`], unless the sequence it names is new to this
/// release.
pub(super) fn set_value(c: &mut Class, node: &SyntaxNode, schema: &Schema) {
    let named = literal_contents(node)
        .into_iter()
        .next()
        .unwrap_or_default();
    let name = named.strip_prefix("public.").unwrap_or(&named).to_string();
    if !name.is_empty() && schema.is_new_object("sequence", &object_key(&name, None)) {
        return;
    }
    moved(
        c,
        format!(
            "`{}` sets sequence `{named}`",
            summarize(&node.text().to_string())
        ),
    );
}
