-- One index on (event_id, ticket_type_id) instead of one on each column: every booking
-- inserted wrote both, and nothing looks bookings up by type without its event. The event's
-- bookings (stats, attendees, the delete check) read its leading column as before, and the
-- key bookings_ticket_type_fkey checks on a type's delete is exactly this index.
CREATE INDEX bookings_event_type_idx ON bookings (event_id, ticket_type_id);
DROP INDEX bookings_event_id_idx;
DROP INDEX bookings_ticket_type_idx;
