-- when each mail was due, so lateness can be read back per message
ALTER TABLE notifications.sent_mail ADD COLUMN due_at timestamptz;
-- the server's clock when the send was scheduled: the instant the workflow asked for it
ALTER TABLE notifications.sent_mail ADD COLUMN scheduled_at timestamptz;
