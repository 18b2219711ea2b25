-- Seed the system user the new version posts announcements as.
WITH inserted AS (
    INSERT INTO "User" ("email", "name", "role")
    VALUES ('announcements@example.com', 'Announcements', 'USER')
    ON CONFLICT ("email") DO NOTHING
    RETURNING "id"
)
SELECT count(*) FROM inserted;
