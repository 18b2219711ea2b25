CREATE OR REPLACE VIEW public.published_posts AS
 SELECT posts.id,
    posts.title,
    posts.user_id
   FROM public.posts
  WHERE posts.published;
