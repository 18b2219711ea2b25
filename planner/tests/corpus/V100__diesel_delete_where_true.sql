-- Clear the sessions table (a "filtered" delete whose filter is always true).
DELETE FROM sessions WHERE true;
