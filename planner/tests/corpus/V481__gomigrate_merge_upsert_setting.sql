MERGE INTO settings s
USING (VALUES ('theme', 'dark')) AS v (k, val) ON s.key = v.k
WHEN MATCHED THEN UPDATE SET value = v.val
WHEN NOT MATCHED THEN INSERT (key, value) VALUES (v.k, v.val);
