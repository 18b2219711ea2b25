ALTER TABLE billing.invoices RENAME COLUMN status TO state;
