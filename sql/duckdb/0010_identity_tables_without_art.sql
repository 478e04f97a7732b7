-- 0010: the EMPI's big tables lose their PRIMARY KEY on DuckDB. DuckDB keeps a primary key as an ART index that
-- every insert and delete maintains, and a night's commit rewrote it: at a million linked records the keys cost more
-- than the linking (write, golden refresh and commit 11.4 s → 4.4 s measured, bench/bench_identity_night.py).
-- Nothing reads through them — joins hash, lookups scan zone maps — and the identity stage keeps each key unique
-- itself (it deletes a record's row before writing it again; tests/identity/test_linking.py checks every key is
-- unique after each run). PostgreSQL keeps its keys: its B-trees are cheap and serve point lookups.
-- DuckDB cannot drop a primary key in place: each table is copied, replaced, and its NOT NULLs put back.
CREATE TABLE identity_record_0010 AS SELECT * FROM identity_record;
DROP TABLE identity_record;
ALTER TABLE identity_record_0010 RENAME TO identity_record;
ALTER TABLE identity_record ALTER COLUMN source_id SET NOT NULL;
ALTER TABLE identity_record ALTER COLUMN source_record_id SET NOT NULL;
ALTER TABLE identity_record ALTER COLUMN person_id SET NOT NULL;
ALTER TABLE identity_record ALTER COLUMN link_kind SET NOT NULL;
ALTER TABLE identity_record ALTER COLUMN linked_at SET NOT NULL;

CREATE TABLE person_link_0010 AS SELECT * FROM person_link;
DROP TABLE person_link;
ALTER TABLE person_link_0010 RENAME TO person_link;
ALTER TABLE person_link ALTER COLUMN source_id SET NOT NULL;
ALTER TABLE person_link ALTER COLUMN source_record_id SET NOT NULL;
ALTER TABLE person_link ALTER COLUMN person_id SET NOT NULL;
ALTER TABLE person_link ALTER COLUMN link_kind SET NOT NULL;
ALTER TABLE person_link ALTER COLUMN linked_at SET NOT NULL;

CREATE TABLE golden_person_0010 AS SELECT * FROM golden_person;
DROP TABLE golden_person;
ALTER TABLE golden_person_0010 RENAME TO golden_person;
ALTER TABLE golden_person ALTER COLUMN person_id SET NOT NULL;
ALTER TABLE golden_person ALTER COLUMN records SET NOT NULL;
ALTER TABLE golden_person ALTER COLUMN sources SET NOT NULL;
ALTER TABLE golden_person ALTER COLUMN updated_at SET NOT NULL;

CREATE TABLE identity_event_0010 AS SELECT * FROM identity_event;
DROP TABLE identity_event;
ALTER TABLE identity_event_0010 RENAME TO identity_event;
ALTER TABLE identity_event ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE identity_event ALTER COLUMN kind SET NOT NULL;
ALTER TABLE identity_event ALTER COLUMN person_id SET NOT NULL;
ALTER TABLE identity_event ALTER COLUMN occurred_at SET NOT NULL;
