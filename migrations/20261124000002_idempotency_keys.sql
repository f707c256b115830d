-- Idempotency keys of POST /bookings: the first request with a key claims it (status_code NULL
-- while in flight), then stores its exact response for replays. Keys are per user.
CREATE TABLE idempotency_keys (
    user_id       integer     NOT NULL
        CONSTRAINT idempotency_keys_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    key           text        NOT NULL,
    request_hash  text        NOT NULL,
    status_code   smallint,
    response_body text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (user_id, key),
    CONSTRAINT idempotency_keys_completed_together
        CHECK ((status_code IS NULL) = (response_body IS NULL))
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
