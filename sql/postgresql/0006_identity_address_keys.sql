-- 0006: blocking keys for addresses written in words (not Chinese): the first two words (number and street) and
-- the last two (postcode and region). Empty for Chinese addresses; the incremental run finds candidates by them
-- as it does by the other blocking keys (identity.model.BLOCKING_RULES).
ALTER TABLE identity_record ADD COLUMN address_head TEXT;
ALTER TABLE identity_record ADD COLUMN address_tail TEXT;
