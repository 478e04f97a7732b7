-- 0019 held batches (issue 27). Dialect: postgresql.
-- A held batch whose window a later batch of its stream read again and loaded is 'superseded': this names that
-- batch, so `batches release` can refuse it by the record rather than by reading the audit message.
ALTER TABLE batch_audit ADD COLUMN superseded_by VARCHAR;
