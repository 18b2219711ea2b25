ALTER TABLE published_posts ALTER COLUMN title SET DEFAULT 'untitled';
