-- Your SQL goes here
MERGE INTO posts p
USING (SELECT 1 AS one) x ON 1 = 1
WHEN MATCHED THEN UPDATE SET published = FALSE;
