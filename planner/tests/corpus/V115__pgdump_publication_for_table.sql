CREATE PUBLICATION app_pub FOR TABLE public.event_log;
