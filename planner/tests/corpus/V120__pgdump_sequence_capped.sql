ALTER SEQUENCE public.customers_customer_no_seq MAXVALUE 1000;
