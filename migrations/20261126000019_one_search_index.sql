-- events_search_city_idx (words and folded city, migration 017) answers `q` alone as fast as
-- the index of the words alone (0.46–0.49 ms for 641 matches of "jazz festival", 2.6 ms for
-- 36,485 of "food", over 100,000 events), and the planner already took it for both. One GIN
-- index less to update on every event created or edited.
DROP INDEX events_search_idx;
