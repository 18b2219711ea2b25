SET statement_timeout = 0;
SET lock_timeout = 0;

ALTER TABLE public.customers_customer_no_seq OWNER TO app;
