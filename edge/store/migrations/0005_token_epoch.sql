-- Every change of a user's password, role, counters or active flag bumps their token epoch: API tokens carry the
-- epoch they were issued in and are refused once it moved (a disabled user's token stops working at once).
ALTER TABLE users ADD COLUMN token_epoch INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER users_token_epoch AFTER UPDATE OF password_hash, role, counters, active ON users
BEGIN
    UPDATE users SET token_epoch = token_epoch + 1 WHERE username = NEW.username;
END;
