ALTER TABLE ONLY billing.invoices
    ADD CONSTRAINT invoices_amount_positive CHECK ((amount > (0)::numeric)) NOT VALID;
