-- Intentionally empty: this version was squashed into 000001.
SELECT 1;
