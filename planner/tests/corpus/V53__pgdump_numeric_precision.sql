ALTER TABLE ONLY billing.invoices ALTER COLUMN amount TYPE numeric(14,2);
