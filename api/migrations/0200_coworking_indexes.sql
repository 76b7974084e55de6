-- Uploads and deletes look a stored object up by key to know whether it is shared.
CREATE INDEX IF NOT EXISTS images_object_key ON images.images (object_key);
-- Closures of one seat, for the seat's availability and the cascade on delete.
CREATE INDEX IF NOT EXISTS closures_seat ON coworking.closures (seat_id)
    WHERE seat_id IS NOT NULL;
