-- `version` grows by the size of each booking group; an integer would overflow on a long-lived
-- hot event and leave it unwritable. bigint cannot run out.
ALTER TABLE events ALTER COLUMN version TYPE bigint;
