-- Every view of an event shows `_count.bookings` (its booking rows, any status). Counting them
-- per view costs a walk over the event's bookings (100,000 for a big event, for every listed
-- event); instead the count is kept on the event row by the statement that inserts bookings
-- (the lane's version-checked UPDATE of the event), like its seats.
ALTER TABLE events ADD COLUMN booking_count integer NOT NULL DEFAULT 0
    CONSTRAINT events_booking_count_not_negative CHECK (booking_count >= 0);
UPDATE events e SET booking_count = (SELECT count(*) FROM bookings b WHERE b.event_id = e.id);
