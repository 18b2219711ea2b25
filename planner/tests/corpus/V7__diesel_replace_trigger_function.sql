-- Only touch updated_at when the row really changed.
DROP FUNCTION touch_updated_at();

CREATE FUNCTION touch_updated_at() RETURNS trigger AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := NOW();
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
