-- 0003: the contract platform's resident, as a keyed hash of the ID number the export carries (model.CONTRACT
-- resident_key): validation finds a resident's overlapping active contracts without the number itself.
ALTER TABLE contract ADD COLUMN resident_key TEXT;

CREATE INDEX ix_contract_resident_key ON contract (resident_key);
