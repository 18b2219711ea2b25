-- Your SQL goes here
CREATE TABLE post_tags (
    post_id INTEGER REFERENCES posts (id),
    tag VARCHAR(64)
);

-- Tightened after the fact, in the same up.sql: the table is new, nobody uses it yet.
ALTER TABLE post_tags
    ALTER COLUMN post_id SET NOT NULL,
    ALTER COLUMN tag SET NOT NULL;

CREATE INDEX post_tags_tag_idx ON post_tags (tag);
