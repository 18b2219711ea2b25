SET statement_timeout = 0;
SET lock_timeout = 0;

ALTER TABLE ONLY public.customers RENAME COLUMN region TO sales_region;
