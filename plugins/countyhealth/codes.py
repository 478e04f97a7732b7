"""Code sets (值域代码) used across the pipeline, in one place.

Each is a plain ``dict`` code → Chinese name so validation (value sets), standardisation (local → standard
value maps) and reports (labels) share the same source of truth. Sources: GB/T 2261.1, WS 364 (CV codes),
国家基本公共卫生服务规范 (3rd ed.) for follow-ups, and DOMAIN.md for family-doctor contracts.
"""

from __future__ import annotations

# GB/T 2261.1-2003 人的性别代码
SEX = {"0": "未知的性别", "1": "男性", "2": "女性", "9": "未说明的性别"}

# CV02.01.101 身份证件类别代码
ID_TYPE = {
    "01": "居民身份证",
    "02": "居民户口簿",
    "03": "护照",
    "04": "军官证",
    "05": "驾驶证",
    "06": "港澳居民来往内地通行证",
    "07": "台湾居民来往内地通行证",
    "99": "其他法定有效证件",
}

# Facility levels in a county medical community (县域医共体成员)
FACILITY_LEVEL = {"county": "县级医院", "township": "乡镇卫生院", "village": "村卫生室"}

# Encounter types (就诊类型)
ENCOUNTER_TYPE = {"outpatient": "门诊", "inpatient": "住院", "emergency": "急诊", "physical_exam": "体检"}

# Result status of a lab result or exam report: a correction supersedes, never duplicates
RESULT_STATUS = {"preliminary": "初步", "final": "最终", "corrected": "更正", "cancelled": "作废"}

# Abnormal flag of a lab result (异常提示)
ABNORMAL_FLAG = {"N": "正常", "H": "偏高", "L": "偏低", "A": "异常", "HH": "危急偏高", "LL": "危急偏低"}

# Exam categories recognised under 国卫医发〔2022〕6号 (检查: images and data, never the conclusion)
EXAM_CATEGORY = {
    "CT": "计算机断层扫描",
    "MR": "磁共振成像",
    "DR": "数字X线摄影",
    "US": "超声",
    "ECG": "心电图",
    "NM": "核医学",
    "PATH": "病理",
}

# Chronic conditions managed by basic public health (基本公共卫生慢病管理)
CHRONIC_CONDITION = {"hypertension": "高血压", "diabetes": "2型糖尿病"}

# Follow-up mode (随访方式)
FOLLOWUP_MODE = {"1": "门诊", "2": "家庭", "3": "电话"}

# Medication adherence (服药依从性)
ADHERENCE = {"1": "规律", "2": "间断", "3": "不服药"}

# Follow-up classification (此次随访分类)
FOLLOWUP_CLASSIFICATION = {"1": "控制满意", "2": "控制不满意", "3": "不良反应", "4": "并发症"}

# Salt intake (摄盐情况)
SALT_INTAKE = {"1": "轻", "2": "中", "3": "重"}

# Glucose units seen in follow-ups
GLUCOSE_UNIT = {"mmol/L": "毫摩尔每升", "mg/dL": "毫克每分升"}

# Family-doctor contract (家庭医生签约)
CONTRACT_PACKAGE = {"01": "基础包", "02": "诊疗优惠包", "03": "健康管理包"}
CONTRACT_STATUS = {"signed": "已签约", "to_renew": "待续约", "terminated": "已解约"}
CONTRACT_TERMINATION_REASON = {
    "1": "迁出",
    "2": "失联满一年",
    "3": "拒绝服务满一年",
    "4": "居民解约",
    "5": "其他",
}

# 互认 mark carried by recognised results
RECOGNITION_MARK = "HR"

ALL = {
    "sex": SEX,
    "id_type": ID_TYPE,
    "facility_level": FACILITY_LEVEL,
    "encounter_type": ENCOUNTER_TYPE,
    "result_status": RESULT_STATUS,
    "abnormal_flag": ABNORMAL_FLAG,
    "exam_category": EXAM_CATEGORY,
    "chronic_condition": CHRONIC_CONDITION,
    "followup_mode": FOLLOWUP_MODE,
    "adherence": ADHERENCE,
    "followup_classification": FOLLOWUP_CLASSIFICATION,
    "salt_intake": SALT_INTAKE,
    "glucose_unit": GLUCOSE_UNIT,
    "contract_package": CONTRACT_PACKAGE,
    "contract_status": CONTRACT_STATUS,
    "contract_termination_reason": CONTRACT_TERMINATION_REASON,
}
