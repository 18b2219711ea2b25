ALTER TABLE tasks DROP COLUMN legacy_note; -- cutover:ignore data-loss
DROP TABLE job_queue_archive;
