-- 0005 shared results (检查检验结果互认): the county's harmonisation maps and recognised-item list as loaded
-- from config/, each lab's EQA results per item and period, the shared lab and exam tables keyed by the EMPI
-- person_id (rebuilt by `countyhealth results refresh`), and the read API's tokens and access audit.
-- Eligibility as of a date is one query over these (countyhealth.results.ELIGIBILITY_SQL). Dialect: postgresql.

CREATE TABLE lab_item_map (
    code_system TEXT NOT NULL,
    local_code TEXT NOT NULL,
    local_name TEXT,
    item_code TEXT NOT NULL,
    loinc TEXT,
    PRIMARY KEY (code_system, local_code)
);

CREATE TABLE exam_item_map (
    code_system TEXT NOT NULL,
    local_code TEXT NOT NULL,
    local_name TEXT,
    item_code TEXT NOT NULL,
    procedure_code TEXT,
    PRIMARY KEY (code_system, local_code)
);

-- unit conversion to each item's canonical unit: value × factor (unit_key: the unit lower-cased, μ → u, ^ → *)
CREATE TABLE lab_unit_factor (
    item_code TEXT NOT NULL,
    unit_key TEXT NOT NULL,
    unit TEXT NOT NULL,
    factor DOUBLE PRECISION NOT NULL,
    canonical_unit TEXT NOT NULL,
    PRIMARY KEY (item_code, unit_key)
);

CREATE TABLE recognised_item (
    item_code TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,                               -- lab | exam
    name TEXT,
    loinc TEXT,
    validity_days INTEGER NOT NULL,
    requires_images BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE eqa_certification (
    facility_code TEXT NOT NULL,
    item_code TEXT NOT NULL,
    period_start DATE NOT NULL,
    period_end DATE NOT NULL,
    passed BOOLEAN NOT NULL,
    loaded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (facility_code, item_code, period_start)
);

CREATE TABLE shared_lab_result (
    person_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    facility_code TEXT,
    facility_name TEXT,
    report_number TEXT,
    report_at TIMESTAMP,
    collected_at TIMESTAMP,
    received_at TIMESTAMP,
    tested_at TIMESTAMP,
    specimen_number TEXT,
    specimen_type TEXT,
    item_code_local TEXT,
    item_name_local TEXT,
    loinc TEXT,
    item_name TEXT,
    value_numeric DOUBLE PRECISION,
    value_operator TEXT,
    value_text TEXT,
    unit TEXT,
    value_canonical DOUBLE PRECISION,
    unit_canonical TEXT,
    reference_range TEXT,
    abnormal_flag TEXT,
    result_status TEXT,
    item_code TEXT,                                   -- the county's recognised-item code (互认项目代码)
    on_list BOOLEAN NOT NULL,                        -- on the county's recognised-item list
    is_final BOOLEAN NOT NULL,
    quality_ok BOOLEAN NOT NULL,                     -- lab: passed EQA (室间质评) in the report's period; exam: images kept
    validity_days INTEGER,
    valid_until TIMESTAMP,                           -- eligible while as_of <= valid_until (and no static reason)
    static_reason TEXT,                               -- why it can never be recognised (NULL: eligible in its window)
    refreshed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_id, source_record_id)
);

CREATE TABLE shared_exam_report (
    person_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    facility_code TEXT,
    facility_name TEXT,
    report_number TEXT,
    report_at TIMESTAMP,
    exam_at TIMESTAMP,
    exam_category TEXT,
    procedure_code_local TEXT,
    procedure_code TEXT,
    procedure_name TEXT,
    body_site TEXT,
    findings TEXT,
    impression TEXT,                                  -- shown, never part of what is recognised
    study_uid TEXT,
    device TEXT,
    result_status TEXT,
    item_code TEXT,                                   -- the county's recognised-item code (互认项目代码)
    on_list BOOLEAN NOT NULL,                        -- on the county's recognised-item list
    is_final BOOLEAN NOT NULL,
    quality_ok BOOLEAN NOT NULL,                     -- lab: passed EQA (室间质评) in the report's period; exam: images kept
    validity_days INTEGER,
    valid_until TIMESTAMP,                           -- eligible while as_of <= valid_until (and no static reason)
    static_reason TEXT,                               -- why it can never be recognised (NULL: eligible in its window)
    refreshed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_id, source_record_id)
);

CREATE INDEX ix_shared_lab_person ON shared_lab_result (person_id);
CREATE INDEX ix_shared_exam_person ON shared_exam_report (person_id);
CREATE INDEX ix_shared_lab_report ON shared_lab_result (report_at);
