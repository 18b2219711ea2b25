-- Handles are optional now.
ALTER TABLE public.accounts ALTER COLUMN handle SET DEFAULT 'anonymous';
