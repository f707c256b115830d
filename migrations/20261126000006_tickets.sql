-- Tickets and check-in. Tickets are derived (a signed code per seat of a booking), not stored;
-- what is stored is what must survive restarts and be shared by instances.

-- The Ed25519 keys that sign ticket codes. The server generates one the first time it needs
-- one (unless TICKET_SIGNING_KEY is set); every instance and restart then signs with it, so a
-- ticket's code never changes. Kept here, never in a file.
CREATE TABLE ticket_signing_keys (
    kid          text        CONSTRAINT ticket_signing_keys_pkey PRIMARY KEY,
    pkcs8        bytea       NOT NULL,
    public_key   bytea       NOT NULL,
    -- Exactly one row is the generated default key.
    is_default   boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ticket_signing_keys_one_default ON ticket_signing_keys (is_default)
    WHERE is_default;

-- A ticket is checked in at most once: the primary key makes a second check-in impossible
-- whatever the interleaving.
CREATE TABLE check_ins (
    booking_id    integer     NOT NULL
        CONSTRAINT check_ins_booking_id_fkey REFERENCES bookings (id) ON DELETE CASCADE,
    number        integer     NOT NULL,
    checked_in_at timestamptz NOT NULL DEFAULT now(),
    checked_in_by integer     NOT NULL
        CONSTRAINT check_ins_checked_in_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT check_ins_pkey PRIMARY KEY (booking_id, number),
    CONSTRAINT check_ins_number_positive CHECK (number > 0)
);

-- A scanner's retry (the same code with the same nonce) gets the first answer again.
CREATE TABLE check_in_scans (
    event_id      integer     NOT NULL
        CONSTRAINT check_in_scans_event_id_fkey REFERENCES events (id) ON DELETE CASCADE,
    nonce         text        NOT NULL,
    code_sha256   bytea       NOT NULL,
    status_code   smallint,
    response_body text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT check_in_scans_pkey PRIMARY KEY (event_id, nonce, code_sha256)
);
