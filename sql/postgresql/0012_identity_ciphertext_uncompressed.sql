-- 0012: the identity tables keep ciphertext as it is (as 0012 on DuckDB, where compressing it at every night's
-- checkpoint cost 0.3 s for 6 per cent). identity_record.id_sealed and golden_person's id_number and phone are random
-- bytes in base64; PostgreSQL only ever compresses values of about 2 kB and more, which these are not — EXTERNAL
-- says so (out of line if ever that long, never compressed).
ALTER TABLE identity_record ALTER COLUMN id_sealed SET STORAGE EXTERNAL;
ALTER TABLE golden_person ALTER COLUMN id_number SET STORAGE EXTERNAL;
ALTER TABLE golden_person ALTER COLUMN phone SET STORAGE EXTERNAL;
