-- `qms-edge replication resend` rewinds the relay's cursor and bumps this epoch: the relay notices the new epoch,
-- ships again from the rewound cursor with fresh Nats-Msg-Ids (JetStream would drop a re-publish of the same id
-- inside its duplicate window), and a cursor save from before the rewind no longer moves the cursor.
ALTER TABLE replication_cursor ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
