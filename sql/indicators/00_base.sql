-- Helper tables every indicator joins (temporary: dropped after the refresh). Portable SQL (DuckDB and
-- PostgreSQL); ind_month is filled by countyhealth.indicators before these run.

-- the facility reference: one row per facility code, its level and its township centre
CREATE TEMP TABLE ind_facility AS
SELECT facility_code, name, level,
       CASE WHEN level = 'township' THEN facility_code WHEN level = 'village' THEN parent_code END AS township_code
FROM (SELECT facility_code, min(name) AS name, min(level) AS level, min(parent_code) AS parent_code
      FROM facility WHERE facility_code IS NOT NULL GROUP BY facility_code) f;

-- each resident's health record (健康档案) at a primary-care member: the most recent record with a
-- health-record number at a township centre or village clinic decides the resident's home facility/township
CREATE TEMP TABLE ind_home AS
SELECT person_id, facility_code AS home_facility, township_code
FROM (SELECT pl.person_id, p.facility_code, f.township_code,
             row_number() OVER (PARTITION BY pl.person_id
                                ORDER BY p.source_updated_at DESC NULLS LAST, p.source_id, p.source_record_id) AS rn
      FROM person p
      JOIN person_link pl ON pl.source_id = p.source_id AND pl.source_record_id = p.source_record_id
      JOIN ind_facility f ON f.facility_code = p.facility_code AND f.level IN ('township', 'village')
      WHERE p.health_record_number IS NOT NULL AND p.health_record_number <> '') x
WHERE rn = 1;

-- who has hypertension / diabetes, and since when: a follow-up of the condition (基本公共卫生 management) or a
-- diagnosis in a visit (ICD-10 I10-I15 / E10-E14, primary or further diagnoses)
CREATE TEMP TABLE ind_condition AS
SELECT person_id, condition, min(since) AS since
FROM (SELECT pl.person_id, c.condition, c.visit_date AS since
      FROM chronic_followup c
      JOIN person_link pl ON pl.source_id = c.source_id AND pl.source_record_id = c.person_source_record_id
      WHERE c.condition IN ('hypertension', 'diabetes') AND c.visit_date IS NOT NULL
      UNION ALL
      SELECT pl.person_id, d.condition, CAST(e.start_at AS DATE) AS since
      FROM encounter e
      JOIN person_link pl ON pl.source_id = e.source_id AND pl.source_record_id = e.person_source_record_id
      JOIN ind_dx_code d ON substr(e.diagnosis_code, 1, 3) = d.code
                         OR (';' || replace(e.other_diagnosis_codes, ' ', '')) LIKE '%;' || d.code || '%'
      WHERE e.start_at IS NOT NULL) x
GROUP BY person_id, condition;
