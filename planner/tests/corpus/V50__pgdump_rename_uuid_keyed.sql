ALTER TABLE public.accounts RENAME COLUMN display_name TO full_name;
