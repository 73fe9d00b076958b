-- Staff sessions end after a stretch without the staff member doing anything (page loads and actions; the live
-- refreshes of an open page do not count): last_seen is when they last did something (NULL: since created_at).
ALTER TABLE staff_sessions ADD COLUMN last_seen TEXT;
