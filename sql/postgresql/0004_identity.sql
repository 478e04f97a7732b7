-- 0004 identity (EMPI): what each source record was matched on (keyed hashes, never plaintext ID numbers or
-- phones), the events that changed a person, the review queue with its decisions, run history and the golden
-- record. Dialect: postgresql.

CREATE TABLE identity_record (
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    batch_id TEXT,                                    -- the person row's version this link was made from
    name_std TEXT,
    name_pinyin TEXT,
    name_fuzzy TEXT,
    surname_pinyin TEXT,
    given_pinyin TEXT,
    sex TEXT,
    birth_date TEXT,
    birth_year TEXT,
    birth_md TEXT,
    id_hash TEXT,                                     -- keyed hash of the normalised 18-digit ID
    id_prefix_hash TEXT,                              -- keyed hash of its first 14 characters (region + birth date)
    id_valid BOOLEAN,
    id_foreign BOOLEAN,                                  -- the record carries someone else's ID (a guardian's)
    phone_hash TEXT,
    health_record_number TEXT,
    household_key TEXT,
    link_kind TEXT NOT NULL,                          -- deterministic | probabilistic | manual | new
    match_probability DOUBLE PRECISION,
    linked_at TIMESTAMP NOT NULL,
    run_id TEXT,
    PRIMARY KEY (source_id, source_record_id)
);

CREATE TABLE identity_event (
    event_id TEXT NOT NULL PRIMARY KEY,
    run_id TEXT,
    kind TEXT NOT NULL,                               -- new | merge | split | move | manual_link | manual_split
    person_id TEXT NOT NULL,
    other_person_id TEXT,                             -- merge: the person merged into person_id; split: where it went
    source_id TEXT,
    source_record_id TEXT,
    reason TEXT,
    occurred_at TIMESTAMP NOT NULL
);

CREATE TABLE identity_review (
    pair_id TEXT NOT NULL PRIMARY KEY,                -- stable for a pair of records, whichever run found it
    left_source_id TEXT NOT NULL,
    left_source_record_id TEXT NOT NULL,
    right_source_id TEXT NOT NULL,
    right_source_record_id TEXT NOT NULL,
    match_probability DOUBLE PRECISION,
    evidence TEXT,                                    -- the comparison levels that agreed and disagreed
    status TEXT NOT NULL,                             -- open | accepted | rejected
    created_at TIMESTAMP NOT NULL,
    run_id TEXT,
    decided_by TEXT,
    decided_at TIMESTAMP,
    note TEXT
);

CREATE TABLE identity_run (
    run_id TEXT NOT NULL PRIMARY KEY,
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
    model_version TEXT
);

-- One row per active person: each attribute from the most trusted source, then the most recent.
CREATE TABLE golden_person (
    person_id TEXT NOT NULL PRIMARY KEY,
    name TEXT,
    name_source_id TEXT,
    sex_code TEXT,
    sex_code_source_id TEXT,
    birth_date DATE,
    birth_date_source_id TEXT,
    id_number TEXT,                                   -- ciphertext (countyhealth.privacy)
    id_number_hash TEXT,
    id_number_source_id TEXT,
    phone TEXT,                                       -- ciphertext
    phone_hash TEXT,
    phone_source_id TEXT,
    health_record_number TEXT,
    health_record_number_source_id TEXT,
    address TEXT,
    address_source_id TEXT,
    address_township TEXT,
    address_village TEXT,
    records BIGINT NOT NULL,
    sources BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE INDEX ix_identity_record_person ON identity_record (person_id);
CREATE INDEX ix_identity_record_id ON identity_record (id_hash);
CREATE INDEX ix_identity_record_hrn ON identity_record (health_record_number);
CREATE INDEX ix_identity_record_birth ON identity_record (birth_date, surname_pinyin);
CREATE INDEX ix_identity_record_name ON identity_record (name_pinyin, birth_year);
CREATE INDEX ix_identity_record_phone ON identity_record (phone_hash);
CREATE INDEX ix_identity_event_person ON identity_event (person_id);
CREATE INDEX ix_identity_review_status ON identity_review (status);
