--
-- Name: published_posts; Type: VIEW; Schema: public; Owner: app
--

DROP VIEW public.published_posts;

CREATE VIEW public.published_posts AS
 SELECT posts.id,
    posts.title
   FROM public.posts
  WHERE posts.published;
