UPDATE job_queue SET finished_at = NOW() WHERE 1 = 1;
