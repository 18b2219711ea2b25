WITH moved AS (
    DELETE FROM job_queue
    WHERE finished_at < NOW() - INTERVAL '30 days'
    RETURNING id, kind, payload, finished_at
)
INSERT INTO job_queue_archive (id, kind, payload, finished_at)
SELECT id, kind, payload, finished_at FROM moved;
