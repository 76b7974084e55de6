-- A client's move of a booking staff had confirmed waits for staff again. Until
-- they confirm it, the booking keeps the seat and times they had confirmed,
-- still claimed, and goes back to them when the move lapses: a move nobody
-- answered must not cost the client the booking. NULL in all three otherwise.
ALTER TABLE reservation.reservations
    ADD COLUMN fallback_seat_id uuid,
    ADD COLUMN fallback_starts_at timestamptz,
    ADD COLUMN fallback_ends_at timestamptz,
    ADD CONSTRAINT reservations_fallback_whole CHECK (
        (fallback_seat_id IS NULL) = (fallback_starts_at IS NULL)
        AND (fallback_seat_id IS NULL) = (fallback_ends_at IS NULL)
    );

-- Every slot a reservation keeps from others: its own, and while a move waits
-- for staff, its fallback. What asks whether a seat or a time is taken reads
-- this, not the reservation's own slot alone.
CREATE VIEW reservation.kept_slots AS
SELECT id, client_id, coworking_id, seat_id, starts_at, ends_at, status
FROM reservation.reservations
UNION ALL
SELECT id, client_id, coworking_id, fallback_seat_id, fallback_starts_at,
    fallback_ends_at, status
FROM reservation.reservations
WHERE fallback_seat_id IS NOT NULL;

CREATE INDEX reservations_fallback_seat ON reservation.reservations
    (fallback_seat_id, fallback_starts_at) WHERE fallback_seat_id IS NOT NULL;
CREATE INDEX reservations_fallback_coworking ON reservation.reservations
    (coworking_id, fallback_starts_at) WHERE fallback_seat_id IS NOT NULL;
