-- 0007: the blocking rule on an ID's first 14 characters (region + birth date) is gone — at 1M records it made
-- two thirds of the pairs to score for a handful of true ones — and with it the keyed hash the incremental run searched
-- candidates by; and month-and-day, since the given-name rule now keys on the whole birth date
-- (identity.model.BLOCKING_RULES).
ALTER TABLE identity_record DROP COLUMN id_prefix_hash;
ALTER TABLE identity_record DROP COLUMN birth_md;
CREATE INDEX ix_identity_record_given ON identity_record (given_pinyin, birth_date);
