ALTER INDEX posts_published_idx RENAME TO posts_is_published_idx;
