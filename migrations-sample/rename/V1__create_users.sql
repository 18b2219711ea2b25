-- Baseline: the schema version 1.0.0 of the API runs against.
CREATE TABLE users (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         varchar(255) NOT NULL,
    email        text,
    legacy_flags integer,
    created_at   timestamptz NOT NULL DEFAULT now()
);
