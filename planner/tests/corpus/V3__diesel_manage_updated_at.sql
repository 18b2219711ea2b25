-- Keep comments.updated_at current through diesel's helper (it creates a BEFORE UPDATE trigger).
SELECT diesel_manage_updated_at('comments');
