-- 0009: every feature the EMPI compares is kept beside the link, so a night reads its candidates from here and
-- rebuilds (and decrypts) nothing: the address parts the model compares, and the standardised ID sealed
-- (privacy.seal_many: deterministic AES-SIV, for the digit-by-digit levels — one typed wrong, two swapped).
ALTER TABLE identity_record ADD COLUMN township VARCHAR;
ALTER TABLE identity_record ADD COLUMN village VARCHAR;
ALTER TABLE identity_record ADD COLUMN address_text VARCHAR;
ALTER TABLE identity_record ADD COLUMN id_sealed VARCHAR;
-- records linked before this migration lack them: the next identity run places them again from their person
-- rows (their person ids kept, as for any changed record)
UPDATE identity_record SET batch_id = NULL;
