DROP MATERIALIZED VIEW public.post_counts;

CREATE MATERIALIZED VIEW public.post_counts AS
 SELECT posts.user_id,
    count(*) AS posts,
    max(posts.score) AS best_score
   FROM public.posts
  GROUP BY posts.user_id;

CREATE UNIQUE INDEX post_counts_user_id_key ON public.post_counts USING btree (user_id);
