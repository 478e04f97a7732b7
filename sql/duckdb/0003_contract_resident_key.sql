-- 0003: the contract platform's resident, as a keyed hash of the ID number the export carries (model.CONTRACT
-- resident_key): validation finds a resident's overlapping active contracts without the number itself.
ALTER TABLE contract ADD COLUMN resident_key VARCHAR;
