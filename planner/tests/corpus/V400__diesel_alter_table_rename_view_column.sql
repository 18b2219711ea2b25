-- published_posts is a view: ALTER TABLE accepts it, but there is no column to add for a rewrite.
ALTER TABLE published_posts RENAME COLUMN title TO headline;
