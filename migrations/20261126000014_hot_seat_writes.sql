-- Every seat write changes events.available_seats. With an index on it, each one was a non-HOT
-- update: a new entry in every index of events, two of them GIN (the search vector and the
-- title's trigrams, whose expression is computed again each time). Without it, a seat write
-- touches no index of events. `minSeats` and `sort=-availableSeats` read the rows the other
-- filters leave, as of the query.
DROP INDEX events_available_idx;

-- Room on each page for new versions of its rows, so seat writes stay on their page (HOT).
ALTER TABLE events SET (fillfactor = 80);
