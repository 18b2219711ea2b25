ALTER TABLE ONLY public.accounts RENAME CONSTRAINT accounts_pkey TO accounts_uuid_pkey;
