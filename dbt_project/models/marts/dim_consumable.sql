-- 医保医用耗材 dimension: the latest consumable catalog, with the code's segments and whether the
-- code is a selected product of a VBP batch.
with selected as (

    select
        consumable_code,
        string_agg(distinct batch_id, ',' order by batch_id) as vbp_batch_ids,
        min(selected_price)::numeric(18, 4) as min_selected_price
    from {{ ref('stg_vbp_products') }}
    group by 1

)

select
    -- ids
    catalog.consumable_code,
    -- codes (segments of the national code: C, 分类 2+2+2, 通用名 3, 材质 2, 特征 3, 生产企业 5)
    catalog.category_code,
    left(catalog.consumable_code, 7) as category_segment,
    substr(catalog.consumable_code, 16, 5) as brand_code,
    case when length(catalog.consumable_code) = 27 then left(catalog.consumable_code, 20) end
        as base_consumable_code,
    -- descriptions
    catalog.generic_name,
    catalog.catalog_status,
    -- flags
    coalesce(catalog.is_high_value, false) as is_high_value,
    selected.consumable_code is not null as is_vbp_selected,
    selected.vbp_batch_ids,
    selected.min_selected_price
from {{ ref('stg_consumable_catalog') }} as catalog
left join selected
    on catalog.consumable_code = selected.consumable_code
