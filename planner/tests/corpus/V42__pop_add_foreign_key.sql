ALTER TABLE widgets ADD CONSTRAINT widgets_identities_id_fk FOREIGN KEY (identity_id) REFERENCES identities (id) ON DELETE cascade;
