CREATE FUNCTION diesel_manage_updated_at(tbl text) RETURNS void AS $$
BEGIN
    PERFORM diesel_manage_updated_at(tbl::regclass);
END;
$$ LANGUAGE plpgsql;
