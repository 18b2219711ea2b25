-- The key of teams becomes team_id, like the column that references it.
ALTER TABLE teams RENAME COLUMN id TO team_id;
