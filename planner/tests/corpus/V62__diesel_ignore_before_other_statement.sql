-- cutover:ignore data-loss
SET lock_timeout = '5s';
DROP TABLE job_queue_archive;
