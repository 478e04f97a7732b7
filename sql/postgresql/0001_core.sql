-- 0001 core: the canonical datasets (mirrors countyhealth/model.py; a test keeps them in step)
-- and the per-(source, stream) watermark. Dialect: postgresql.

-- A member of the county medical community (医共体成员单位)
CREATE TABLE facility (
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    facility_code TEXT,                               -- DE08.10.052.00
    batch_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    name TEXT,                                        -- DE08.10.013.00
    level TEXT,
    parent_code TEXT,
    his_vendor TEXT,
    region_code TEXT,
    PRIMARY KEY (source_id, source_record_id)
);
CREATE INDEX ix_facility_facility ON facility (facility_code);

-- One source system's patient record (患者基本信息, WS 445); the EMPI decides the resident
CREATE TABLE person (
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    facility_code TEXT,                               -- DE08.10.052.00
    batch_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    name TEXT,                                        -- DE02.01.039.00
    sex_code TEXT,                                    -- DE02.01.040.00
    birth_date DATE,                                  -- DE02.01.005.01
    id_type_code TEXT,                                -- DE02.01.031.00
    id_number TEXT,                                   -- DE02.01.030.00
    health_record_number TEXT,                        -- DE01.00.009.00
    health_card_number TEXT,                          -- DE01.00.021.00
    phone TEXT,                                       -- DE02.01.010.00
    address_province TEXT,                            -- DE02.01.009.01
    address_city TEXT,                                -- DE02.01.009.02
    address_county TEXT,                              -- DE02.01.009.03
    address_township TEXT,                            -- DE02.01.009.04
    address_village TEXT,                             -- DE02.01.009.05
    address_house_number TEXT,                        -- DE02.01.009.06
    address TEXT,
    ethnicity_code TEXT,                              -- DE02.01.025.00
    PRIMARY KEY (source_id, source_record_id)
);
CREATE INDEX ix_person_facility ON person (facility_code);

-- An outpatient or inpatient visit with its diagnoses (门急诊/住院就诊记录)
CREATE TABLE encounter (
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    facility_code TEXT,                               -- DE08.10.052.00
    batch_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    person_source_record_id TEXT,
    encounter_type TEXT,
    outpatient_number TEXT,                           -- DE01.00.010.00
    inpatient_number TEXT,                            -- DE01.00.014.00
    start_at TIMESTAMP,
    end_at TIMESTAMP,
    department TEXT,
    diagnosis_code TEXT,                              -- DE05.01.024.00
    diagnosis_name TEXT,
    other_diagnosis_codes TEXT,
    doctor_name TEXT,
    PRIMARY KEY (source_id, source_record_id)
);
CREATE INDEX ix_encounter_person ON encounter (source_id, person_source_record_id);
CREATE INDEX ix_encounter_facility ON encounter (facility_code);

-- One lab test result (检验记录, WS 445.4), one row per item
CREATE TABLE lab_result (
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    facility_code TEXT,                               -- DE08.10.052.00
    batch_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    person_source_record_id TEXT,
    report_number TEXT,                               -- DE01.00.018.00
    report_at TIMESTAMP,                              -- DE04.50.133.00
    request_number TEXT,                              -- DE01.00.008.00
    encounter_source_record_id TEXT,
    outpatient_number TEXT,                           -- DE01.00.010.00
    inpatient_number TEXT,                            -- DE01.00.014.00
    diagnosis_code TEXT,                              -- DE05.01.024.00
    specimen_number TEXT,                             -- DE01.00.003.00
    specimen_type TEXT,                               -- DE04.50.134.00
    collected_at TIMESTAMP,                           -- DE04.50.137.00
    received_at TIMESTAMP,                            -- DE04.50.141.00
    tested_at TIMESTAMP,                              -- DE04.50.140.00
    item_code_local TEXT,                             -- DE04.30.019.00
    item_name_local TEXT,
    item_code_standard TEXT,
    recognised_item_code TEXT,
    category TEXT,                                    -- DE04.30.018.00
    method TEXT,                                      -- DE02.10.027.00
    value_numeric DOUBLE PRECISION,                   -- DE04.30.015.00
    value_operator TEXT,
    value_text TEXT,
    unit TEXT,                                        -- DE04.30.016.00
    result_code TEXT,                                 -- DE04.30.017.00
    reference_range TEXT,
    abnormal_flag TEXT,
    result_status TEXT,
    instrument TEXT,
    PRIMARY KEY (source_id, source_record_id)
);
CREATE INDEX ix_lab_result_person ON lab_result (source_id, person_source_record_id);
CREATE INDEX ix_lab_result_facility ON lab_result (facility_code);

-- One exam report: imaging, ECG, pathology (检查记录, WS 445.4)
CREATE TABLE exam_report (
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    facility_code TEXT,                               -- DE08.10.052.00
    batch_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    person_source_record_id TEXT,
    report_number TEXT,                               -- DE01.00.018.00
    report_at TIMESTAMP,                              -- DE04.50.133.00
    exam_at TIMESTAMP,
    request_number TEXT,                              -- DE01.00.008.00
    encounter_source_record_id TEXT,
    outpatient_number TEXT,                           -- DE01.00.010.00
    inpatient_number TEXT,                            -- DE01.00.014.00
    exam_category TEXT,
    procedure_code_local TEXT,
    procedure_code TEXT,                              -- DE06.00.093.00
    procedure_name TEXT,
    recognised_item_code TEXT,
    body_site TEXT,                                   -- DE06.00.186.00
    findings TEXT,                                    -- DE04.50.131.00
    impression TEXT,                                  -- DE04.50.132.00
    result_status TEXT,
    device TEXT,
    study_uid TEXT,
    PRIMARY KEY (source_id, source_record_id)
);
CREATE INDEX ix_exam_report_person ON exam_report (source_id, person_source_record_id);
CREATE INDEX ix_exam_report_facility ON exam_report (facility_code);

-- A hypertension or diabetes follow-up (高血压/糖尿病患者随访, 基本公共卫生)
CREATE TABLE chronic_followup (
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    facility_code TEXT,                               -- DE08.10.052.00
    batch_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    person_source_record_id TEXT,
    health_record_number TEXT,                        -- DE01.00.009.00
    condition TEXT,
    visit_date DATE,                                  -- DE06.00.210.00
    visit_mode TEXT,                                  -- DE06.00.207.00
    symptoms TEXT,
    sbp INTEGER,                                      -- DE04.10.174.00
    dbp INTEGER,                                      -- DE04.10.176.00
    weight_kg DOUBLE PRECISION,                       -- DE04.10.188.00
    bmi DOUBLE PRECISION,                             -- DE04.10.169.00
    heart_rate INTEGER,                               -- DE04.10.206.00
    smoking_per_day INTEGER,
    drinking_per_day DOUBLE PRECISION,
    exercise_per_week INTEGER,
    salt_intake TEXT,
    adherence TEXT,
    adverse_reaction BOOLEAN,
    classification TEXT,
    referral BOOLEAN,
    next_visit_date DATE,
    fasting_glucose DOUBLE PRECISION,                 -- DE04.50.102.00
    postprandial_glucose DOUBLE PRECISION,
    glucose_unit TEXT,
    hba1c DOUBLE PRECISION,                           -- DE04.50.149.00
    hypoglycaemia BOOLEAN,
    foot_pulse TEXT,
    doctor_name TEXT,
    PRIMARY KEY (source_id, source_record_id)
);
CREATE INDEX ix_chronic_followup_person ON chronic_followup (source_id, person_source_record_id);
CREATE INDEX ix_chronic_followup_facility ON chronic_followup (facility_code);

-- A family-doctor contract event (家庭医生签约)
CREATE TABLE contract (
    source_id TEXT NOT NULL,
    source_record_id TEXT NOT NULL,
    facility_code TEXT,                               -- DE08.10.052.00
    batch_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    person_source_record_id TEXT,
    contract_number TEXT,
    event TEXT,
    team_code TEXT,
    doctor_name TEXT,
    package_type TEXT,
    sign_date DATE,
    begin_date DATE,
    end_date DATE,
    status TEXT,
    termination_date DATE,
    termination_reason TEXT,
    PRIMARY KEY (source_id, source_record_id)
);
CREATE INDEX ix_contract_person ON contract (source_id, person_source_record_id);
CREATE INDEX ix_contract_facility ON contract (facility_code);

-- How far each (source, stream) has been landed and loaded; advanced in the load's transaction.
CREATE TABLE watermark (
    source_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    cursor_value TEXT,
    batch_id TEXT,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_id, stream)
);
