DROP MATERIALIZED VIEW post_counts;
CREATE MATERIALIZED VIEW post_counts AS SELECT user_id FROM posts GROUP BY user_id;
CREATE UNIQUE INDEX post_counts_user_id_key ON post_counts (user_id);
