-- 0018 access control (issue 27). Dialect: postgresql.
-- Three group roles (NOLOGIN; login roles are made members of them):
--   countyhealth_pipeline  the nightly load: reads and writes every table
--   countyhealth_reader    the shared-results read API: reads every table (it masks identifiers itself)
--   countyhealth_analyst   a member facility's analyst: reads its own facility's encounters (with their diagnoses)
--                          and everyone's shared results (互认) — nothing else, enforced by grants and row-level security
-- An analyst login belongs to countyhealth_analyst and is tied to its facility in analyst_facility:
--   CREATE ROLE zhangcheng_analyst LOGIN PASSWORD '...' IN ROLE countyhealth_analyst;
--   INSERT INTO analyst_facility (role_name, facility_code) VALUES ('zhangcheng_analyst', 'W350125101');
-- Roles belong to the cluster, so creating them tolerates a database that made them first.
DO $$
DECLARE r TEXT;
BEGIN
    FOREACH r IN ARRAY ARRAY['countyhealth_pipeline', 'countyhealth_reader', 'countyhealth_analyst'] LOOP
        BEGIN
            EXECUTE 'CREATE ROLE ' || quote_ident(r) || ' NOLOGIN';  -- (not format(): the driver would read its placeholders)
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- made by another database of the cluster
        END;
    END LOOP;
END $$;

CREATE TABLE analyst_facility (
    role_name TEXT PRIMARY KEY,                       -- the analyst's login role
    facility_code TEXT NOT NULL                       -- DE08.10.052.00: the member whose patients it may read
);

-- The policy asks which facility the querying role is tied to; the function reads analyst_facility with its
-- owner's rights, so an analyst needs no grant on that table.
CREATE FUNCTION countyhealth_facility_of(who TEXT) RETURNS TEXT
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
    AS $fn$ SELECT facility_code FROM analyst_facility WHERE role_name = who $fn$;
REVOKE ALL ON FUNCTION countyhealth_facility_of(TEXT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION countyhealth_facility_of(TEXT) TO countyhealth_analyst;

GRANT USAGE ON SCHEMA public TO countyhealth_pipeline, countyhealth_reader, countyhealth_analyst;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO countyhealth_pipeline;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO countyhealth_pipeline;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO countyhealth_reader;
-- tables later migrations create get the same grants
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO countyhealth_pipeline;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO countyhealth_pipeline;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO countyhealth_reader;

GRANT SELECT ON encounter, shared_lab_result, shared_exam_report TO countyhealth_analyst;

ALTER TABLE encounter ENABLE ROW LEVEL SECURITY;
CREATE POLICY encounter_pipeline ON encounter TO countyhealth_pipeline USING (true) WITH CHECK (true);
CREATE POLICY encounter_reader ON encounter FOR SELECT TO countyhealth_reader USING (true);
CREATE POLICY encounter_own_facility ON encounter FOR SELECT TO countyhealth_analyst
    USING (facility_code = countyhealth_facility_of(current_user::text));
