-- Natural-key indexes of the raw extracts, for staging's "latest version" (macros/latest_version.sql):
-- a version is the latest of its (hospital_code, key) when no row of the same key has a greater
-- (business_date, load_id, source_row). With this index a night's incremental build checks each of
-- the night's rows with one index probe (Index Cond on the key and the row comparison) instead of
-- hashing every version ever loaded: the cost follows the night, not the history.
-- Write cost (measured, docs/scale-out.md, benchmarks/raw_index_write_cost.py): COPY into raw runs
-- at ~0.6x the speed without them (+2.3 s for a 60k-row night, +20 s per million rows), a few per
-- cent of an ordinary night's load step; for a first load of a year drop them and let the next
-- bootstrap rebuild them once.
-- Created on the parent table, so the statements also work on a table partitioned by month
-- (PostgreSQL then creates the index on every partition, present and future).
create index if not exists claim_natural_key_idx
    on raw.claim (hospital_code, settlement_id, business_date, load_id, source_row);
create index if not exists usage_natural_key_idx
    on raw.usage (hospital_code, usage_id, business_date, load_id, source_row);
create index if not exists purchase_natural_key_idx
    on raw.purchase (hospital_code, purchase_line_id, business_date, load_id, source_row);
-- The purchase models built by touched groups (dbt macros/purchases.sql) read one hospital's lines
-- of a delivery date and code (int_purchase_reference_prices) or of a month of delivery
-- (fct_platform_purchasing_monthly) through this index, not every purchase line of the history.
-- A year of a city is ~61k purchase lines (~170 a night): its write cost is negligible.
create index if not exists purchase_delivery_idx
    on raw.purchase (hospital_code, delivery_date, consumable_code);
