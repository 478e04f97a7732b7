-- 0004 identity (EMPI): what each source record was matched on (keyed hashes, never plaintext ID numbers or
-- phones), the events that changed a person, the review queue with its decisions, run history and the golden
-- record. Dialect: duckdb.

CREATE TABLE identity_record (
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    person_id VARCHAR NOT NULL,
    batch_id VARCHAR,                                    -- the person row's version this link was made from
    name_std VARCHAR,
    name_pinyin VARCHAR,
    name_fuzzy VARCHAR,
    surname_pinyin VARCHAR,
    given_pinyin VARCHAR,
    sex VARCHAR,
    birth_date VARCHAR,
    birth_year VARCHAR,
    birth_md VARCHAR,
    id_hash VARCHAR,                                     -- keyed hash of the normalised 18-digit ID
    id_prefix_hash VARCHAR,                              -- keyed hash of its first 14 characters (region + birth date)
    id_valid BOOLEAN,
    id_foreign BOOLEAN,                                  -- the record carries someone else's ID (a guardian's)
    phone_hash VARCHAR,
    health_record_number VARCHAR,
    household_key VARCHAR,
    link_kind VARCHAR NOT NULL,                          -- deterministic | probabilistic | manual | new
    match_probability DOUBLE,
    linked_at TIMESTAMP NOT NULL,
    run_id VARCHAR,
    PRIMARY KEY (source_id, source_record_id)
);

CREATE TABLE identity_event (
    event_id VARCHAR NOT NULL PRIMARY KEY,
    run_id VARCHAR,
    kind VARCHAR NOT NULL,                               -- new | merge | split | move | manual_link | manual_split
    person_id VARCHAR NOT NULL,
    other_person_id VARCHAR,                             -- merge: the person merged into person_id; split: where it went
    source_id VARCHAR,
    source_record_id VARCHAR,
    reason VARCHAR,
    occurred_at TIMESTAMP NOT NULL
);

CREATE TABLE identity_review (
    pair_id VARCHAR NOT NULL PRIMARY KEY,                -- stable for a pair of records, whichever run found it
    left_source_id VARCHAR NOT NULL,
    left_source_record_id VARCHAR NOT NULL,
    right_source_id VARCHAR NOT NULL,
    right_source_record_id VARCHAR NOT NULL,
    match_probability DOUBLE,
    evidence VARCHAR,                                    -- the comparison levels that agreed and disagreed
    status VARCHAR NOT NULL,                             -- open | accepted | rejected
    created_at TIMESTAMP NOT NULL,
    run_id VARCHAR,
    decided_by VARCHAR,
    decided_at TIMESTAMP,
    note VARCHAR
);

CREATE TABLE identity_run (
    run_id VARCHAR NOT NULL PRIMARY KEY,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    records_considered BIGINT,
    linked_deterministic BIGINT,
    linked_probabilistic BIGINT,
    linked_manual BIGINT,
    new_persons BIGINT,
    queued_for_review BIGINT,
    merges BIGINT,
    splits BIGINT,
    model_version VARCHAR
);

-- One row per active person: each attribute from the most trusted source, then the most recent.
CREATE TABLE golden_person (
    person_id VARCHAR NOT NULL PRIMARY KEY,
    name VARCHAR,
    name_source_id VARCHAR,
    sex_code VARCHAR,
    sex_code_source_id VARCHAR,
    birth_date DATE,
    birth_date_source_id VARCHAR,
    id_number VARCHAR,                                   -- ciphertext (countyhealth.privacy)
    id_number_hash VARCHAR,
    id_number_source_id VARCHAR,
    phone VARCHAR,                                       -- ciphertext
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
