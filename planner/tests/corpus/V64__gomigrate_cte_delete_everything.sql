BEGIN;

-- Start the audit trail afresh; report how many rows went.
WITH removed AS (
    DELETE FROM audit_log
    RETURNING 1
)
SELECT count(*) AS removed_rows FROM removed;

COMMIT;
