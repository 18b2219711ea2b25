-- AlterView
ALTER MATERIALIZED VIEW "post_counts" RENAME TO "user_post_counts";
