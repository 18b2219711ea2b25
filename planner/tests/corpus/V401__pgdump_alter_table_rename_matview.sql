SET statement_timeout = 0;
SET lock_timeout = 0;

ALTER TABLE public.post_counts RENAME TO user_post_counts;
