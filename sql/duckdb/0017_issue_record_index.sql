-- 0017: quarantine and findings are idempotent (pipeline._drop_relanded_issues). PostgreSQL gets an index on the
-- record's key for that look-up; DuckDB's hash join needs none (an ART index would only slow each night's insert).
SELECT 1;
