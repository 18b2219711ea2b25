ALTER TABLE billing.invoices
    ADD COLUMN amount_cents bigint GENERATED ALWAYS AS (((amount * (100)::numeric))::bigint) STORED;
