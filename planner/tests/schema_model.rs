//! The schema model learns what real baselines declare: keys added by `ALTER TABLE [ONLY] ...
//! ADD CONSTRAINT` (pg_dump's style), `USING INDEX`, foreign keys, identity, generated and serial
//! columns, views, schemas and quoted identifiers; and it forgets what DROP removes. Each test
//! replays migrations through `analyze`, as `plan` does, and reads the model and the rename the
//! planner would rewrite.

use cutover_planner::analysis::{AnalyzeOptions, ColumnRename, analyze};
use cutover_planner::migrations::MigrationFile;
use cutover_planner::schema::{Attachment, Identity, Schema};

/// Analyzes `V1`.. in order (`V1` as the applied baseline) and returns the schema after them all
/// and the renames the release's migrations hold.
fn replay(files: &[&str]) -> (Schema, Vec<ColumnRename>) {
    let files: Vec<MigrationFile> = files
        .iter()
        .enumerate()
        .map(|(i, sql)| {
            let name = format!("V{}__m.sql", i + 1);
            MigrationFile::from_bytes(&name, &name, sql.as_bytes()).unwrap()
        })
        .collect();
    let a = analyze(&files, Some(1), AnalyzeOptions { release: true });
    let renames = a
        .migrations
        .iter()
        .flat_map(|m| m.statements.iter().filter_map(|s| s.rename.clone()))
        .collect();
    (a.schema, renames)
}

/// The one rename of a release whose baseline is `base` and whose V2 is `rename`.
fn rename_after(base: &str, rename: &str) -> ColumnRename {
    let (_, mut renames) = replay(&[base, rename]);
    assert_eq!(renames.len(), 1, "{rename}");
    renames.pop().unwrap()
}

/// A baseline as `pg_dump --schema-only` writes it: session settings, tables without
/// constraints, sequences owned by columns, defaults and keys added afterwards by ALTER TABLE
/// ONLY, identity added by ALTER COLUMN.
const PG_DUMP: &str = r#"
SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET default_table_access_method = heap;

CREATE TABLE public.invoices (
    invoice_no integer NOT NULL,
    customer_id bigint NOT NULL,
    title character varying(200) NOT NULL,
    total numeric(12,2)
);

CREATE SEQUENCE public.invoices_invoice_no_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.invoices_invoice_no_seq OWNED BY public.invoices.invoice_no;

CREATE TABLE public.customers (
    id bigint NOT NULL,
    name text NOT NULL,
    email text
);

ALTER TABLE public.customers ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.customers_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

ALTER TABLE ONLY public.invoices ALTER COLUMN invoice_no
    SET DEFAULT nextval('public.invoices_invoice_no_seq'::regclass);

ALTER TABLE ONLY public.customers
    ADD CONSTRAINT customers_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.customers
    ADD CONSTRAINT customers_email_key UNIQUE (email);

ALTER TABLE ONLY public.invoices
    ADD CONSTRAINT invoices_pkey PRIMARY KEY (invoice_no);

ALTER TABLE ONLY public.invoices
    ADD CONSTRAINT invoices_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(id);
"#;

#[test]
fn a_pg_dump_baseline_declares_keys_identity_sequences_and_foreign_keys() {
    let (schema, _) = replay(&[PG_DUMP]);
    let invoices = schema
        .table("invoices")
        .expect("public.invoices is invoices");
    assert_eq!(invoices.primary_key, ["invoice_no"]);
    assert_eq!(invoices.primary_key_name.as_deref(), Some("invoices_pkey"));
    let no = invoices.column("invoice_no").unwrap();
    assert!(no.not_null);
    assert_eq!(
        no.sequence_default.as_deref(),
        Some("nextval('public.invoices_invoice_no_seq'::regclass)")
    );
    let fk = &invoices.foreign_keys[0];
    assert_eq!(
        (fk.name.as_str(), &fk.columns[..], fk.references.as_str()),
        (
            "invoices_customer_id_fkey",
            &["customer_id".to_string()][..],
            "customers"
        )
    );
    assert_eq!(fk.referenced_columns, ["id"]);
    let customers = schema.table("public.customers").unwrap();
    assert_eq!(customers.primary_key, ["id"]);
    assert_eq!(
        customers.column("id").unwrap().identity,
        Some(Identity::Always)
    );
    assert_eq!(customers.unique[0].name, "customers_email_key");

    // The rename's backfill walks the declared key, not a guessed `id`.
    let r = rename_after(
        PG_DUMP,
        "ALTER TABLE invoices RENAME COLUMN title TO subject;",
    );
    assert_eq!(r.key.as_deref(), Some("invoice_no"));
    assert_eq!(r.key_types, ["integer"]);
    assert_eq!(r.column_type.as_deref(), Some("character varying(200)"));
    assert!(r.not_null);
    assert!(r.attachments.is_empty(), "{:?}", r.attachments);

    // What the copy cannot carry, by kind.
    let r = rename_after(
        PG_DUMP,
        "ALTER TABLE customers RENAME COLUMN id TO customer_id;",
    );
    assert_eq!(
        r.attachments,
        [
            Attachment::PrimaryKey {
                constraint: "customers_pkey".into(),
                columns: vec!["id".into()]
            },
            Attachment::Identity {
                identity: Identity::Always
            },
            Attachment::ReferencedBy {
                table: "invoices".into(),
                constraint: "invoices_customer_id_fkey".into()
            },
        ]
    );
    let r = rename_after(
        PG_DUMP,
        "ALTER TABLE public.invoices RENAME COLUMN invoice_no TO number;",
    );
    assert!(
        matches!(
            &r.attachments[..],
            [
                Attachment::PrimaryKey { .. },
                Attachment::SequenceDefault { .. }
            ]
        ),
        "{:?}",
        r.attachments
    );
}

#[test]
fn alter_table_if_exists_only_and_using_index_declare_keys() {
    let base = "CREATE TABLE orders (order_no bigint NOT NULL, ref text NOT NULL, note text);
CREATE UNIQUE INDEX CONCURRENTLY orders_no_idx ON orders (order_no);
CREATE UNIQUE INDEX orders_ref_idx ON public.orders USING btree (ref);
ALTER TABLE IF EXISTS ONLY public.orders ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX \
    orders_no_idx;
ALTER TABLE ONLY orders ADD UNIQUE USING INDEX orders_ref_idx;";
    let (schema, _) = replay(&[base]);
    let orders = schema.table("orders").unwrap();
    assert_eq!(orders.primary_key, ["order_no"]);
    assert_eq!(orders.primary_key_name.as_deref(), Some("orders_pkey"));
    // PostgreSQL renames the index to the constraint; without a name, the constraint takes the
    // index's.
    assert!(schema.index("orders_pkey").is_some() && schema.index("orders_no_idx").is_none());
    assert_eq!(orders.unique[0].name, "orders_ref_idx");
    assert_eq!(orders.unique[0].columns, ["ref"]);
    let r = rename_after(base, "ALTER TABLE orders RENAME COLUMN note TO remark;");
    assert_eq!(r.key.as_deref(), Some("order_no"));

    // An index on an expression cannot say which column the key is: nothing is guessed.
    let (schema, _) = replay(&["CREATE TABLE t (code text NOT NULL);
CREATE UNIQUE INDEX t_lower_idx ON t (lower(code));
ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_lower_idx;"]);
    assert!(schema.table("t").unwrap().primary_key.is_empty());
}

#[test]
fn quoted_identifiers_keep_their_case_and_reach_the_sql_quoted() {
    let base = r#"CREATE TABLE "Accounts" (
    "AccountNo" bigint GENERATED BY DEFAULT AS IDENTITY,
    "DisplayName" text NOT NULL,
    "order" int,
    CONSTRAINT "Accounts_PK" PRIMARY KEY ("AccountNo")
);
CREATE TABLE accounts (id bigint PRIMARY KEY, displayname text);"#;
    let (schema, _) = replay(&[base]);
    let quoted = schema.table("\"Accounts\"").unwrap();
    assert_eq!(quoted.primary_key, ["\"AccountNo\""]);
    assert!(quoted.column("\"order\"").is_some());
    // `Accounts` unquoted folds to `accounts`: another table.
    assert_eq!(schema.table("Accounts").unwrap().primary_key, ["id"]);

    let r = rename_after(
        base,
        r#"ALTER TABLE "Accounts" RENAME COLUMN "DisplayName" TO "FullName";"#,
    );
    assert_eq!(r.key.as_deref(), Some("\"AccountNo\""), "the key as SQL");
    assert_eq!(r.column_type.as_deref(), Some("text"));
    assert!(r.attachments.is_empty());
    let r = rename_after(
        base,
        r#"ALTER TABLE "Accounts" RENAME COLUMN "AccountNo" TO account_no;"#,
    );
    assert_eq!(
        r.attachments,
        [
            Attachment::PrimaryKey {
                constraint: "\"Accounts_PK\"".into(),
                columns: vec!["\"AccountNo\"".into()]
            },
            Attachment::Identity {
                identity: Identity::ByDefault
            }
        ]
    );
    // The unquoted table of the same letters is not the quoted one.
    let r = rename_after(
        base,
        "ALTER TABLE accounts RENAME COLUMN displayname TO name;",
    );
    assert_eq!(r.key.as_deref(), Some("id"));
}

#[test]
fn schemas_keep_tables_apart_and_follow_set_schema() {
    let base = "CREATE SCHEMA app;
CREATE TABLE app.users (uid bigint PRIMARY KEY, name text);
CREATE TABLE users (id bigint PRIMARY KEY, name text);
CREATE TABLE app.sessions (token text PRIMARY KEY, user_id bigint REFERENCES app.users);
CREATE VIEW public.user_names AS SELECT name FROM users;";
    let r = rename_after(
        base,
        "ALTER TABLE app.users RENAME COLUMN name TO full_name;",
    );
    assert_eq!(r.key.as_deref(), Some("uid"));
    assert!(r.attachments.is_empty(), "the view reads public.users");
    let r = rename_after(base, "ALTER TABLE users RENAME COLUMN name TO full_name;");
    assert_eq!(r.key.as_deref(), Some("id"));
    assert_eq!(
        r.attachments,
        [Attachment::ReadByView {
            view: "user_names".into()
        }]
    );
    // `REFERENCES app.users` without columns is its primary key, `uid`.
    let r = rename_after(base, "ALTER TABLE APP.USERS RENAME COLUMN UID TO user_id;");
    assert!(
        r.attachments.contains(&Attachment::ReferencedBy {
            table: "app.sessions".into(),
            constraint: "sessions_user_id_fkey".into()
        }),
        "{:?}",
        r.attachments
    );

    // SET SCHEMA moves the table; the foreign key follows it.
    let (schema, _) = replay(&[base, "ALTER TABLE app.users SET SCHEMA archive;"]);
    assert!(schema.table("app.users").is_none());
    assert_eq!(schema.table("archive.users").unwrap().primary_key, ["uid"]);
    assert_eq!(
        schema.table("app.sessions").unwrap().foreign_keys[0].references,
        "archive.users"
    );
}

#[test]
fn foreign_keys_inline_table_level_and_self_referencing() {
    let base =
        "CREATE TABLE countries (id bigint PRIMARY KEY, code text NOT NULL UNIQUE, name text);
CREATE TABLE cities (
    id bigint PRIMARY KEY,
    country_code text NOT NULL REFERENCES countries (code),
    parent_id bigint,
    FOREIGN KEY (parent_id) REFERENCES cities
);";
    let (schema, _) = replay(&[base]);
    let cities = schema.table("cities").unwrap();
    let fks: Vec<(&str, &str, Vec<String>)> = cities
        .foreign_keys
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                f.references.as_str(),
                f.referenced_columns.clone(),
            )
        })
        .collect();
    assert_eq!(
        fks,
        [
            ("cities_country_code_fkey", "countries", vec!["code".into()]),
            ("cities_parent_id_fkey", "cities", vec!["id".into()]),
        ]
    );
    // A UNIQUE column a foreign key references cannot be copied away.
    let r = rename_after(
        base,
        "ALTER TABLE countries RENAME COLUMN code TO iso_code;",
    );
    assert_eq!(
        r.attachments,
        [Attachment::ReferencedBy {
            table: "cities".into(),
            constraint: "cities_country_code_fkey".into()
        }]
    );
    // The table's own foreign key counts too.
    let r = rename_after(base, "ALTER TABLE cities RENAME COLUMN id TO city_id;");
    assert!(r.attachments.contains(&Attachment::ReferencedBy {
        table: "cities".into(),
        constraint: "cities_parent_id_fkey".into()
    }));
    // A column the others do not need is free to move.
    let r = rename_after(base, "ALTER TABLE countries RENAME COLUMN name TO label;");
    assert!(r.attachments.is_empty());
}

#[test]
fn identity_generated_and_serial_columns() {
    let base = "CREATE TABLE lines (
    id bigserial PRIMARY KEY,
    ticket_no serial,
    position int GENERATED BY DEFAULT AS IDENTITY,
    price numeric NOT NULL,
    qty int NOT NULL,
    total numeric GENERATED ALWAYS AS (price * qty) STORED,
    note text
);";
    let attachments = |col: &str| {
        rename_after(
            base,
            &format!("ALTER TABLE lines RENAME COLUMN {col} TO renamed;"),
        )
        .attachments
    };
    assert_eq!(
        attachments("ticket_no"),
        [Attachment::SequenceDefault {
            default: "serial".into()
        }]
    );
    assert_eq!(
        attachments("position"),
        [Attachment::Identity {
            identity: Identity::ByDefault
        }]
    );
    assert_eq!(attachments("total"), [Attachment::Generated]);
    assert_eq!(
        attachments("qty"),
        [Attachment::GeneratedFrom {
            column: "total".into()
        }]
    );
    assert!(attachments("note").is_empty());

    // ALTER COLUMN changes what a column is.
    let (schema, _) = replay(&[
        base,
        "ALTER TABLE lines ALTER COLUMN position DROP IDENTITY;
ALTER TABLE lines ALTER COLUMN total DROP EXPRESSION;
ALTER TABLE lines ALTER COLUMN ticket_no DROP DEFAULT;
ALTER TABLE lines ALTER COLUMN note SET DEFAULT nextval('note_seq');
ALTER TABLE lines ADD COLUMN serial_no bigint GENERATED ALWAYS AS IDENTITY UNIQUE;",
    ]);
    let t = schema.table("lines").unwrap();
    assert_eq!(t.column("position").unwrap().identity, None);
    assert_eq!(t.column("total").unwrap().generated_from, None);
    assert_eq!(t.column("ticket_no").unwrap().sequence_default, None);
    assert!(t.column("note").unwrap().sequence_default.is_some());
    assert_eq!(
        t.column("serial_no").unwrap().identity,
        Some(Identity::Always)
    );
    assert_eq!(t.unique[0].name, "lines_serial_no_key");
}

#[test]
fn views_record_the_columns_they_read() {
    let base = "CREATE TABLE users (id bigint PRIMARY KEY, email text, name text, bio text);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, amount numeric, note text);
CREATE VIEW emails AS SELECT u.id, u.email FROM users u;
CREATE VIEW everything AS SELECT o.*, u.name FROM orders o JOIN users u ON u.id = o.user_id;
CREATE MATERIALIZED VIEW order_rows AS SELECT row_to_json(orders) FROM orders;";
    let views = |table: &str, col: &str| -> Vec<String> {
        rename_after(
            base,
            &format!("ALTER TABLE {table} RENAME COLUMN {col} TO renamed;"),
        )
        .attachments
        .into_iter()
        .filter_map(|a| match a {
            Attachment::ReadByView { view } => Some(view),
            _ => None,
        })
        .collect()
    };
    assert_eq!(views("users", "email"), ["emails"]);
    assert_eq!(views("users", "name"), ["everything"]);
    assert!(views("users", "bio").is_empty(), "no view reads bio");
    // `o.*` reads every column of orders; a whole-row reference too.
    assert_eq!(views("orders", "note"), ["everything", "order_rows"]);

    // A view on a view, and DROP VIEW forgetting it.
    let (schema, _) = replay(&[
        base,
        "DROP VIEW emails; DROP MATERIALIZED VIEW IF EXISTS order_rows CASCADE;",
    ]);
    assert!(schema.view("emails").is_none() && schema.view("order_rows").is_none());
    assert!(schema.view("everything").is_some());
    // `SELECT *` and `TABLE t`.
    let r = rename_after(
        "CREATE TABLE t (a int, b int); CREATE VIEW v1 AS SELECT * FROM ONLY t; CREATE VIEW v2 AS \
         TABLE t;",
        "ALTER TABLE t RENAME COLUMN b TO c;",
    );
    assert_eq!(r.attachments.len(), 2, "{:?}", r.attachments);
}

#[test]
fn drops_and_renames_keep_the_model_in_step() {
    let base = "CREATE TABLE members (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
        handle text UNIQUE);
CREATE TABLE posts (id bigint PRIMARY KEY, member_id bigint CONSTRAINT posts_author_fk REFERENCES \
    members (id), body text);
CREATE VIEW handles AS SELECT handle FROM members;";
    // The table renamed: foreign keys and views follow it.
    let r = rename_after(
        &format!("{base}\nALTER TABLE members RENAME TO people;"),
        "ALTER TABLE people RENAME COLUMN handle TO nick;",
    );
    assert_eq!(
        r.attachments,
        [Attachment::ReadByView {
            view: "handles".into()
        }]
    );
    let r = rename_after(
        &format!("{base}\nALTER TABLE members RENAME TO people;"),
        "ALTER TABLE people RENAME COLUMN id TO person_id;",
    );
    assert!(r.attachments.contains(&Attachment::ReferencedBy {
        table: "posts".into(),
        constraint: "posts_author_fk".into()
    }));
    // A renamed column keeps its key and references.
    let (schema, _) = replay(&[base, "ALTER TABLE members RENAME COLUMN id TO member_no;"]);
    assert_eq!(schema.table("members").unwrap().primary_key, ["member_no"]);
    assert_eq!(
        schema.table("posts").unwrap().foreign_keys[0].referenced_columns,
        ["member_no"]
    );
    // DROP CONSTRAINT, DROP VIEW and DROP TABLE remove what they added.
    let r = rename_after(
        &format!(
            "{base}\nALTER TABLE posts DROP CONSTRAINT posts_author_fk;\nDROP VIEW handles;\nALTER \
             TABLE members DROP CONSTRAINT members_pkey;"
        ),
        "ALTER TABLE members RENAME COLUMN handle TO nick;",
    );
    assert!(r.attachments.is_empty(), "{:?}", r.attachments);
    assert_eq!(r.key, None, "the key was dropped");
    let r = rename_after(
        &format!("{base}\nDROP TABLE posts;"),
        "ALTER TABLE members RENAME COLUMN id TO member_no;",
    );
    assert!(
        !r.attachments
            .iter()
            .any(|a| matches!(a, Attachment::ReferencedBy { .. })),
        "{:?}",
        r.attachments
    );
    // Dropping the key with CASCADE takes the foreign keys that needed it.
    let (schema, _) = replay(&[
        base,
        "ALTER TABLE members DROP CONSTRAINT members_pkey CASCADE;",
    ]);
    assert!(schema.table("posts").unwrap().foreign_keys.is_empty());
    // A quoted table dropped is the quoted one.
    let (schema, _) = replay(&[
        "CREATE TABLE \"Users\" (id int); CREATE TABLE users (id int);",
        "DROP TABLE \"Users\";",
    ]);
    assert!(schema.table("\"Users\"").is_none() && schema.table("users").is_some());
}

#[test]
fn policies_and_triggers_of_qualified_tables_function_results_and_view_types() {
    let base = r#"
CREATE SCHEMA app;
CREATE TABLE app."Customers" (id bigint PRIMARY KEY, score integer, region text);
CREATE POLICY score_policy ON app."Customers" USING ((score > 0));
CREATE FUNCTION app.region_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER region_changed BEFORE UPDATE OF region ON app."Customers"
    FOR EACH ROW EXECUTE FUNCTION app.region_changed();
CREATE FUNCTION order_count(uid bigint) RETURNS SETOF integer LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION split(s text, OUT head text, OUT tail text) LANGUAGE sql AS $$ SELECT s, s $$;
CREATE SEQUENCE invoice_seq;
CREATE VIEW scores AS SELECT c.id, score::text AS score, upper(region) AS region FROM app."Customers" c;
CREATE MATERIALIZED VIEW regions AS SELECT region FROM app."Customers" WITH NO DATA;
"#;
    let (schema, _) = replay(&[base, "SELECT 1;"]);
    // The policy and the trigger are the table's, by its whole qualified name.
    let used: Vec<Attachment> = schema.attachments(r#"app."Customers""#, "score");
    assert!(
        used.iter()
            .any(|a| matches!(a, Attachment::UsedBy { what, name }
            if what == "policy" && name == "score_policy")),
        "{used:?}"
    );
    let used = schema.attachments(r#"app."Customers""#, "region");
    assert!(
        used.iter()
            .any(|a| matches!(a, Attachment::UsedBy { what, .. } if what == "trigger")),
        "{used:?}"
    );
    assert_eq!(
        schema.live_triggers_running("app.region_changed"),
        [(
            r#"app."Customers""#.to_string(),
            "region_changed".to_string()
        )]
    );
    // What each function returns.
    assert_eq!(schema.functions("order_count")[0].returns, "setof int4");
    assert_eq!(
        schema.functions("split")[0].returns,
        "out(head text, tail text)"
    );
    // Sequences, views and materialized views are relations ALTER TABLE may name.
    assert_eq!(schema.non_table_relation("invoice_seq"), Some("sequence"));
    assert_eq!(schema.non_table_relation("scores"), Some("view"));
    assert_eq!(
        schema.non_table_relation("regions"),
        Some("materialized view")
    );
    assert_eq!(schema.non_table_relation(r#"app."Customers""#), None);
    // A view's column types, where known: a column of a known table, a cast; not a call.
    let v = schema.view("scores").unwrap();
    assert_eq!(
        v.types,
        [Some("int8".to_string()), Some("text".to_string()), None]
    );
    assert!(schema.view("regions").unwrap().unpopulated);
}
