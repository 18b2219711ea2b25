CREATE MATERIALIZED VIEW public.comment_counts AS
 SELECT comments.post_id,
    count(*) AS comments
   FROM public.comments
  GROUP BY comments.post_id
  WITH NO DATA;
