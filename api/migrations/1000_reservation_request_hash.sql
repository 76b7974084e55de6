-- The hash of the booking request that made the row, as its workflow keeps
-- it: a retried Idempotency-Key is answered from the row when the workflow
-- cannot answer (its worker is down), and another body under the key is still
-- told apart. NULL for rows made before.
ALTER TABLE reservation.reservations ADD COLUMN request_hash text;
