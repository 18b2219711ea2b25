WITH touched AS (
UPDATE "identities" SET "state" = 'active', "updated_at" = now() RETURNING "id"
)
SELECT count(*) FROM touched;
