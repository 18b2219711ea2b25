DROP VIEW public.published_posts;

CREATE VIEW public.published_posts AS
 SELECT p.id,
    p.user_id,
    p.score AS title
   FROM public.posts p
  WHERE p.published;
