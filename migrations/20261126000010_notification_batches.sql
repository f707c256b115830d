-- A group of booking changes records its notifications as one small row, in the statement that
-- makes the changes (so in their transaction): the bookings' ids, what happened to each, and
-- the fields that a later change may overwrite (`updatedAt`, `expiresAt`). The courier expands
-- it into one notification per webhook (and email) outside the hot event's critical path.
CREATE TABLE notification_batches (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     INTEGER NOT NULL,
    organizer_id INTEGER NOT NULL,
    email        BOOLEAN NOT NULL,
    -- The event as the notifications' body names it, at the change.
    event        TEXT NOT NULL,
    booking_ids  INTEGER[] NOT NULL,
    kinds        TEXT[] NOT NULL,
    updated_at   TIMESTAMPTZ[] NOT NULL,
    expires_at   TIMESTAMPTZ[] NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (cardinality(booking_ids) = cardinality(kinds))
);
