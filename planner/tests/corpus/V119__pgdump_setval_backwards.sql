SELECT pg_catalog.setval('public.customers_customer_no_seq', 1, false);
