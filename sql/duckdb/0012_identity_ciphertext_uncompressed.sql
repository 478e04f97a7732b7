-- 0012: the identity tables keep ciphertext as it is. identity_record.id_sealed (an ID sealed with AES-SIV) and
-- golden_person's id_number and phone (sealed, as person holds them) are random bytes in base64: DuckDB's string
-- compression (DICT_FSST) saved 6 per cent of their size at a million records, and analysing them again at every night's
-- checkpoint — single-threaded, inside the commit — cost 0.3 s of it (bench/bench_identity_night.py). Everything
-- else compresses as before. DuckDB cannot change a column's compression in place: each table is copied into its new
-- definition and replaced; person_link, a view of identity_record, is made again over the new one.
DROP VIEW person_link;

CREATE TABLE identity_record_0012 (
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    person_id VARCHAR NOT NULL,
    batch_id VARCHAR,
    name_std VARCHAR,
    name_pinyin VARCHAR,
    name_fuzzy VARCHAR,
    surname_pinyin VARCHAR,
    given_pinyin VARCHAR,
    sex VARCHAR,
    birth_date VARCHAR,
    birth_year VARCHAR,
    id_hash VARCHAR,
    id_valid BOOLEAN,
    id_foreign BOOLEAN,
    phone_hash VARCHAR,
    health_record_number VARCHAR,
    household_key VARCHAR,
    link_kind VARCHAR NOT NULL,
    match_probability DOUBLE,
    linked_at TIMESTAMP NOT NULL,
    run_id VARCHAR,
    address_head VARCHAR,
    address_tail VARCHAR,
    house_number VARCHAR,
    name_words VARCHAR,
    township VARCHAR,
    village VARCHAR,
    address_text VARCHAR,
    id_sealed VARCHAR USING COMPRESSION uncompressed      -- the ID sealed (countyhealth.privacy.seal)
);
INSERT INTO identity_record_0012 SELECT * FROM identity_record;
DROP TABLE identity_record;
ALTER TABLE identity_record_0012 RENAME TO identity_record;

CREATE VIEW person_link AS
SELECT source_id, source_record_id, person_id, link_kind, match_probability, linked_at, run_id
FROM identity_record;

CREATE TABLE golden_person_0012 (
    person_id VARCHAR NOT NULL,
    name VARCHAR,
    name_source_id VARCHAR,
    sex_code VARCHAR,
    sex_code_source_id VARCHAR,
    birth_date DATE,
    birth_date_source_id VARCHAR,
    id_number VARCHAR USING COMPRESSION uncompressed,     -- ciphertext (countyhealth.privacy)
    id_number_hash VARCHAR,
    id_number_source_id VARCHAR,
    phone VARCHAR USING COMPRESSION uncompressed,         -- ciphertext
    phone_hash VARCHAR,
    phone_source_id VARCHAR,
    health_record_number VARCHAR,
    health_record_number_source_id VARCHAR,
    address VARCHAR,
    address_source_id VARCHAR,
    address_township VARCHAR,
    address_village VARCHAR,
    records BIGINT NOT NULL,
    sources BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO golden_person_0012 SELECT * FROM golden_person;
DROP TABLE golden_person;
ALTER TABLE golden_person_0012 RENAME TO golden_person;
