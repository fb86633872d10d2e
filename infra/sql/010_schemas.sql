-- Schemas of the warehouse. Runs in embedded and production modes alike (idempotent).
--   raw           loader output: extracts, reference snapshots, load ledger, quarantine
--   staging       dbt views: latest version of each record, typed and renamed
--   intermediate  dbt business-logic steps
--   marts         what BI tools, reports and outside checks read (docs/marts.md)
--   audit         data-quality results per night, publish log
create schema if not exists raw;
create schema if not exists audit;
