-- 高值耗材使用明细的全部版本 (keys only): every delivered version of each usage line, not only the
-- latest, with the keys R9 groups by. An incremental R9 model looks up the versions of the lines
-- re-priced tonight (one probe of raw.usage's natural-key index per line) to find the months and
-- surgeries a corrected line belonged to before: the current version alone does not say where the
-- line was counted. No patient column.
select
    -- ids
    hospital_code,
    usage_id,
    visit_id,
    surgery_id,
    -- codes
    doctor_code,
    -- timestamps
    used_at,
    -- lineage
    business_date,
    load_id
from {{ source('raw', 'usage') }}
where hospital_code is not null
  and usage_id is not null
