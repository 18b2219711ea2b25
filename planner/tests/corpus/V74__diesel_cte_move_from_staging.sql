-- Import the default settings through a staging table created (and emptied) right here.
CREATE TABLE settings_import (
    key TEXT NOT NULL,
    value TEXT NOT NULL
);

INSERT INTO settings_import (key, value) VALUES
    ('signup.enabled', 'true'),
    ('upload.max_mb', '25');

WITH moved AS (
    DELETE FROM settings_import
    RETURNING key, value
)
INSERT INTO settings (key, value)
SELECT key, value FROM moved
ON CONFLICT (key) DO NOTHING;

DROP TABLE settings_import;
