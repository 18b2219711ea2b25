-- CreateView
CREATE OR REPLACE VIEW "published_posts" AS SELECT "id", "user_id", "title", "slug" FROM "posts" WHERE "published";
