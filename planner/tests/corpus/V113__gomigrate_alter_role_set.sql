-- Longer statements for the app's role.
ALTER ROLE app SET statement_timeout = '60s';
