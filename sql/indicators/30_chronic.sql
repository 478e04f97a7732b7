-- 高血压/2型糖尿病患者规范管理率 and 管理人群血压/血糖控制率 (国家基本公共卫生服务规范 第三版), over the 12
-- months ending with the month (a rolling year: the spec's "年内"):
--   managed (denominator, 年内已管理患者) = residents with at least one follow-up of the condition in the window;
--   规范管理 = at least 4 face-to-face follow-ups (visit_mode 1 门诊 or 2 家庭; not 3 电话) on distinct days;
--   控制 = the last follow-up in the window that measured it: BP < 140/90 mmHg (sbp < 140 and dbp < 90);
--          fasting glucose < 7.0 mmol/L (mg/dL × 0.05551).
-- The patient belongs to the facility of their last follow-up in the window (the managing township centre).

CREATE TEMP TABLE ind_followup AS
SELECT pl.person_id, c.condition, c.visit_date, c.visit_mode, c.facility_code, c.sbp, c.dbp, c.source_record_id,
       CASE WHEN c.glucose_unit = 'mg/dL' THEN c.fasting_glucose * 0.05551 ELSE c.fasting_glucose END AS glucose_mmol
FROM chronic_followup c
JOIN person_link pl ON pl.source_id = c.source_id AND pl.source_record_id = c.person_source_record_id
WHERE c.condition IN ('hypertension', 'diabetes') AND c.visit_date IS NOT NULL;

CREATE TEMP TABLE ind_managed AS
SELECT m.month_start, f.person_id, f.condition,
       count(DISTINCT CASE WHEN f.visit_mode IN ('1', '2') THEN f.visit_date END) AS face_to_face_days
FROM ind_followup f
JOIN ind_month m ON f.visit_date BETWEEN m.year_start AND m.month_end
GROUP BY m.month_start, f.person_id, f.condition;

-- per patient and month: the last follow-up (its facility), the last with a BP, the last with a glucose
CREATE TEMP TABLE ind_last AS
SELECT m.month_start, f.person_id, f.condition, f.facility_code, f.sbp, f.dbp, f.glucose_mmol,
       row_number() OVER (PARTITION BY m.month_start, f.person_id, f.condition
                          ORDER BY f.visit_date DESC, f.source_record_id DESC) AS last_any,
       row_number() OVER (PARTITION BY m.month_start, f.person_id, f.condition
                          ORDER BY CASE WHEN f.sbp IS NOT NULL AND f.dbp IS NOT NULL THEN 0 ELSE 1 END,
                                   f.visit_date DESC, f.source_record_id DESC) AS last_bp,
       row_number() OVER (PARTITION BY m.month_start, f.person_id, f.condition
                          ORDER BY CASE WHEN f.glucose_mmol IS NOT NULL THEN 0 ELSE 1 END,
                                   f.visit_date DESC, f.source_record_id DESC) AS last_glucose
FROM ind_followup f
JOIN ind_month m ON f.visit_date BETWEEN m.year_start AND m.month_end;

CREATE TEMP TABLE ind_patient AS
SELECT g.month_start, g.person_id, g.condition, a.facility_code,
       CASE WHEN g.face_to_face_days >= 4 THEN 1 ELSE 0 END AS standard,
       CASE WHEN g.condition = 'hypertension' AND b.sbp < 140 AND b.dbp < 90 THEN 1
            WHEN g.condition = 'diabetes' AND u.glucose_mmol < 7.0 THEN 1 ELSE 0 END AS controlled
FROM ind_managed g
JOIN ind_last a ON a.month_start = g.month_start AND a.person_id = g.person_id AND a.condition = g.condition
               AND a.last_any = 1
JOIN ind_last b ON b.month_start = g.month_start AND b.person_id = g.person_id AND b.condition = g.condition
               AND b.last_bp = 1
JOIN ind_last u ON u.month_start = g.month_start AND u.person_id = g.person_id AND u.condition = g.condition
               AND u.last_glucose = 1;

CREATE TEMP TABLE ind_chronic AS
SELECT p.month_start, p.facility_code, p.standard AS hit,
       CASE p.condition WHEN 'hypertension' THEN 'htn_standard_management' ELSE 'dm_standard_management' END AS indicator
FROM ind_patient p
UNION ALL
SELECT p.month_start, p.facility_code, p.controlled AS hit,
       CASE p.condition WHEN 'hypertension' THEN 'htn_bp_control' ELSE 'dm_glucose_control' END AS indicator
FROM ind_patient p;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT indicator, month_start, 'county', '*', NULL, NULL, NULL, '', sum(hit), count(*), :now
FROM ind_chronic GROUP BY indicator, month_start;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT c.indicator, c.month_start, 'township', f.township_code, t.name, t.level, f.township_code, '', sum(c.hit),
       count(*), :now
FROM ind_chronic c
JOIN ind_facility f ON f.facility_code = c.facility_code
LEFT JOIN ind_facility t ON t.facility_code = f.township_code
WHERE f.township_code IS NOT NULL
GROUP BY c.indicator, c.month_start, f.township_code, t.name, t.level;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT c.indicator, c.month_start, 'facility', c.facility_code, f.name, f.level, f.township_code, '', sum(c.hit),
       count(*), :now
FROM ind_chronic c LEFT JOIN ind_facility f ON f.facility_code = c.facility_code
WHERE c.facility_code IS NOT NULL
GROUP BY c.indicator, c.month_start, c.facility_code, f.name, f.level, f.township_code;
