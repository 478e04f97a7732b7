-- 0015 connectors (issue 26). Dialect: duckdb.
-- A batch's loaded rows split into those written (inserted or changed) and those re-read unchanged (the watermark's
-- overlap, a lookback, a reconciliation's re-read, a replay): rows_loaded = rows_written + rows_unchanged, so a
-- night's "loaded" figure says what changed. Batches loaded before this migration keep NULL in both.
ALTER TABLE batch_audit ADD COLUMN rows_written BIGINT;
ALTER TABLE batch_audit ADD COLUMN rows_unchanged BIGINT;
-- When a stream last read deeper than its overlap (cursor.lookback): the source's local time of that read's window end.
ALTER TABLE watermark ADD COLUMN lookback_at TIMESTAMP;
