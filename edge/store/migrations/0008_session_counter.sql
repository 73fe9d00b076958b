-- The counter a staff session is signed in to (set when an agent opens their desk): the counter closes when the
-- last live session bound to it ends (sign-out, idle timeout, lifetime) or at start-up with nobody bound to it.
ALTER TABLE staff_sessions ADD COLUMN counter_id TEXT;
