ALTER TABLE ONLY public.job_queue_archive INHERIT public.job_queue;
