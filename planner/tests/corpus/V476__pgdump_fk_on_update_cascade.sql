ALTER TABLE ONLY public.notifications DROP CONSTRAINT notifications_post_id_fkey;

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_post_id_fkey FOREIGN KEY (post_id) REFERENCES public.posts(id) ON UPDATE CASCADE NOT VALID;
