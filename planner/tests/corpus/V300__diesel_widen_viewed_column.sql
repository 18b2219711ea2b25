-- diesel: widen a column the published_posts view reads (varchar to text needs no rewrite)
ALTER TABLE posts ALTER COLUMN title TYPE text;
