CREATE TABLE users_archive (LIKE users);
INSERT INTO users_archive SELECT * FROM users WHERE legacy_flags IS NOT NULL;
ALTER TABLE users_archive INHERIT users;
