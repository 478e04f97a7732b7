-- 0005 shared results (检查检验结果互认): the county's harmonisation maps and recognised-item list as loaded
-- from config/, each lab's EQA results per item and period, the shared lab and exam tables keyed by the EMPI
-- person_id (rebuilt by `countyhealth results refresh`), and the read API's tokens and access audit.
-- Eligibility as of a date is one query over these (countyhealth.results.ELIGIBILITY_SQL). Dialect: duckdb.

CREATE TABLE lab_item_map (
    code_system VARCHAR NOT NULL,
    local_code VARCHAR NOT NULL,
    local_name VARCHAR,
    item_code VARCHAR NOT NULL,
    loinc VARCHAR,
    PRIMARY KEY (code_system, local_code)
);

CREATE TABLE exam_item_map (
    code_system VARCHAR NOT NULL,
    local_code VARCHAR NOT NULL,
    local_name VARCHAR,
    item_code VARCHAR NOT NULL,
    procedure_code VARCHAR,
    PRIMARY KEY (code_system, local_code)
);

-- unit conversion to each item's canonical unit: value × factor (unit_key: the unit lower-cased, μ → u, ^ → *)
CREATE TABLE lab_unit_factor (
    item_code VARCHAR NOT NULL,
    unit_key VARCHAR NOT NULL,
    unit VARCHAR NOT NULL,
    factor DOUBLE NOT NULL,
    canonical_unit VARCHAR NOT NULL,
    PRIMARY KEY (item_code, unit_key)
);

CREATE TABLE recognised_item (
    item_code VARCHAR NOT NULL PRIMARY KEY,
    kind VARCHAR NOT NULL,                               -- lab | exam
    name VARCHAR,
    loinc VARCHAR,
    validity_days INTEGER NOT NULL,
    requires_images BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE eqa_certification (
    facility_code VARCHAR NOT NULL,
    item_code VARCHAR NOT NULL,
    period_start DATE NOT NULL,
    period_end DATE NOT NULL,
    passed BOOLEAN NOT NULL,
    loaded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (facility_code, item_code, period_start)
);

CREATE TABLE shared_lab_result (
    person_id VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    facility_code VARCHAR,
    facility_name VARCHAR,
    report_number VARCHAR,
    report_at TIMESTAMP,
    collected_at TIMESTAMP,
    received_at TIMESTAMP,
    tested_at TIMESTAMP,
    specimen_number VARCHAR,
    specimen_type VARCHAR,
    item_code_local VARCHAR,
    item_name_local VARCHAR,
    loinc VARCHAR,
    item_name VARCHAR,
    value_numeric DOUBLE,
    value_operator VARCHAR,
    value_text VARCHAR,
    unit VARCHAR,
    value_canonical DOUBLE,
    unit_canonical VARCHAR,
    reference_range VARCHAR,
    abnormal_flag VARCHAR,
    result_status VARCHAR,
    item_code VARCHAR,                                   -- the county's recognised-item code (互认项目代码)
    on_list BOOLEAN NOT NULL,                        -- on the county's recognised-item list
    is_final BOOLEAN NOT NULL,
    quality_ok BOOLEAN NOT NULL,                     -- lab: passed EQA (室间质评) in the report's period; exam: images kept
    validity_days INTEGER,
    valid_until TIMESTAMP,                           -- eligible while as_of <= valid_until (and no static reason)
    static_reason VARCHAR,                               -- why it can never be recognised (NULL: eligible in its window)
    refreshed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_id, source_record_id)
);

CREATE TABLE shared_exam_report (
    person_id VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    facility_code VARCHAR,
    facility_name VARCHAR,
    report_number VARCHAR,
    report_at TIMESTAMP,
    exam_at TIMESTAMP,
    exam_category VARCHAR,
    procedure_code_local VARCHAR,
    procedure_code VARCHAR,
    procedure_name VARCHAR,
    body_site VARCHAR,
    findings VARCHAR,
    impression VARCHAR,                                  -- shown, never part of what is recognised
    study_uid VARCHAR,
    device VARCHAR,
    result_status VARCHAR,
    item_code VARCHAR,                                   -- the county's recognised-item code (互认项目代码)
    on_list BOOLEAN NOT NULL,                        -- on the county's recognised-item list
    is_final BOOLEAN NOT NULL,
    quality_ok BOOLEAN NOT NULL,                     -- lab: passed EQA (室间质评) in the report's period; exam: images kept
    validity_days INTEGER,
    valid_until TIMESTAMP,                           -- eligible while as_of <= valid_until (and no static reason)
    static_reason VARCHAR,                               -- why it can never be recognised (NULL: eligible in its window)
    refreshed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_id, source_record_id)
);

-- no secondary indexes here (DuckDB scans with zone maps; the read API's snapshot gets its own person_id index)
