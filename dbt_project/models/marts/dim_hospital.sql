-- 定点医疗机构 dimension: the latest hospital registry.
select
    -- ids
    hospital_code,
    -- descriptions
    hospital_name,
    hospital_level,
    county_code,
    ownership,
    substr(hospital_code, 2, 6) as region_code
from {{ ref('stg_hospitals') }}
