SET statement_timeout = 0;
SET lock_timeout = 0;

DROP POLICY event_log_public ON public.event_log;

ALTER TABLE public.event_log RENAME COLUMN kind TO event_kind;
