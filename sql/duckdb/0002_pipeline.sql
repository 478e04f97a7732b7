-- 0002 pipeline: what every batch did (audit, quarantine, findings), files already ingested, and the EMPI's
-- two contract tables (person_link, empi_person) that the identity and results stages share.
-- Dialect: duckdb. Identity adds its own tables in 0003, shared results in 0004.

-- keyed hashes beside the encrypted ID number and phone (countyhealth.privacy)
ALTER TABLE person ADD COLUMN id_number_hash VARCHAR;
ALTER TABLE person ADD COLUMN phone_hash VARCHAR;

-- One row per (landing batch, canonical dataset): where every extracted row went. Reconciles exactly:
-- rows_extracted = rows_loaded + rows_quarantined + rows_duplicate (checked in code before commit).
CREATE TABLE batch_audit (
    batch_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    stream VARCHAR NOT NULL,
    status VARCHAR NOT NULL,                             -- loaded | held | released | failed
    rows_extracted BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    rows_duplicate BIGINT NOT NULL,
    rows_flagged BIGINT NOT NULL DEFAULT 0,          -- loaded rows that carry a finding (a warning)
    failing_share DOUBLE,
    threshold DOUBLE,
    cursor_start VARCHAR,
    cursor_end VARCHAR,
    extracted_at TIMESTAMP,
    validated_at TIMESTAMP,
    loaded_at TIMESTAMP,
    message VARCHAR,
    PRIMARY KEY (batch_id, dataset)
);

-- Rows that failed a rule and did not load: one row per (row, rule). ID numbers and phones masked.
CREATE TABLE quarantine (
    batch_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,                      -- the row's position in the landed batch
    rule_id VARCHAR NOT NULL,                            -- stable across runs, e.g. lab_result.plausibility.physiological_limits
    source_id VARCHAR NOT NULL,
    facility_code VARCHAR,
    source_record_id VARCHAR,
    category VARCHAR,                                    -- conformance | completeness | plausibility
    column_name VARCHAR,
    offending_value VARCHAR,
    row_json VARCHAR,
    quarantined_at TIMESTAMP NOT NULL,
    PRIMARY KEY (batch_id, dataset, row_number, rule_id)
);

-- Findings: a rule flagged the row but it still loaded (e.g. the ID's birth date disagrees: lunar birthdays).
CREATE TABLE finding (
    batch_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    rule_id VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    facility_code VARCHAR,
    source_record_id VARCHAR,
    category VARCHAR,
    column_name VARCHAR,
    offending_value VARCHAR,
    found_at TIMESTAMP NOT NULL,
    PRIMARY KEY (batch_id, dataset, row_number, rule_id)
);

-- Files a file source has ingested, by content: the same bytes dropped again are not ingested twice.
CREATE TABLE ingested_file (
    source_id VARCHAR NOT NULL,
    stream VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_id, stream, sha256)
);

-- The sources as configured at their last load (sources/*.yaml): lets later stages re-derive what depends
-- on a source's configuration (e.g. which local code system its lab items use) without reading YAML.
CREATE TABLE source_registry (
    source_id VARCHAR NOT NULL PRIMARY KEY,
    kind VARCHAR NOT NULL,
    facility_code VARCHAR,
    code_system VARCHAR,                                 -- local lab/exam code system (e.g. his_vendor_a)
    description VARCHAR,
    config_sha256 VARCHAR,
    updated_at TIMESTAMP NOT NULL
);

-- The EMPI's persons. A person_id is never renumbered; a merged person keeps its row, status 'merged',
-- and redirects to the survivor through merged_into.
CREATE TABLE empi_person (
    person_id VARCHAR NOT NULL PRIMARY KEY,
    status VARCHAR NOT NULL,                             -- active | merged
    merged_into VARCHAR,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Which person each source patient record belongs to. person_id is always an active person.
CREATE TABLE person_link (
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    person_id VARCHAR NOT NULL,
    link_kind VARCHAR NOT NULL,                          -- deterministic | probabilistic | manual | new
    match_probability DOUBLE,
    linked_at TIMESTAMP NOT NULL,
    run_id VARCHAR,
    PRIMARY KEY (source_id, source_record_id)
);
