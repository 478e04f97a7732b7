-- 0001 core: the canonical datasets (mirrors countyhealth/model.py; a test keeps them in step)
-- and the per-(source, stream) watermark. Dialect: duckdb. No secondary indexes: DuckDB scans with
-- zone maps, and ART indexes on upserted tables only slow the ON CONFLICT path.

-- A member of the county medical community (医共体成员单位)
CREATE TABLE facility (
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    facility_code VARCHAR,                            -- DE08.10.052.00
    batch_id VARCHAR NOT NULL,
    source_updated_at TIMESTAMP,
    name VARCHAR,                                     -- DE08.10.013.00
    level VARCHAR,
    parent_code VARCHAR,
    his_vendor VARCHAR,
    region_code VARCHAR,
    PRIMARY KEY (source_id, source_record_id)
);

-- One source system's patient record (患者基本信息, WS 445); the EMPI decides the resident
CREATE TABLE person (
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    facility_code VARCHAR,                            -- DE08.10.052.00
    batch_id VARCHAR NOT NULL,
    source_updated_at TIMESTAMP,
    name VARCHAR,                                     -- DE02.01.039.00
    sex_code VARCHAR,                                 -- DE02.01.040.00
    birth_date DATE,                                  -- DE02.01.005.01
    id_type_code VARCHAR,                             -- DE02.01.031.00
    id_number VARCHAR,                                -- DE02.01.030.00
    health_record_number VARCHAR,                     -- DE01.00.009.00
    health_card_number VARCHAR,                       -- DE01.00.021.00
    phone VARCHAR,                                    -- DE02.01.010.00
    address_province VARCHAR,                         -- DE02.01.009.01
    address_city VARCHAR,                             -- DE02.01.009.02
    address_county VARCHAR,                           -- DE02.01.009.03
    address_township VARCHAR,                         -- DE02.01.009.04
    address_village VARCHAR,                          -- DE02.01.009.05
    address_house_number VARCHAR,                     -- DE02.01.009.06
    address VARCHAR,
    ethnicity_code VARCHAR,                           -- DE02.01.025.00
    PRIMARY KEY (source_id, source_record_id)
);

-- An outpatient or inpatient visit with its diagnoses (门急诊/住院就诊记录)
CREATE TABLE encounter (
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    facility_code VARCHAR,                            -- DE08.10.052.00
    batch_id VARCHAR NOT NULL,
    source_updated_at TIMESTAMP,
    person_source_record_id VARCHAR,
    encounter_type VARCHAR,
    outpatient_number VARCHAR,                        -- DE01.00.010.00
    inpatient_number VARCHAR,                         -- DE01.00.014.00
    start_at TIMESTAMP,
    end_at TIMESTAMP,
    department VARCHAR,
    diagnosis_code VARCHAR,                           -- DE05.01.024.00
    diagnosis_name VARCHAR,
    other_diagnosis_codes VARCHAR,
    doctor_name VARCHAR,
    PRIMARY KEY (source_id, source_record_id)
);

-- One lab test result (检验记录, WS 445.4), one row per item
CREATE TABLE lab_result (
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    facility_code VARCHAR,                            -- DE08.10.052.00
    batch_id VARCHAR NOT NULL,
    source_updated_at TIMESTAMP,
    person_source_record_id VARCHAR,
    report_number VARCHAR,                            -- DE01.00.018.00
    report_at TIMESTAMP,                              -- DE04.50.133.00
    request_number VARCHAR,                           -- DE01.00.008.00
    encounter_source_record_id VARCHAR,
    outpatient_number VARCHAR,                        -- DE01.00.010.00
    inpatient_number VARCHAR,                         -- DE01.00.014.00
    diagnosis_code VARCHAR,                           -- DE05.01.024.00
    specimen_number VARCHAR,                          -- DE01.00.003.00
    specimen_type VARCHAR,                            -- DE04.50.134.00
    collected_at TIMESTAMP,                           -- DE04.50.137.00
    received_at TIMESTAMP,                            -- DE04.50.141.00
    tested_at TIMESTAMP,                              -- DE04.50.140.00
    item_code_local VARCHAR,                          -- DE04.30.019.00
    item_name_local VARCHAR,
    item_code_standard VARCHAR,
    recognised_item_code VARCHAR,
    category VARCHAR,                                 -- DE04.30.018.00
    method VARCHAR,                                   -- DE02.10.027.00
    value_numeric DOUBLE,                             -- DE04.30.015.00
    value_operator VARCHAR,
    value_text VARCHAR,
    unit VARCHAR,                                     -- DE04.30.016.00
    result_code VARCHAR,                              -- DE04.30.017.00
    reference_range VARCHAR,
    abnormal_flag VARCHAR,
    result_status VARCHAR,
    instrument VARCHAR,
    PRIMARY KEY (source_id, source_record_id)
);

-- One exam report: imaging, ECG, pathology (检查记录, WS 445.4)
CREATE TABLE exam_report (
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    facility_code VARCHAR,                            -- DE08.10.052.00
    batch_id VARCHAR NOT NULL,
    source_updated_at TIMESTAMP,
    person_source_record_id VARCHAR,
    report_number VARCHAR,                            -- DE01.00.018.00
    report_at TIMESTAMP,                              -- DE04.50.133.00
    exam_at TIMESTAMP,
    request_number VARCHAR,                           -- DE01.00.008.00
    encounter_source_record_id VARCHAR,
    outpatient_number VARCHAR,                        -- DE01.00.010.00
    inpatient_number VARCHAR,                         -- DE01.00.014.00
    exam_category VARCHAR,
    procedure_code_local VARCHAR,
    procedure_code VARCHAR,                           -- DE06.00.093.00
    procedure_name VARCHAR,
    recognised_item_code VARCHAR,
    body_site VARCHAR,                                -- DE06.00.186.00
    findings VARCHAR,                                 -- DE04.50.131.00
    impression VARCHAR,                               -- DE04.50.132.00
    result_status VARCHAR,
    device VARCHAR,
    study_uid VARCHAR,
    PRIMARY KEY (source_id, source_record_id)
);

-- A hypertension or diabetes follow-up (高血压/糖尿病患者随访, 基本公共卫生)
CREATE TABLE chronic_followup (
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    facility_code VARCHAR,                            -- DE08.10.052.00
    batch_id VARCHAR NOT NULL,
    source_updated_at TIMESTAMP,
    person_source_record_id VARCHAR,
    health_record_number VARCHAR,                     -- DE01.00.009.00
    condition VARCHAR,
    visit_date DATE,                                  -- DE06.00.210.00
    visit_mode VARCHAR,                               -- DE06.00.207.00
    symptoms VARCHAR,
    sbp INTEGER,                                      -- DE04.10.174.00
    dbp INTEGER,                                      -- DE04.10.176.00
    weight_kg DOUBLE,                                 -- DE04.10.188.00
    bmi DOUBLE,                                       -- DE04.10.169.00
    heart_rate INTEGER,                               -- DE04.10.206.00
    smoking_per_day INTEGER,
    drinking_per_day DOUBLE,
    exercise_per_week INTEGER,
    salt_intake VARCHAR,
    adherence VARCHAR,
    adverse_reaction BOOLEAN,
    classification VARCHAR,
    referral BOOLEAN,
    next_visit_date DATE,
    fasting_glucose DOUBLE,                           -- DE04.50.102.00
    postprandial_glucose DOUBLE,
    glucose_unit VARCHAR,
    hba1c DOUBLE,                                     -- DE04.50.149.00
    hypoglycaemia BOOLEAN,
    foot_pulse VARCHAR,
    doctor_name VARCHAR,
    PRIMARY KEY (source_id, source_record_id)
);

-- A family-doctor contract event (家庭医生签约)
CREATE TABLE contract (
    source_id VARCHAR NOT NULL,
    source_record_id VARCHAR NOT NULL,
    facility_code VARCHAR,                            -- DE08.10.052.00
    batch_id VARCHAR NOT NULL,
    source_updated_at TIMESTAMP,
    person_source_record_id VARCHAR,
    contract_number VARCHAR,
    event VARCHAR,
    team_code VARCHAR,
    doctor_name VARCHAR,
    package_type VARCHAR,
    sign_date DATE,
    begin_date DATE,
    end_date DATE,
    status VARCHAR,
    termination_date DATE,
    termination_reason VARCHAR,
    PRIMARY KEY (source_id, source_record_id)
);

-- How far each (source, stream) has been landed and loaded; advanced in the load's transaction.
CREATE TABLE watermark (
    source_id VARCHAR NOT NULL,
    stream VARCHAR NOT NULL,
    cursor_value VARCHAR,
    batch_id VARCHAR,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_id, stream)
);
