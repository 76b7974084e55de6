-- The worker's sweep reads the open reservations every few minutes to find
-- those whose run a reset left behind; the rest of the table is closed history.
CREATE INDEX IF NOT EXISTS reservations_open
    ON reservation.reservations (ends_at)
    WHERE status IN ('held', 'confirmed', 'checked_in');
