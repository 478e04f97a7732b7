-- 0017: quarantine and findings are idempotent — a row landed again whose record already carries the same rule
-- and value from an earlier batch is not recorded twice (pipeline._drop_relanded_issues looks records up here).
CREATE INDEX IF NOT EXISTS ix_quarantine_record ON quarantine (source_id, dataset, source_record_id, rule_id);
CREATE INDEX IF NOT EXISTS ix_finding_record ON finding (source_id, dataset, source_record_id, rule_id);
