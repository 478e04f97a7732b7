-- 0008: the house number as a blocking key with the birth date, and the household with the name
-- (identity.model.BLOCKING_RULES): an ID and a birth date mistyped still leave the house and the name. The
-- incremental run finds candidates by them as by the other keys.
ALTER TABLE identity_record ADD COLUMN house_number TEXT;
-- the name's words in any order: with a place key, a block for names written family name first
ALTER TABLE identity_record ADD COLUMN name_words TEXT;
CREATE INDEX ix_identity_record_house ON identity_record (birth_date, house_number);
CREATE INDEX ix_identity_record_name_house ON identity_record (name_pinyin, household_key);
