CREATE OR REPLACE TRIGGER notifications_guard BEFORE INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_guard();
