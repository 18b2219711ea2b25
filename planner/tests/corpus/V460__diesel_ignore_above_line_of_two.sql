-- cutover:ignore data-loss
DROP TABLE job_queue_archive; ALTER TABLE users DROP COLUMN legacy_flags;
