-- One audit table per month of the coming year.
DO $$
DECLARE
    m date;
BEGIN
    FOR m IN SELECT generate_series(date_trunc('month', now()), date_trunc('month', now()) + interval '11 months', interval '1 month')::date LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS audit_log_%s (LIKE audit_log INCLUDING ALL)',
            to_char(m, 'YYYYMM')
        );
    END LOOP;
END
$$;
