ALTER TABLE ONLY public.customers ALTER COLUMN name TYPE character varying(200);
