-- Notifications: organizers' webhooks, and the outbox of deliveries (webhook calls and emails)
-- written in the same transaction as the booking change they announce.
CREATE TABLE webhooks (
    id           SERIAL PRIMARY KEY,
    organizer_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url          TEXT NOT NULL CHECK (char_length(url) <= 2000),
    events       TEXT[] NOT NULL CHECK (cardinality(events) > 0),
    -- `whsec_` + base64: the key is the decoded part. Shown to its organizer only on creation.
    secret       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The write path asks "does this event's organizer have webhooks?" on every group.
CREATE INDEX webhooks_organizer_idx ON webhooks (organizer_id, id);

CREATE TABLE notifications (
    -- Sent as `webhook-id` and in the email's Message-ID: the same on every attempt.
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Write order, for "newest first" (one transaction's rows share `created_at`).
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    channel         TEXT NOT NULL CHECK (channel IN ('WEBHOOK', 'EMAIL')),
    webhook_id      INTEGER REFERENCES webhooks (id) ON DELETE CASCADE,
    -- The booking's user: the email's recipient, read when it is sent.
    user_id         INTEGER NOT NULL,
    event_id        INTEGER NOT NULL,
    booking_id      INTEGER NOT NULL,
    type            TEXT NOT NULL CHECK (type IN ('booking.confirmed', 'booking.held',
                                                  'booking.cancelled', 'booking.expired')),
    -- The exact body every attempt sends (and signs): the booking as it was at the change.
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status_code INTEGER,
    last_error      TEXT,
    -- PENDING: when the next attempt is due (or, while one is being made, when its claim
    -- lapses); NULL once DELIVERED or FAILED.
    next_attempt_at TIMESTAMPTZ DEFAULT now(),
    -- The worker that made the current attempt: only it records the attempt's result.
    claim           UUID,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    CHECK ((channel = 'WEBHOOK') = (webhook_id IS NOT NULL)),
    CHECK ((status = 'PENDING') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX notifications_webhook_idx ON notifications (webhook_id, seq DESC)
    WHERE webhook_id IS NOT NULL;
