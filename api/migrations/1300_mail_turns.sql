-- The turns mails take at an address: one per mail, taken before it is sent,
-- so that mails picked up at once (a backlog after a restart) cannot all find
-- the window empty. Counting sent mails did not hold them back: a mail is
-- recorded only after the server has it. Old turns are deleted as new ones
-- are taken, so an address keeps at most a window's worth.
DROP INDEX IF EXISTS notifications.sent_mail_recipient;
CREATE TABLE notifications.mail_turns (
    message_id text PRIMARY KEY,
    recipient_key text NOT NULL,
    taken_at timestamptz NOT NULL
);
CREATE INDEX mail_turns_recipient ON notifications.mail_turns (recipient_key, taken_at);
