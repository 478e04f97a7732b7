-- 互认 effect (检查检验结果互认): avoidable repeats — a lab test or exam done at one member while a result of
-- the same county item for the same resident, from another member, was recognisable (on the list, final, EQA
-- passed / images kept: static_reason IS NULL) and still inside its validity window when the repeat was taken
-- (its sample collected / exam performed; the report time when that is missing), and had been reported by
-- then. Numerator: avoidable repeats; denominator: all final tests of the item at the facility in the month;
-- amount_yuan: the repeats priced with config/indicator_prices.csv (items without a price add nothing).
-- Rows: facility × item, facility (item ''), county × item, county (item '').

CREATE TEMP TABLE ind_test AS
SELECT r.person_id, r.facility_code, r.item_code, COALESCE(r.collected_at, r.report_at) AS taken_at, 'lab' AS kind,
       CASE WHEN EXISTS (
           SELECT 1 FROM shared_lab_result p
           WHERE p.person_id = r.person_id AND p.item_code = r.item_code AND p.facility_code <> r.facility_code
             AND p.static_reason IS NULL AND p.report_at < COALESCE(r.collected_at, r.report_at)
             AND COALESCE(r.collected_at, r.report_at) <= p.valid_until) THEN 1 ELSE 0 END AS is_repeat
FROM shared_lab_result r
WHERE r.item_code IS NOT NULL AND r.is_final AND r.facility_code IS NOT NULL
UNION ALL
SELECT r.person_id, r.facility_code, r.item_code, COALESCE(r.exam_at, r.report_at) AS taken_at, 'exam' AS kind,
       CASE WHEN EXISTS (
           SELECT 1 FROM shared_exam_report p
           WHERE p.person_id = r.person_id AND p.item_code = r.item_code AND p.facility_code <> r.facility_code
             AND p.static_reason IS NULL AND p.report_at < COALESCE(r.exam_at, r.report_at)
             AND COALESCE(r.exam_at, r.report_at) <= p.valid_until) THEN 1 ELSE 0 END AS is_repeat
FROM shared_exam_report r
WHERE r.item_code IS NOT NULL AND r.is_final AND r.facility_code IS NOT NULL;

CREATE TEMP TABLE ind_test_month AS
SELECT m.month_start, t.facility_code, t.item_code, t.is_repeat,
       CASE WHEN t.is_repeat = 1 THEN pr.price_yuan END AS cost
FROM ind_test t
JOIN ind_month m ON CAST(t.taken_at AS DATE) BETWEEN m.month_start AND m.month_end
LEFT JOIN indicator_price pr ON pr.item_code = t.item_code;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, amount_yuan, refreshed_at)
SELECT 'recognition_avoidable_repeats', t.month_start, 'facility', t.facility_code, f.name, f.level, f.township_code,
       t.item_code, sum(t.is_repeat), count(*), COALESCE(sum(t.cost), 0), :now
FROM ind_test_month t LEFT JOIN ind_facility f ON f.facility_code = t.facility_code
GROUP BY t.month_start, t.facility_code, f.name, f.level, f.township_code, t.item_code;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, amount_yuan, refreshed_at)
SELECT 'recognition_avoidable_repeats', t.month_start, 'facility', t.facility_code, f.name, f.level, f.township_code,
       '', sum(t.is_repeat), count(*), COALESCE(sum(t.cost), 0), :now
FROM ind_test_month t LEFT JOIN ind_facility f ON f.facility_code = t.facility_code
GROUP BY t.month_start, t.facility_code, f.name, f.level, f.township_code;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, amount_yuan, refreshed_at)
SELECT 'recognition_avoidable_repeats', month_start, 'county', '*', NULL, NULL, NULL, item_code, sum(is_repeat),
       count(*), COALESCE(sum(cost), 0), :now
FROM ind_test_month GROUP BY month_start, item_code;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, amount_yuan, refreshed_at)
SELECT 'recognition_avoidable_repeats', month_start, 'county', '*', NULL, NULL, NULL, '', sum(is_repeat), count(*),
       COALESCE(sum(cost), 0), :now
FROM ind_test_month GROUP BY month_start;
