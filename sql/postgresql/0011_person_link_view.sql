-- 0011: person_link becomes a view of identity_record. Every link was written twice — identity_record holds each
-- record's person, link kind, probability, time and run beside its features, person_link the same five again —
-- and a night's second copy cost a third of a second to write and commit at a million records
-- (bench/bench_identity_night.py, on DuckDB). The contract the results stage reads keeps its name and columns; the identity
-- stage writes identity_record alone, whose primary key and person index serve the lookups person_link's did.
DROP TABLE person_link;
CREATE VIEW person_link AS
SELECT source_id, source_record_id, person_id, link_kind, match_probability, linked_at, run_id
FROM identity_record;
