ALTER TABLE public.accounts OWNER TO billing_admin;
