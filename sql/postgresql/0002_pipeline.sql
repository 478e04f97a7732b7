-- 0002 pipeline: what every batch did (audit, quarantine, findings), files already ingested, and the EMPI's
-- two contract tables (person_link, empi_person) that the identity and results stages share.
-- Dialect: postgresql. Identity adds its own tables in 0003, shared results in 0004.

-- keyed hashes beside the encrypted ID number and phone (countyhealth.privacy)
ALTER TABLE person ADD COLUMN id_number_hash TEXT;
ALTER TABLE person ADD COLUMN phone_hash TEXT;

-- One row per (landing batch, canonical dataset): where every extracted row went. Reconciles exactly:
-- rows_extracted = rows_loaded + rows_quarantined + rows_duplicate (checked in code before commit).
CREATE TABLE batch_audit (
    batch_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    source_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    status TEXT NOT NULL,                             -- loaded | held | released | failed
    rows_extracted BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    rows_duplicate BIGINT NOT NULL,
    rows_flagged BIGINT NOT NULL DEFAULT 0,          -- loaded rows that carry a finding (a warning)
    failing_share DOUBLE PRECISION,
    threshold DOUBLE PRECISION,
    cursor_start TEXT,
    cursor_end TEXT,
    extracted_at TIMESTAMP,
    validated_at TIMESTAMP,
    loaded_at TIMESTAMP,
    message TEXT,
    PRIMARY KEY (batch_id, dataset)
);

-- Rows that failed a rule and did not load: one row per (row, rule). ID numbers and phones masked.
CREATE TABLE quarantine (
    batch_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    row_number BIGINT NOT NULL,                      -- the row's position in the landed batch
    rule_id TEXT NOT NULL,                            -- stable across runs, e.g. lab_result.plausibility.physiological_limits
    source_id TEXT NOT NULL,
    facility_code TEXT,
    source_record_id TEXT,
    category TEXT,                                    -- conformance | completeness | plausibility
    column_name TEXT,
    offending_value TEXT,
    row_json TEXT,
    quarantined_at TIMESTAMP NOT NULL,
    PRIMARY KEY (batch_id, dataset, row_number, rule_id)
);

-- Findings: a rule flagged the row but it still loaded (e.g. the ID's birth date disagrees: lunar birthdays).
CREATE TABLE finding (
    batch_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    row_number BIGINT NOT NULL,
    rule_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    facility_code TEXT,
    source_record_id TEXT,
    category TEXT,
    column_name TEXT,
    offending_value TEXT,
    found_at TIMESTAMP NOT NULL,
    PRIMARY KEY (batch_id, dataset, row_number, rule_id)
);

-- Files a file source has ingested, by content: the same bytes dropped again are not ingested twice.
CREATE TABLE ingested_file (
    source_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    file_name TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_id, stream, sha256)
);

-- The sources as configured at their last load (sources/*.yaml): lets later stages re-derive what depends
-- on a source's configuration (e.g. which local code system its lab items use) without reading YAML.
CREATE TABLE source_registry (
    source_id TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    facility_code TEXT,
    code_system TEXT,                                 -- local lab/exam code system (e.g. his_vendor_a)
    description TEXT,
    config_sha256 TEXT,
    updated_at TIMESTAMP NOT NULL
);

-- The EMPI's persons. A person_id is never renumbered; a merged person keeps its row, status 'merged',
-- and redirects to the survivor through merged_into.
CREATE TABLE empi_person (
    person_id TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL,                             -- active | merged
    merged_into TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Which person each source patient record belongs to. person_id is always an active person.
CREATE TABLE person_link (
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    link_kind TEXT NOT NULL,                          -- deterministic | probabilistic | manual | new
    match_probability DOUBLE PRECISION,
    linked_at TIMESTAMP NOT NULL,
    run_id TEXT,
    PRIMARY KEY (source_id, source_record_id)
);

CREATE INDEX ix_batch_audit_source ON batch_audit (source_id, stream);
CREATE INDEX ix_quarantine_rule ON quarantine (dataset, rule_id);
CREATE INDEX ix_quarantine_facility ON quarantine (facility_code);
CREATE INDEX ix_person_link_person ON person_link (person_id);
CREATE INDEX ix_person_id_hash ON person (id_number_hash);
