-- The coworking's rules as the last claim (the booking or its latest move)
-- found them, as the BookingRules message: a workflow reset to its first task
-- takes them from here, not from a coworking that may have changed its
-- reminder lead or check-in grace since. NULL for rows claimed before.
ALTER TABLE reservation.reservations ADD COLUMN rules bytea;
