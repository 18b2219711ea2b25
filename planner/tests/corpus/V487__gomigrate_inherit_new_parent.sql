CREATE TABLE timestamped (created_at TIMESTAMP NOT NULL DEFAULT NOW());
ALTER TABLE users INHERIT timestamped;
