-- diesel_manage_updated_at returns void, written another way: still a replace.
DROP FUNCTION diesel_manage_updated_at(regclass);
CREATE FUNCTION diesel_manage_updated_at(tbl regclass) RETURNS VOID AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s FOR EACH ROW EXECUTE PROCEDURE diesel_set_updated_at()', tbl);
END;
$$ LANGUAGE plpgsql;
