-- The answer the claim gave a booking it refused, by reservation id. A
-- workflow reset to its first task runs the claim again: it must give the
-- same answer, not a seat that came free after the client was told 409.
CREATE TABLE reservation.refused_bookings (
    reservation_id uuid PRIMARY KEY,
    result bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refused_bookings_created_at ON reservation.refused_bookings (created_at);
