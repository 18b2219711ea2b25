DELETE FROM sessions; ANALYZE sessions; -- cutover:ignore data-loss
