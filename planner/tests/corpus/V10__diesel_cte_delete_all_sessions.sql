-- Log everybody out (the token format changes), keeping a trace of who was logged in.
WITH purged AS (
    DELETE FROM sessions
    RETURNING user_id
)
INSERT INTO audit_log (actor_id, payload)
SELECT user_id, '{"event": "forced_logout"}'::jsonb
FROM purged;
