-- Which reservations staff made for a client, written before the booking
-- starts: a check-in on one of these shows only that staff acted, not that the
-- client came, so it does not let a manager mark the client verified.
CREATE TABLE reservation.staff_bookings (
    reservation_id uuid PRIMARY KEY,
    admin_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
