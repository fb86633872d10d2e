-- 结算记录的全部版本 (keys only): every delivered version of each settlement, not only the latest,
-- with its visit. The incremental R9 surgery costs look up the versions of the re-sent settlements
-- re-derived tonight (one probe of raw.claim's natural-key index each) to find the visit a
-- settlement was on before: a surgery of that visit may have lost its principal diagnosis.
-- No patient column.
select
    -- ids
    hospital_code,
    settlement_id,
    visit_id,
    -- lineage
    business_date,
    load_id
from {{ source('raw', 'claim') }}
where hospital_code is not null
  and settlement_id is not null
