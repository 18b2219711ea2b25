ALTER SEQUENCE public.customers_customer_no_seq INCREMENT BY 1 CACHE 20;
