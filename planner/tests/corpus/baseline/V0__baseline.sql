-- The schema every corpus file is linted against. It is applied before the release (the test
-- passes it as the baseline), so every table here is live: the old app version reads and writes
-- it while a corpus file runs. Each corpus file is analyzed alone on top of this file.
--
-- The sections imitate the tools whose migrations the corpus files imitate, so the schema model
-- has to learn each style: plain DDL (diesel), quoted identifiers (Prisma, pop/fizz), and a
-- `pg_dump --schema-only` excerpt (SET lines, ALTER TABLE ONLY ... PRIMARY KEY, sequences
-- OWNED BY, identity added by ALTER COLUMN, a second schema).

-- ---------------------------------------------------------------------------------------------
-- Plain DDL, the way diesel and golang-migrate projects write it.
-- ---------------------------------------------------------------------------------------------
-- diesel's setup migration defines a helper that gives a table an updated_at trigger.
CREATE OR REPLACE FUNCTION diesel_set_updated_at() RETURNS trigger AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD AND NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := current_timestamp;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION diesel_manage_updated_at(tbl regclass) RETURNS void AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s FOR EACH ROW EXECUTE PROCEDURE diesel_set_updated_at()', tbl);
END;
$$ LANGUAGE plpgsql;

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    name VARCHAR(100),
    bio TEXT,
    legacy_flags INTEGER,
    created_at TIMESTAMP NOT NULL DEFAULT NOW()
);

CREATE TABLE posts (
    id SERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    title VARCHAR NOT NULL,
    body TEXT NOT NULL,
    published BOOLEAN NOT NULL DEFAULT FALSE,
    score NUMERIC(8, 2),
    slug VARCHAR(80)
);
CREATE INDEX posts_user_id_idx ON posts (user_id);
CREATE INDEX posts_published_idx ON posts (published);

CREATE VIEW published_posts AS
SELECT id, user_id, title FROM posts WHERE published;

CREATE TABLE comments (
    id BIGSERIAL PRIMARY KEY,
    post_id INTEGER NOT NULL REFERENCES posts (id),
    author_id BIGINT,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE notifications (
    id BIGSERIAL PRIMARY KEY,
    post_id INTEGER NOT NULL REFERENCES posts (id),
    recipient_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    read BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE sessions (
    id UUID PRIMARY KEY,
    user_id BIGINT NOT NULL,
    token TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    actor_id BIGINT,
    payload JSONB NOT NULL
);

CREATE TABLE job_queue (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    payload JSONB NOT NULL,
    finished_at TIMESTAMPTZ
);

CREATE TABLE job_queue_archive (
    id BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload JSONB NOT NULL,
    finished_at TIMESTAMPTZ
);

-- Unfinished jobs stay in the archive: a rule the old version's deletes go through.
CREATE RULE job_queue_archive_keep_unfinished AS ON DELETE TO job_queue_archive
    WHERE OLD.finished_at IS NULL DO INSTEAD NOTHING;

CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped');

CREATE TABLE orders (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL,
    status order_status NOT NULL DEFAULT 'pending',
    total_cents INTEGER NOT NULL,
    discount_cents INTEGER,
    note VARCHAR(200),
    placed_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE teams (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    display_name TEXT NOT NULL
);

CREATE TABLE team_members (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id BIGINT NOT NULL REFERENCES teams (id),
    user_id BIGINT NOT NULL
);

CREATE TABLE tasks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    priority SMALLINT NOT NULL,
    owner_id BIGINT,
    legacy_note TEXT
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := NOW();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- A trigger the old version's writes already go through (its function can be replaced), and a
-- function the old version calls (its result type can change).
CREATE FUNCTION notifications_guard() RETURNS trigger AS $$
BEGIN
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER notifications_guard BEFORE INSERT OR UPDATE ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_guard();

CREATE FUNCTION slugify(input text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT lower(regexp_replace(input, '[^a-z0-9]+', '-', 'gi')) $$;

-- ---------------------------------------------------------------------------------------------
-- Prisma: quoted, case-sensitive identifiers; primary keys as table constraints.
-- ---------------------------------------------------------------------------------------------
-- CreateEnum
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');

-- CreateTable
CREATE TABLE "User" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "nickname" VARCHAR(32),
    "role" "Role" NOT NULL DEFAULT 'USER',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Post" (
    "id" SERIAL NOT NULL,
    "title" TEXT NOT NULL,
    "content" TEXT,
    "published" BOOLEAN NOT NULL DEFAULT false,
    "authorId" INTEGER,

    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiToken" (
    "tokenHash" TEXT NOT NULL,
    "label" TEXT NOT NULL,
    "userId" INTEGER NOT NULL,

    CONSTRAINT "ApiToken_pkey" PRIMARY KEY ("tokenHash")
);

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");

-- AddForeignKey
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- ---------------------------------------------------------------------------------------------
-- pop / fizz: quoted lower-case identifiers, PRIMARY KEY(...) written before the columns.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE "identities" (
"id" UUID NOT NULL,
PRIMARY KEY("id"),
"schema_id" VARCHAR (2048) NOT NULL,
"traits" jsonb NOT NULL,
"state" VARCHAR (255) NOT NULL DEFAULT 'active',
"created_at" timestamp NOT NULL,
"updated_at" timestamp NOT NULL
);

CREATE TABLE "widgets" (
"id" SERIAL NOT NULL,
PRIMARY KEY("id"),
"name" VARCHAR (255) NOT NULL,
"color" VARCHAR (50),
"identity_id" UUID,
"created_at" timestamp NOT NULL,
"updated_at" timestamp NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- A `pg_dump --schema-only` excerpt (a history collapsed into one baseline).
-- ---------------------------------------------------------------------------------------------
SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET client_min_messages = warning;

CREATE SCHEMA billing;

ALTER SCHEMA billing OWNER TO app;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.customers (
    customer_no integer NOT NULL,
    name character varying(120) NOT NULL,
    city text,
    region text
);

ALTER TABLE public.customers OWNER TO app;

CREATE SEQUENCE public.customers_customer_no_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER TABLE public.customers_customer_no_seq OWNER TO app;

ALTER SEQUENCE public.customers_customer_no_seq OWNED BY public.customers.customer_no;

CREATE TABLE public.accounts (
    account_uuid uuid NOT NULL,
    handle text NOT NULL,
    display_name text,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE public.accounts OWNER TO app;

CREATE TABLE public.event_log (
    id bigint NOT NULL,
    kind text NOT NULL,
    body jsonb
);

ALTER TABLE public.event_log OWNER TO app;

CREATE TABLE billing.invoices (
    id bigint NOT NULL,
    customer_no integer NOT NULL,
    amount numeric(10,2) NOT NULL,
    status text NOT NULL,
    issued_on date
);

ALTER TABLE billing.invoices OWNER TO app;

ALTER TABLE billing.invoices ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME billing.invoices_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

ALTER TABLE ONLY public.customers ALTER COLUMN customer_no SET DEFAULT nextval('public.customers_customer_no_seq'::regclass);

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (account_uuid);

ALTER TABLE ONLY public.customers
    ADD CONSTRAINT customers_pkey PRIMARY KEY (customer_no);

ALTER TABLE ONLY billing.invoices
    ADD CONSTRAINT invoices_pkey PRIMARY KEY (id);

CREATE UNIQUE INDEX accounts_handle_key ON public.accounts USING btree (handle);

CREATE INDEX invoices_customer_no_idx ON billing.invoices USING btree (customer_no);

ALTER TABLE ONLY billing.invoices
    ADD CONSTRAINT invoices_customer_no_fkey FOREIGN KEY (customer_no) REFERENCES public.customers(customer_no);

COMMENT ON TABLE public.customers IS 'One row per paying customer.';

CREATE FUNCTION public.customers_region_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RETURN NEW;
END;
$$;

CREATE TRIGGER customers_region_changed BEFORE UPDATE OF region ON public.customers FOR EACH ROW EXECUTE FUNCTION public.customers_region_changed();

ALTER TABLE public.event_log ENABLE ROW LEVEL SECURITY;

CREATE POLICY event_log_public ON public.event_log USING ((kind <> 'internal'::text));

-- A materialized view the old version reads (report kind 9: REFRESH without CONCURRENTLY).
CREATE MATERIALIZED VIEW post_counts AS
SELECT user_id, count(*) AS posts FROM posts GROUP BY user_id;
CREATE UNIQUE INDEX post_counts_user_id_key ON post_counts (user_id);

-- Foreign keys with referential actions the old version relies on (V471-V478).
CREATE TABLE public.comment_attachments (
    id BIGSERIAL PRIMARY KEY,
    comment_id BIGINT NOT NULL REFERENCES public.comments (id) ON DELETE CASCADE,
    uploader_id BIGINT CONSTRAINT comment_attachments_uploader_fkey REFERENCES public.users (id) DEFERRABLE INITIALLY DEFERRED,
    url TEXT NOT NULL
);
-- A child table of audit_log (inheritance; V486).
CREATE TABLE public.audit_log_2024 () INHERITS (public.audit_log);
