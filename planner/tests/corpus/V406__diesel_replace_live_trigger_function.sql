-- Reject notifications without a kind.
CREATE OR REPLACE FUNCTION notifications_guard() RETURNS trigger AS $$
BEGIN
    IF NEW.kind = '' THEN
        RAISE EXCEPTION 'notification kind required';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
