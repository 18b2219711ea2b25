-- A variant with a strict mode.
CREATE FUNCTION touch_updated_at(strict_mode boolean DEFAULT false) RETURNS trigger AS $$
BEGIN
    NEW.updated_at := NOW();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
