--
-- PostgreSQL database dump (excerpt: the invoice_lines table, new in this release)
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: invoice_lines; Type: TABLE; Schema: billing; Owner: app
--

CREATE TABLE billing.invoice_lines (
    id integer NOT NULL,
    invoice_id bigint NOT NULL,
    description text NOT NULL,
    quantity integer DEFAULT 1 NOT NULL,
    unit_price numeric(10,2) NOT NULL
);


ALTER TABLE billing.invoice_lines OWNER TO app;

--
-- Name: invoice_lines_id_seq; Type: SEQUENCE; Schema: billing; Owner: app
--

CREATE SEQUENCE billing.invoice_lines_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE billing.invoice_lines_id_seq OWNER TO app;

--
-- Name: invoice_lines_id_seq; Type: SEQUENCE OWNED BY; Schema: billing; Owner: app
--

ALTER SEQUENCE billing.invoice_lines_id_seq OWNED BY billing.invoice_lines.id;


--
-- Name: invoice_lines id; Type: DEFAULT; Schema: billing; Owner: app
--

ALTER TABLE ONLY billing.invoice_lines ALTER COLUMN id SET DEFAULT nextval('billing.invoice_lines_id_seq'::regclass);


--
-- Name: invoice_lines invoice_lines_pkey; Type: CONSTRAINT; Schema: billing; Owner: app
--

ALTER TABLE ONLY billing.invoice_lines
    ADD CONSTRAINT invoice_lines_pkey PRIMARY KEY (id);


--
-- Name: invoice_lines_invoice_id_idx; Type: INDEX; Schema: billing; Owner: app
--

CREATE INDEX invoice_lines_invoice_id_idx ON billing.invoice_lines USING btree (invoice_id);


--
-- Name: invoice_lines invoice_lines_invoice_id_fkey; Type: FK CONSTRAINT; Schema: billing; Owner: app
--

ALTER TABLE ONLY billing.invoice_lines
    ADD CONSTRAINT invoice_lines_invoice_id_fkey FOREIGN KEY (invoice_id) REFERENCES billing.invoices(id) ON DELETE CASCADE;


--
-- Name: TABLE invoice_lines; Type: COMMENT; Schema: billing; Owner: app
--

COMMENT ON TABLE billing.invoice_lines IS 'One row per billed item.';
