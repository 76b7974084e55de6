-- When a held reservation's hold runs out and when a confirmed one becomes a
-- no-show, as its last claim set them. The worker's sweep filters on them,
-- which it cannot do on the `rules` message, and a run that a reset left
-- behind its row takes its hold's end from here rather than holding anew.
-- NULL where no such deadline applies (no hold, no grace).
ALTER TABLE reservation.reservations
    ADD COLUMN hold_expires_at timestamptz,
    ADD COLUMN no_show_at timestamptz;

-- Open rows claimed before: the nearest reading there is, the coworking's
-- rules of today and the row's last change as the start of its hold.
UPDATE reservation.reservations r
SET hold_expires_at = CASE WHEN r.status = 'held'
        THEN r.updated_at + make_interval(mins => w.hold_minutes) END,
    no_show_at = r.starts_at + make_interval(mins => w.checkin_grace_minutes)
FROM coworking.coworkings w
WHERE w.id = r.coworking_id AND r.status IN ('held', 'confirmed', 'checked_in');
