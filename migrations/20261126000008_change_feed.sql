-- The change feed: every committed change of an event's seats, types or status (each one bumps
-- the event's version or changes its status), and its deletion, is announced on the channel
-- `event_changes`. A trigger, so no write path can forget it; PostgreSQL delivers it at COMMIT
-- and only then, and folds identical notices of one transaction into one.
CREATE FUNCTION notify_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('event_changes', json_build_object('id', OLD.id, 'deleted', true)::text);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version AND NEW.status = OLD.status
       AND NEW.event_date IS NOT DISTINCT FROM OLD.event_date AND NEW.title = OLD.title THEN
        RETURN NEW;
    END IF;
    PERFORM pg_notify('event_changes', json_build_object('id', NEW.id, 'deleted', false)::text);
    RETURN NEW;
END $$;

CREATE TRIGGER events_notify_change AFTER INSERT OR UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION notify_event_change();
