ALTER TABLE users DROP COLUMN legacy_flags; DROP TABLE job_queue_archive; -- cutover:ignore data-loss
