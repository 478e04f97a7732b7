-- 基层诊疗率 (基层医疗卫生机构诊疗量占比): outpatient and emergency visits at township health centres and
-- village clinics / all outpatient and emergency visits at members, per calendar month.
--   county:   all visits in the county;
--   township: visits by the residents whose health record is kept in that township (wherever they went);
--   facility: the facility's visits / the county's visits (the primary-care facilities' rows add up to the
--             county rate).

CREATE TEMP TABLE ind_visit AS
SELECT m.month_start, e.facility_code, f.level, h.township_code AS home_township,
       CASE WHEN f.level IN ('township', 'village') THEN 1 ELSE 0 END AS primary_care
FROM encounter e
JOIN ind_month m ON CAST(e.start_at AS DATE) BETWEEN m.month_start AND m.month_end
LEFT JOIN ind_facility f ON f.facility_code = e.facility_code
LEFT JOIN person_link pl ON pl.source_id = e.source_id AND pl.source_record_id = e.person_source_record_id
LEFT JOIN ind_home h ON h.person_id = pl.person_id
WHERE e.encounter_type IN ('outpatient', 'emergency');

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT 'primary_care_visit_share', month_start, 'county', '*', NULL, NULL, NULL, '', sum(primary_care), count(*), :now
FROM ind_visit GROUP BY month_start;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT 'primary_care_visit_share', v.month_start, 'township', v.home_township, f.name, f.level, v.home_township, '',
       sum(v.primary_care), count(*), :now
FROM ind_visit v LEFT JOIN ind_facility f ON f.facility_code = v.home_township
WHERE v.home_township IS NOT NULL
GROUP BY v.month_start, v.home_township, f.name, f.level;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT 'primary_care_visit_share', v.month_start, 'facility', v.facility_code, f.name, f.level, f.township_code, '',
       v.visits, t.visits, :now
FROM (SELECT month_start, facility_code, count(*) AS visits FROM ind_visit
      WHERE facility_code IS NOT NULL GROUP BY month_start, facility_code) v
JOIN (SELECT month_start, count(*) AS visits FROM ind_visit GROUP BY month_start) t ON t.month_start = v.month_start
LEFT JOIN ind_facility f ON f.facility_code = v.facility_code;
