-- Same index name, new column list.
DROP INDEX IF EXISTS posts_published_idx;
CREATE INDEX posts_published_idx ON posts (published, id DESC);
