-- A hold's deadline, and when a booking was confirmed (at booking, or when its hold was
-- confirmed). `expires_at` is set exactly while a booking is PENDING.
ALTER TABLE bookings
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN confirmed_at timestamptz;
UPDATE bookings SET confirmed_at = created_at;
ALTER TABLE bookings
    ADD CONSTRAINT bookings_expires_only_when_pending
        CHECK ((status = 'PENDING') = (expires_at IS NOT NULL));
-- The expiry sweep looks for due holds only.
CREATE INDEX bookings_pending_expiry_idx ON bookings (expires_at) WHERE status = 'PENDING';
