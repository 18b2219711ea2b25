ALTER TABLE ONLY public.customers ADD COLUMN country_code character(2);

UPDATE public.customers SET country_code = 'DE' WHERE region = 'europe';

ALTER TABLE ONLY public.customers
    ADD CONSTRAINT customers_country_code_present CHECK ((country_code IS NOT NULL)) NOT VALID;
