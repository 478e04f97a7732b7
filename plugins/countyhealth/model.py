"""The canonical data model: the datasets every source is mapped into.

Each dataset is a ``pyarrow.Schema``; each field carries metadata ``doc`` (what it is, in the domain),
``de`` (the WS 363 / WS 445 data element id where one exists), ``required`` and ``code_set`` (a key of
:data:`countyhealth.codes.ALL`). Connectors map source fields onto these names; validation derives its
completeness and value-set checks from them; the warehouse DDL in ``sql/`` mirrors them (a test keeps the
two in step).

Every record carries the lineage columns ``source_id``, ``source_record_id``, ``facility_code`` and the
landing ``batch_id``; (``source_id``, ``source_record_id``) is the idempotency key in the warehouse.
``person`` here is *one source system's* patient record; the resident behind it (the EMPI person) is
decided later by ``countyhealth.identity`` and gets a ``person_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us")  # naive timestamps in Asia/Shanghai local time, as member systems record them


@dataclass(frozen=True)
class Field:
    name: str
    type: pa.DataType
    doc: str
    de: str | None = None  # WS 363 / WS 445 data element id (数据元标识符)
    required: bool = False
    code_set: str | None = None  # key into countyhealth.codes.ALL

    def to_arrow(self) -> pa.Field:
        meta = {"doc": self.doc, "required": "true" if self.required else "false"}
        if self.de:
            meta["de"] = self.de
        if self.code_set:
            meta["code_set"] = self.code_set
        return pa.field(self.name, self.type, nullable=True, metadata=meta)


def _f(name, type_, doc, de=None, required=False, code_set=None) -> Field:
    return Field(name, type_, doc, de, required, code_set)


S, D, F, I, B = pa.string(), pa.date32(), pa.float64(), pa.int32(), pa.bool_()

LINEAGE = [
    _f("source_id", S, "Source system id: the file name of its YAML in sources/", required=True),
    _f("source_record_id", S, "The record's key in its source system, stable across extracts", required=True),
    _f("facility_code", S, "Organisation code of the member facility (机构代码)", "DE08.10.052.00", required=True),
    _f("batch_id", S, "Landing batch the record arrived in", required=True),
    _f("source_updated_at", TS, "When the source last changed the record (its cursor column)"),
]

_PERSON_REF = [
    _f("person_source_record_id", S, "The patient's record id in the same source (links to person)", required=True),
]

FACILITY = [
    _f("name", S, "Facility name (机构名称)", "DE08.10.013.00", required=True),
    _f("level", S, "county / township / village", required=True, code_set="facility_level"),
    _f("parent_code", S, "Supervising facility: a village clinic's township centre"),
    _f("his_vendor", S, "HIS vendor the facility runs"),
    _f("region_code", S, "Administrative division code (行政区划代码)"),
]

PERSON = [
    _f("name", S, "Resident name as recorded (姓名)", "DE02.01.039.00", required=True),
    _f("sex_code", S, "Sex, GB/T 2261.1", "DE02.01.040.00", code_set="sex"),
    _f("birth_date", D, "Date of birth (出生日期)", "DE02.01.005.01"),
    _f("id_type_code", S, "ID document type, CV02.01.101", "DE02.01.031.00", code_set="id_type"),
    _f("id_number", S, "ID document number (身份证件号码); encrypted at rest in the warehouse", "DE02.01.030.00"),
    _f("health_record_number", S, "Health-record number (健康档案编号), 17 digits", "DE01.00.009.00"),
    _f("health_card_number", S, "Resident health card number (居民健康卡号)", "DE01.00.021.00"),
    _f("phone", S, "Phone number (电话号码); encrypted at rest", "DE02.01.010.00"),
    _f("address_province", S, "Address: province (省)", "DE02.01.009.01"),
    _f("address_city", S, "Address: city (市)", "DE02.01.009.02"),
    _f("address_county", S, "Address: county (县)", "DE02.01.009.03"),
    _f("address_township", S, "Address: township (乡镇)", "DE02.01.009.04"),
    _f("address_village", S, "Address: village (村)", "DE02.01.009.05"),
    _f("address_house_number", S, "Address: house number (门牌号码)", "DE02.01.009.06"),
    _f("address", S, "Address as one free-text line when the source has no parts"),
    _f("ethnicity_code", S, "Ethnicity, GB 3304 (民族)", "DE02.01.025.00"),
    # keyed hashes (HMAC-SHA256, countyhealth.privacy) of the normalised ID number and phone: joinable
    # without the plaintext, which the warehouse holds only encrypted
    _f("id_number_hash", S, "Keyed hash of the normalised 18-digit ID number (for joins; never reversible)"),
    _f("phone_hash", S, "Keyed hash of the normalised phone number (for joins; never reversible)"),
]

ENCOUNTER = _PERSON_REF + [
    _f("encounter_type", S, "outpatient / inpatient / emergency / physical_exam", required=True, code_set="encounter_type"),
    _f("outpatient_number", S, "Outpatient number (门诊号)", "DE01.00.010.00"),
    _f("inpatient_number", S, "Inpatient number (住院号)", "DE01.00.014.00"),
    _f("start_at", TS, "Visit or admission time", required=True),
    _f("end_at", TS, "Discharge time (inpatient)"),
    _f("department", S, "Department name (科室)"),
    _f("diagnosis_code", S, "Primary diagnosis, ICD-10", "DE05.01.024.00"),
    _f("diagnosis_name", S, "Primary diagnosis name (诊断名称)"),
    _f("other_diagnosis_codes", S, "Further diagnoses, ICD-10, separated by ';'"),
    _f("doctor_name", S, "Attending doctor"),
]

LAB_RESULT = _PERSON_REF + [
    _f("report_number", S, "Lab report number (检验报告单号)", "DE01.00.018.00", required=True),
    _f("report_at", TS, "Report time (报告日期)", "DE04.50.133.00", required=True),
    _f("request_number", S, "Request/order number (申请单号)", "DE01.00.008.00"),
    _f("encounter_source_record_id", S, "The encounter in the same source, when known"),
    _f("outpatient_number", S, "Outpatient number (门诊号)", "DE01.00.010.00"),
    _f("inpatient_number", S, "Inpatient number (住院号)", "DE01.00.014.00"),
    _f("diagnosis_code", S, "Diagnosis on the request, ICD-10", "DE05.01.024.00"),
    _f("specimen_number", S, "Specimen number (标本号)", "DE01.00.003.00"),
    _f("specimen_type", S, "Specimen type (标本类别)", "DE04.50.134.00"),
    _f("collected_at", TS, "Specimen collected (采样日期)", "DE04.50.137.00"),
    _f("received_at", TS, "Specimen received (接收日期)", "DE04.50.141.00"),
    _f("tested_at", TS, "Test performed (检验日期)", "DE04.50.140.00"),
    _f("item_code_local", S, "The member's own item code (本地检验项目代码)", "DE04.30.019.00", required=True),
    _f("item_name_local", S, "The member's own item name"),
    _f("item_code_standard", S, "Standard item code (LOINC) after harmonisation"),
    _f("recognised_item_code", S, "The county's recognised-item (互认项目) code, when the item is on the list"),
    _f("category", S, "Test category (检验类别)", "DE04.30.018.00"),
    _f("method", S, "Test method (检验方法)", "DE02.10.027.00"),
    _f("value_numeric", F, "Quantitative result (定量结果, N..14,4)", "DE04.30.015.00"),
    _f("value_operator", S, "Comparator of a censored value: '<', '>', '<=', '>=' (as in '<0.1')"),
    _f("value_text", S, "Qualitative or raw result text (阴性, +, 弱阳性, '<0.1')"),
    _f("unit", S, "Unit as reported (计量单位)", "DE04.30.016.00"),
    _f("result_code", S, "Result code (检验结果代码)", "DE04.30.017.00"),
    _f("reference_range", S, "Reference range as printed (参考值范围)"),
    _f("abnormal_flag", S, "Abnormal flag (异常提示)", code_set="abnormal_flag"),
    _f("result_status", S, "preliminary / final / corrected / cancelled", required=True, code_set="result_status"),
    _f("instrument", S, "Analyser (检验仪器)"),
]

EXAM_REPORT = _PERSON_REF + [
    _f("report_number", S, "Exam report number (检查报告单号)", "DE01.00.018.00", required=True),
    _f("report_at", TS, "Report time (报告日期)", "DE04.50.133.00", required=True),
    _f("exam_at", TS, "Exam performed (检查日期)"),
    _f("request_number", S, "Request/order number (申请单号)", "DE01.00.008.00"),
    _f("encounter_source_record_id", S, "The encounter in the same source, when known"),
    _f("outpatient_number", S, "Outpatient number (门诊号)", "DE01.00.010.00"),
    _f("inpatient_number", S, "Inpatient number (住院号)", "DE01.00.014.00"),
    _f("exam_category", S, "CT / MR / DR / US / ECG / NM / PATH", required=True, code_set="exam_category"),
    _f("procedure_code_local", S, "The member's own exam item code"),
    _f("procedure_code", S, "Procedure code (检查项目代码)", "DE06.00.093.00"),
    _f("procedure_name", S, "Procedure name (检查项目名称)"),
    _f("recognised_item_code", S, "The county's recognised-item (互认项目) code, when on the list"),
    _f("body_site", S, "Body site (检查部位)", "DE06.00.186.00"),
    _f("findings", S, "Objective findings (检查客观所见)", "DE04.50.131.00"),
    _f("impression", S, "Impression (检查主观提示); never part of what is recognised", "DE04.50.132.00"),
    _f("result_status", S, "preliminary / final / corrected / cancelled", required=True, code_set="result_status"),
    _f("device", S, "Modality device (检查设备)"),
    _f("study_uid", S, "DICOM Study Instance UID, when images exist"),
]

CHRONIC_FOLLOWUP = _PERSON_REF + [
    _f("health_record_number", S, "Health-record number (健康档案编号)", "DE01.00.009.00"),
    _f("condition", S, "hypertension / diabetes", required=True, code_set="chronic_condition"),
    _f("visit_date", D, "Follow-up date (随访日期)", "DE06.00.210.00", required=True),
    _f("visit_mode", S, "Follow-up mode (随访方式)", "DE06.00.207.00", code_set="followup_mode"),
    _f("symptoms", S, "Symptoms (症状), free text or codes"),
    _f("sbp", I, "Systolic blood pressure, mmHg (收缩压)", "DE04.10.174.00"),
    _f("dbp", I, "Diastolic blood pressure, mmHg (舒张压)", "DE04.10.176.00"),
    _f("weight_kg", F, "Body weight, kg (体重)", "DE04.10.188.00"),
    _f("bmi", F, "Body-mass index (体质指数)", "DE04.10.169.00"),
    _f("heart_rate", I, "Heart rate, /min (心率)", "DE04.10.206.00"),
    _f("smoking_per_day", I, "Cigarettes per day (日吸烟量)"),
    _f("drinking_per_day", F, "Alcohol per day, liang (日饮酒量)"),
    _f("exercise_per_week", I, "Exercise sessions per week (运动频率)"),
    _f("salt_intake", S, "Salt intake (摄盐情况)", code_set="salt_intake"),
    _f("adherence", S, "Medication adherence (服药依从性)", code_set="adherence"),
    _f("adverse_reaction", B, "Adverse drug reaction (药物不良反应)"),
    _f("classification", S, "Classification of this follow-up (此次随访分类)", code_set="followup_classification"),
    _f("referral", B, "Referred (转诊)"),
    _f("next_visit_date", D, "Next follow-up date (下次随访日期)"),
    _f("fasting_glucose", F, "Fasting plasma glucose, in glucose_unit (空腹血糖)", "DE04.50.102.00"),
    _f("postprandial_glucose", F, "Post-meal glucose, in glucose_unit (餐后血糖)"),
    _f("glucose_unit", S, "mmol/L or mg/dL", code_set="glucose_unit"),
    _f("hba1c", F, "Glycated haemoglobin, % (糖化血红蛋白)", "DE04.50.149.00"),
    _f("hypoglycaemia", B, "Hypoglycaemic reaction (低血糖反应)"),
    _f("foot_pulse", S, "Dorsalis pedis pulse (足背动脉搏动)"),
    _f("doctor_name", S, "Follow-up doctor (随访医生)"),
]

CONTRACT = _PERSON_REF + [
    _f("contract_number", S, "Contract number (签约协议编号)", required=True),
    _f("event", S, "sign / renew / terminate: the event that produced this row"),
    _f("team_code", S, "Family-doctor team (家庭医生团队)", required=True),
    _f("doctor_name", S, "Contracted doctor (签约医生)"),
    _f("package_type", S, "Service package (服务包)", required=True, code_set="contract_package"),
    _f("sign_date", D, "Signing date (签约日期)", required=True),
    _f("begin_date", D, "Term begins (协议生效日期)", required=True),
    _f("end_date", D, "Term ends (协议终止日期)", required=True),
    _f("status", S, "signed / to_renew / terminated", required=True, code_set="contract_status"),
    _f("termination_date", D, "Termination date (解约日期); present iff a reason is"),
    _f("termination_reason", S, "Termination reason (解约原因)", code_set="contract_termination_reason"),
    # finds a resident's overlapping contracts without keeping their ID number in the contract table
    _f("resident_key", S, "Keyed hash of the resident's ID number and birth date as the contract records them "
                          "(transform resident_key_hash)"),
]

_DATASETS: dict[str, list[Field]] = {
    "facility": FACILITY,
    "person": PERSON,
    "encounter": ENCOUNTER,
    "lab_result": LAB_RESULT,
    "exam_report": EXAM_REPORT,
    "chronic_followup": CHRONIC_FOLLOWUP,
    "contract": CONTRACT,
}

DATASET_DOCS = {
    "facility": "A member of the county medical community (医共体成员单位)",
    "person": "One source system's patient record (患者基本信息, WS 445); the EMPI decides the resident",
    "encounter": "An outpatient or inpatient visit with its diagnoses (门急诊/住院就诊记录)",
    "lab_result": "One lab test result (检验记录, WS 445.4), one row per item",
    "exam_report": "One exam report: imaging, ECG, pathology (检查记录, WS 445.4)",
    "chronic_followup": "A hypertension or diabetes follow-up (高血压/糖尿病患者随访, 基本公共卫生)",
    "contract": "A family-doctor contract event (家庭医生签约)",
}

DATASET_NAMES: tuple[str, ...] = tuple(_DATASETS)


def fields(dataset: str) -> list[Field]:
    """Lineage fields followed by the dataset's own fields."""
    try:
        return LINEAGE + _DATASETS[dataset]
    except KeyError:
        raise KeyError(f"unknown dataset {dataset!r}; known: {', '.join(DATASET_NAMES)}") from None


def schema(dataset: str) -> pa.Schema:
    """The Arrow schema of a canonical dataset."""
    return pa.schema([f.to_arrow() for f in fields(dataset)], metadata={"dataset": dataset, "doc": DATASET_DOCS[dataset]})


def required_fields(dataset: str) -> list[str]:
    return [f.name for f in fields(dataset) if f.required]


def conform(dataset: str, table: pa.Table | pa.RecordBatch) -> pa.Table:
    """Return ``table`` with exactly the dataset's columns, in order and types; missing columns become null.

    Raises ``ValueError`` naming the columns that are not part of the dataset, so a mapping typo fails loudly.
    """
    target = schema(dataset)
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    extra = [n for n in table.column_names if target.get_field_index(n) < 0]
    if extra:
        raise ValueError(f"columns not in dataset {dataset!r}: {', '.join(extra)}")
    cols = []
    for field in target:
        if field.name in table.column_names:
            col = table.column(field.name)
            if col.type != field.type:
                col = col.cast(field.type)
            cols.append(col)
        else:
            cols.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(cols, schema=target)
