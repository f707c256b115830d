-- An Idempotency-Key's claim is fenced: `claim_token` names the one request allowed to record
-- the key's outcome, and the booking transaction locks the row and checks the token before it
-- writes the outcome beside the booking. `claimed_until` is when that request will have
-- answered; after it, a retry may take the claim over (the token check keeps a late first
-- request from booking too).
ALTER TABLE idempotency_keys
    ADD COLUMN claim_token   uuid        NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN claimed_until timestamptz NOT NULL DEFAULT now();
