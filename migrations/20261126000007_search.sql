-- Search over events, in PostgreSQL itself: a weighted full-text vector (title > venue and city
-- > description) with English stemming and accents folded, and trigrams of the title for the
-- typo fallback. unaccent and pg_trgm ship with PostgreSQL and are trusted extensions.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TEXT SEARCH CONFIGURATION english_unaccent (COPY = english);
ALTER TEXT SEARCH CONFIGURATION english_unaccent
    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem;

-- unaccent() is only STABLE (its dictionary could change); pinned to its dictionary it can be
-- indexed.
CREATE FUNCTION search_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$;

ALTER TABLE events ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english_unaccent'::regconfig, coalesce(title, '')), 'A') ||
    setweight(to_tsvector('english_unaccent'::regconfig,
                          coalesce(venue, '') || ' ' || coalesce(city, '')), 'B') ||
    setweight(to_tsvector('english_unaccent'::regconfig, coalesce(description, '')), 'C')
) STORED;

CREATE INDEX events_search_idx ON events USING gin (search);
CREATE INDEX events_title_trgm_idx ON events USING gin (search_fold(title) gin_trgm_ops);
-- City matches case-insensitively in every language (ICU's lower(), whatever the cluster's
-- locale): "ZÜRICH" finds "Zürich".
CREATE INDEX events_city_idx ON events (lower(city COLLATE "und-x-icu"));
CREATE INDEX events_event_date_idx ON events (event_date, created_at DESC, id DESC);
CREATE INDEX events_available_idx ON events (available_seats DESC, created_at DESC, id DESC);
