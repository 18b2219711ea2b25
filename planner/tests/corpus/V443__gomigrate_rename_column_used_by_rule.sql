ALTER TABLE job_queue_archive RENAME COLUMN finished_at TO completed_at;
