-- Check-ins name their event, so an event's check-ins are counted from an index of their own
-- (the organizer's statistics read that count on every call) instead of through its bookings.
ALTER TABLE check_ins ADD COLUMN event_id integer;
UPDATE check_ins c SET event_id = b.event_id FROM bookings b WHERE b.id = c.booking_id;
ALTER TABLE check_ins ALTER COLUMN event_id SET NOT NULL;
CREATE INDEX check_ins_event_idx ON check_ins (event_id);
