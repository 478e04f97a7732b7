-- 0008: the house number as a blocking key, with the birth date or the name (identity.model.BLOCKING_RULES): a
-- name typed beyond recognition or written family name first, with an ID one digit off, still keeps the house
-- and the birthday. The incremental run finds candidates by it as by the other keys.
ALTER TABLE identity_record ADD COLUMN house_number TEXT;
-- the name's words in any order: with a place key, a block for names written family name first
ALTER TABLE identity_record ADD COLUMN name_words TEXT;
CREATE INDEX ix_identity_record_house ON identity_record (birth_date, house_number);
CREATE INDEX ix_identity_record_name_house ON identity_record (name_pinyin, house_number);
