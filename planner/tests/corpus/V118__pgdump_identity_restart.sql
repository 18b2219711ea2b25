-- Start invoice numbers over.
ALTER TABLE billing.invoices ALTER COLUMN id RESTART WITH 1;
