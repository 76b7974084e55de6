-- A grace of 0 minutes read as "no grace period", the same as NULL, which is
-- how the API shows it from now on; the API refuses 0 and so does the table.
UPDATE coworking.coworkings SET checkin_grace_minutes = NULL
WHERE checkin_grace_minutes = 0;
ALTER TABLE coworking.coworkings ADD CONSTRAINT coworkings_checkin_grace_positive
    CHECK (checkin_grace_minutes IS NULL OR checkin_grace_minutes > 0);
