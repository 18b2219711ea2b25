-- Your SQL goes here
ALTER TABLE audit_log_2024 NO INHERIT audit_log;
