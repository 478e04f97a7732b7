-- 0018 access control (issue 27): roles, grants and row-level security are PostgreSQL's (see
-- sql/postgresql/0018_access_control.sql). An embedded DuckDB file has one user: its access is the file's (0600).
SELECT 1;
