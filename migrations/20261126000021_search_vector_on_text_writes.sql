-- PostgreSQL 15 computes a stored generated column again on every UPDATE of its row, whatever
-- the UPDATE sets. `search` was one: every seat write (a group's UPDATE of events) ran three
-- to_tsvector over the title, venue, city and description it did not touch, in a hot event's
-- one-at-a-time cycle (pgbench, one UPDATE of an event row: 0.17–0.18 ms with the column
-- against 0.12 ms without while every statement was logged, 0.055–0.101 against 0.046–0.078
-- ms unlogged). It becomes a plain column that a trigger computes when a row is inserted or one
-- of its sources is written; seat writes name none of them, so the trigger does not fire.
-- The expression is the one of migration 007, unchanged, and the stored vectors stay as they are.
ALTER TABLE events ALTER COLUMN search DROP EXPRESSION;

CREATE FUNCTION events_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search :=
        setweight(to_tsvector('english_unaccent'::regconfig, coalesce(NEW.title, '')), 'A') ||
        setweight(to_tsvector('english_unaccent'::regconfig,
                              coalesce(NEW.venue, '') || ' ' || coalesce(NEW.city, '')), 'B') ||
        setweight(to_tsvector('english_unaccent'::regconfig, coalesce(NEW.description, '')), 'C');
    RETURN NEW;
END $$;

CREATE TRIGGER events_search_vector
    BEFORE INSERT OR UPDATE OF title, venue, city, description ON events
    FOR EACH ROW EXECUTE FUNCTION events_search_vector();
