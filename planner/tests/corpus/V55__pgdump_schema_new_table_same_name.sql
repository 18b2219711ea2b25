SELECT pg_catalog.set_config('search_path', '', false);

CREATE SCHEMA archive;

ALTER SCHEMA archive OWNER TO app;

CREATE TABLE archive.invoices (
    id bigint NOT NULL,
    customer_no integer NOT NULL,
    amount numeric(10,2) NOT NULL,
    status text NOT NULL,
    issued_on date
);

ALTER TABLE archive.invoices OWNER TO app;

ALTER TABLE ONLY archive.invoices
    ADD CONSTRAINT invoices_pkey PRIMARY KEY (id);

CREATE INDEX invoices_issued_on_idx ON archive.invoices USING btree (issued_on);

ALTER TABLE archive.invoices ALTER COLUMN status SET NOT NULL;
