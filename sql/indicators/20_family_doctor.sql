-- 家庭医生签约服务覆盖率: residents with a family-doctor contract in force on the month's last day / residents
-- (those with a health record at a primary-care member, see ind_home), overall and for key populations
-- (重点人群): 65 and over on that day, hypertension, diabetes (known by that day). Scope: the resident's home
-- facility and township, and the county. Plus the month's contract events: new signings, renewals and
-- terminations (by reason) at the signing facility.

-- the terms of every contract: a signing or a renewal (its own begin/end), ended early by a termination
-- of the same contract number on or after the term was signed
CREATE TEMP TABLE ind_term AS
SELECT pl.person_id, c.source_id, c.contract_number, c.sign_date, c.begin_date, c.end_date,
       (SELECT min(t.termination_date) FROM contract t
        WHERE t.source_id = c.source_id AND t.contract_number = c.contract_number
          AND (t.event = 'terminate' OR t.status = 'terminated') AND t.termination_date IS NOT NULL
          AND t.termination_date >= c.sign_date) AS terminated_on
FROM contract c
JOIN person_link pl ON pl.source_id = c.source_id AND pl.source_record_id = c.person_source_record_id
WHERE COALESCE(c.event, 'sign') IN ('sign', 'renew') AND c.status IS DISTINCT FROM 'terminated'
  AND c.sign_date IS NOT NULL AND c.begin_date IS NOT NULL AND c.end_date IS NOT NULL;

CREATE TEMP TABLE ind_signed AS
SELECT DISTINCT m.month_start, t.person_id
FROM ind_term t
JOIN ind_month m ON t.sign_date <= m.month_end AND t.begin_date <= m.month_end AND t.end_date >= m.month_end
WHERE t.terminated_on IS NULL OR t.terminated_on > m.month_end;

-- one row per month × resident × population the resident belongs to that month
CREATE TEMP TABLE ind_population AS
SELECT m.month_start, h.person_id, h.home_facility, h.township_code, p.population,
       CASE WHEN s.person_id IS NOT NULL THEN 1 ELSE 0 END AS signed
FROM ind_month m
CROSS JOIN ind_home h
JOIN (SELECT 'fd_signing_coverage' AS population UNION ALL SELECT 'fd_signing_coverage_elderly'
      UNION ALL SELECT 'fd_signing_coverage_hypertension' UNION ALL SELECT 'fd_signing_coverage_diabetes') p ON TRUE
LEFT JOIN golden_person g ON g.person_id = h.person_id
LEFT JOIN ind_signed s ON s.month_start = m.month_start AND s.person_id = h.person_id
WHERE p.population = 'fd_signing_coverage'
   OR (p.population = 'fd_signing_coverage_elderly' AND g.birth_date <= m.born_by_65)
   OR (p.population = 'fd_signing_coverage_hypertension' AND EXISTS (
         SELECT 1 FROM ind_condition c WHERE c.person_id = h.person_id AND c.condition = 'hypertension'
                                          AND c.since <= m.month_end))
   OR (p.population = 'fd_signing_coverage_diabetes' AND EXISTS (
         SELECT 1 FROM ind_condition c WHERE c.person_id = h.person_id AND c.condition = 'diabetes'
                                          AND c.since <= m.month_end));

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT population, month_start, 'county', '*', NULL, NULL, NULL, '', sum(signed), count(*), :now
FROM ind_population GROUP BY population, month_start;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT p.population, p.month_start, 'township', p.township_code, f.name, f.level, p.township_code, '',
       sum(p.signed), count(*), :now
FROM ind_population p LEFT JOIN ind_facility f ON f.facility_code = p.township_code
WHERE p.township_code IS NOT NULL
GROUP BY p.population, p.month_start, p.township_code, f.name, f.level;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT p.population, p.month_start, 'facility', p.home_facility, f.name, f.level, f.township_code, '',
       sum(p.signed), count(*), :now
FROM ind_population p LEFT JOIN ind_facility f ON f.facility_code = p.home_facility
GROUP BY p.population, p.month_start, p.home_facility, f.name, f.level, f.township_code;

-- the month's contract events, at the signing facility and county-wide (plain counts: no denominator);
-- terminations one row per reason (解约原因, item_code) and one for all ('')
CREATE TEMP TABLE ind_contract_event AS
SELECT m.month_start, c.facility_code,
       CASE WHEN c.event = 'terminate' OR c.status = 'terminated' THEN 'fd_terminations'
            WHEN c.event = 'renew' THEN 'fd_renewals' ELSE 'fd_new_signings' END AS indicator,
       CASE WHEN c.event = 'terminate' OR c.status = 'terminated' THEN COALESCE(c.termination_reason, '?') END AS reason
FROM contract c
JOIN ind_month m ON CASE WHEN c.event = 'terminate' OR c.status = 'terminated' THEN c.termination_date
                         ELSE c.sign_date END BETWEEN m.month_start AND m.month_end;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT e.indicator, e.month_start, 'facility', e.facility_code, f.name, f.level, f.township_code, '', count(*),
       NULL, :now
FROM ind_contract_event e LEFT JOIN ind_facility f ON f.facility_code = e.facility_code
WHERE e.facility_code IS NOT NULL
GROUP BY e.indicator, e.month_start, e.facility_code, f.name, f.level, f.township_code;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT indicator, month_start, 'county', '*', NULL, NULL, NULL, '', count(*), NULL, :now
FROM ind_contract_event GROUP BY indicator, month_start;

INSERT INTO indicator_value (indicator, month_start, scope, unit_code, unit_name, facility_level, township_code,
                             item_code, numerator, denominator, refreshed_at)
SELECT indicator, month_start, 'county', '*', NULL, NULL, NULL, reason, count(*), NULL, :now
FROM ind_contract_event WHERE reason IS NOT NULL GROUP BY indicator, month_start, reason;
