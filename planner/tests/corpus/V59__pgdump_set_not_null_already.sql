ALTER TABLE ONLY public.customers ALTER COLUMN customer_no SET NOT NULL;
