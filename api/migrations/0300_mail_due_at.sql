-- when each mail was due, so lateness can be read back per message
ALTER TABLE notifications.sent_mail ADD COLUMN due_at timestamptz;
