-- The baseline came from pg_dump: the key of customers is declared by ALTER TABLE ONLY.
ALTER TABLE customers RENAME COLUMN name TO legal_name;
