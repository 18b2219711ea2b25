CREATE SEQUENCE order_refs START 1000;
SELECT setval('order_refs', 5000);
