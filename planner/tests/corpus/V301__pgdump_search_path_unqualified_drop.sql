-- pg_dump style: after set_config(search_path), import_rows may be another schema's table
CREATE TABLE import_rows (id bigint);
SELECT pg_catalog.set_config('search_path', 'billing', false);
DROP TABLE import_rows;
