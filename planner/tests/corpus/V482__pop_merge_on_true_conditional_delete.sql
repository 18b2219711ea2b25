MERGE INTO job_queue j USING (SELECT now() - interval '30 days' AS cutoff) c ON TRUE
WHEN MATCHED AND j.finished_at < c.cutoff THEN DELETE;
