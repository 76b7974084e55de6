-- One schema per service; a service reads another's tables only through its code.
-- Only SQL that YugabyteDB's YSQL also runs: no EXCLUDE, no GiST, no citext.
CREATE SCHEMA IF NOT EXISTS client;
CREATE SCHEMA IF NOT EXISTS admin;
CREATE SCHEMA IF NOT EXISTS coworking;
CREATE SCHEMA IF NOT EXISTS reservation;
CREATE SCHEMA IF NOT EXISTS images;
CREATE SCHEMA IF NOT EXISTS notifications;

CREATE TABLE client.clients (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    -- lower-cased copy: uniqueness without regard to case, without citext
    email_key text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    name text NOT NULL,
    surname text NOT NULL,
    patronymic text NOT NULL DEFAULT '',
    send_notifications boolean NOT NULL DEFAULT true,
    is_internal boolean NOT NULL DEFAULT false,
    verified boolean NOT NULL DEFAULT false,
    deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admin.admins (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    email_key text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    role text NOT NULL CHECK (role IN ('owner', 'manager', 'support')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- which coworkings a manager may change
CREATE TABLE admin.admin_coworkings (
    admin_id uuid NOT NULL REFERENCES admin.admins (id) ON DELETE CASCADE,
    coworking_id uuid NOT NULL,
    PRIMARY KEY (admin_id, coworking_id)
);

CREATE TABLE coworking.coworkings (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    address text NOT NULL,
    city text NOT NULL DEFAULT '',
    timezone text NOT NULL,
    -- {"mon": [["08:00", "20:00"]], ...} in local time; null means round the clock
    opening_hours jsonb,
    slot_minutes integer NOT NULL DEFAULT 15 CHECK (slot_minutes > 0 AND slot_minutes % 5 = 0),
    min_duration_minutes integer NOT NULL DEFAULT 15,
    max_duration_minutes integer NOT NULL DEFAULT 720,
    max_days_ahead integer NOT NULL DEFAULT 60,
    max_active_per_client integer NOT NULL DEFAULT 10,
    auto_confirm boolean NOT NULL DEFAULT true,
    hold_minutes integer NOT NULL DEFAULT 30,
    reminder_lead_minutes integer NOT NULL DEFAULT 180,
    checkin_grace_minutes integer,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE coworking.seats (
    id uuid PRIMARY KEY,
    coworking_id uuid NOT NULL REFERENCES coworking.coworkings (id) ON DELETE CASCADE,
    number integer NOT NULL CHECK (number BETWEEN 1 AND 1000),
    kind text NOT NULL CHECK (kind IN ('OpenSpace', 'Cabin', 'Room')),
    capacity integer NOT NULL DEFAULT 1 CHECK (capacity >= 0),
    features text[] NOT NULL DEFAULT '{}',
    cost double precision NOT NULL CHECK (cost > 0),
    internal_only boolean NOT NULL DEFAULT false,
    active boolean NOT NULL DEFAULT true,
    pos_x double precision,
    pos_y double precision,
    deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX seats_number_key ON coworking.seats (coworking_id, number)
    WHERE deleted_at IS NULL;

CREATE TABLE coworking.closures (
    id uuid PRIMARY KEY,
    coworking_id uuid NOT NULL REFERENCES coworking.coworkings (id) ON DELETE CASCADE,
    seat_id uuid REFERENCES coworking.seats (id) ON DELETE CASCADE,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL CHECK (ends_at > starts_at),
    reason text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX closures_coworking_time ON coworking.closures (coworking_id, starts_at);

CREATE TABLE reservation.reservations (
    id uuid PRIMARY KEY,
    client_id uuid NOT NULL,
    seat_id uuid NOT NULL,
    coworking_id uuid NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL CHECK (ends_at > starts_at),
    status text NOT NULL CHECK (status IN
        ('held', 'confirmed', 'checked_in', 'completed', 'cancelled', 'expired', 'no_show')),
    -- bumped on every reschedule, so mails and claims of an older version are told apart
    version integer NOT NULL DEFAULT 1,
    cancel_reason text,
    checked_in_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reservations_client ON reservation.reservations (client_id, starts_at);
CREATE INDEX reservations_seat ON reservation.reservations (seat_id, starts_at);
CREATE INDEX reservations_coworking ON reservation.reservations (coworking_id, starts_at);

-- The guarantee against double booking: one row per (seat, 5-minute grain).
CREATE TABLE reservation.seat_claims (
    seat_id uuid NOT NULL,
    slot_start timestamptz NOT NULL,
    reservation_id uuid NOT NULL,
    PRIMARY KEY (seat_id, slot_start)
);
CREATE INDEX seat_claims_reservation ON reservation.seat_claims (reservation_id);

-- One client never holds two overlapping reservations, whatever the seats.
CREATE TABLE reservation.client_claims (
    client_id uuid NOT NULL,
    slot_start timestamptz NOT NULL,
    reservation_id uuid NOT NULL,
    PRIMARY KEY (client_id, slot_start)
);
CREATE INDEX client_claims_reservation ON reservation.client_claims (reservation_id);

CREATE TABLE notifications.sent_mail (
    message_id text PRIMARY KEY,
    reservation_id uuid NOT NULL,
    kind text NOT NULL,
    version integer NOT NULL,
    recipient text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sent_mail_reservation ON notifications.sent_mail (reservation_id);

CREATE TABLE images.images (
    id uuid PRIMARY KEY,
    coworking_id uuid NOT NULL,
    seat_id uuid,
    object_key text NOT NULL,
    content_type text NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    size_bytes integer NOT NULL,
    position integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_owner ON images.images (coworking_id, seat_id, position);
