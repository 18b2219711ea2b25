-- DropView
DROP VIEW "published_posts";

-- CreateView
CREATE VIEW "published_posts" AS SELECT "id", "user_id", upper("title") AS "title" FROM "posts" WHERE "published";
