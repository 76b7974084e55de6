-- the mails one address has had lately, counted before each send
CREATE INDEX sent_mail_recipient
    ON notifications.sent_mail (lower(recipient), scheduled_at);
