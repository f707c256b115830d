-- A scan's first answer is kept as its outcome, written by the same statement that checks the
-- ticket in (one round trip per scan); the answer is rendered from it alike the first time and
-- on every replay. Scans stored before keep their rendered answer in status_code and
-- response_body.
ALTER TABLE check_in_scans
    ADD COLUMN outcome    text
        CONSTRAINT check_in_scans_outcome_check
        CHECK (outcome IN ('CHECKED_IN', 'ALREADY_CHECKED_IN', 'VOID', 'INVALID', 'OTHER_EVENT')),
    ADD COLUMN booking_id integer
        CONSTRAINT check_in_scans_booking_id_fkey REFERENCES bookings (id) ON DELETE CASCADE,
    ADD COLUMN number     integer;
