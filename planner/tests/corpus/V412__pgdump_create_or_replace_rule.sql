SET statement_timeout = 0;
SET lock_timeout = 0;

CREATE OR REPLACE RULE audit_log_keep AS ON DELETE TO public.audit_log DO INSTEAD NOTHING;
