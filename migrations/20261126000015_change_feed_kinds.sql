-- The change feed also tells whether a change was only of seats (a booking, a cancel, a ticket
-- type's seats or price: `version`, seat counts, `booking_count`, `updated_at`) or of what
-- listings filter and sort by, so that an instance's cache of public reads drops its listings
-- only for the latter. Every committed change of an event's row is announced now, not only
-- those of its version, status, date or title.
CREATE OR REPLACE FUNCTION notify_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seats_only boolean := false;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('event_changes', json_build_object('id', OLD.id, 'deleted', true)::text);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW IS NOT DISTINCT FROM OLD THEN
            RETURN NEW;
        END IF;
        seats_only := (NEW.title, NEW.description, NEW.venue, NEW.city, NEW.currency, NEW.status,
                       NEW.event_date, NEW.organizer_id, NEW.created_at)
            IS NOT DISTINCT FROM (OLD.title, OLD.description, OLD.venue, OLD.city, OLD.currency,
                                  OLD.status, OLD.event_date, OLD.organizer_id, OLD.created_at);
    END IF;
    PERFORM pg_notify('event_changes',
        json_build_object('id', NEW.id, 'deleted', false, 'seats', seats_only)::text);
    RETURN NEW;
END $$;
