-- golang-migrate style: re-runnable.
CREATE TABLE IF NOT EXISTS posts (
    id SERIAL PRIMARY KEY,
    title VARCHAR NOT NULL
);
CREATE INDEX posts_title_idx ON posts (title);
ALTER TABLE posts ADD CONSTRAINT posts_slug_key UNIQUE (slug);
