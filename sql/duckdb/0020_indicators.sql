-- 0020 county-community monitoring indicators (紧密型县域医共体监测指标): the price list the 互认 effect is
-- costed with (loaded from config/indicator_prices.csv) and the indicator mart, rebuilt each night by
-- `countyhealth indicators refresh` (the nightly `indicators` task) from sql/indicators/*.sql.
-- One row per indicator × month × scope unit (× item for 互认), numerator and denominator stored beside
-- the rate. Definitions: docs/indicators.md. Dialect: duckdb.

CREATE TABLE indicator_price (
    item_code VARCHAR NOT NULL PRIMARY KEY,             -- the county's recognised-item code (互认项目代码)
    name VARCHAR,
    price_yuan DOUBLE NOT NULL
);

CREATE TABLE indicator_value (
    indicator VARCHAR NOT NULL,                          -- e.g. primary_care_visit_share (countyhealth.indicators)
    month_start DATE NOT NULL,                           -- the calendar month the value is for
    scope VARCHAR NOT NULL,                              -- county | township | facility
    unit_code VARCHAR NOT NULL,                          -- '*' (county), the township centre's or the facility's code
    unit_name VARCHAR,
    facility_level VARCHAR,                              -- county / township / village (facility reference)
    township_code VARCHAR,                               -- the unit's township centre (facility reference)
    item_code VARCHAR NOT NULL DEFAULT '',               -- 互认 item, termination reason; '' for all
    numerator DOUBLE NOT NULL,
    denominator DOUBLE,                                  -- NULL for plain counts
    rate DOUBLE,                                         -- numerator / denominator (NULL when denominator is 0 or NULL)
    amount_yuan DOUBLE,                                  -- 互认: cost of the avoidable repeats (priced items only)
    refreshed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (indicator, month_start, scope, unit_code, item_code)
);
