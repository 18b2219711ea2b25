SET statement_timeout = 0;
SET lock_timeout = 0;

ALTER TABLE public.event_log RENAME COLUMN kind TO event_kind;
