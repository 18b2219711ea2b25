DROP MATERIALIZED VIEW post_counts;
CREATE MATERIALIZED VIEW post_counts AS
SELECT user_id, count(*) AS posts FROM posts WHERE published GROUP BY user_id
WITH NO DATA;
CREATE UNIQUE INDEX post_counts_user_id_key ON post_counts (user_id);
