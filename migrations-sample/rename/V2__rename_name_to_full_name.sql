-- The seed's example: users.name becomes users.full_name.
-- Run as written this breaks whichever version is live; cutover plans it in phases.
ALTER TABLE users RENAME COLUMN name TO full_name;
