-- R4 platform purchasing (阳光采购): per hospital and month of delivery, the amount of purchase
-- lines (latest versions, returns net out) bought off the provincial platform (via_platform = N).
with purchases as (

    select
        hospital_code,
        date_trunc('month', delivery_date)::date as purchase_month,
        amount,
        is_via_platform
    from {{ ref('stg_purchase_lines') }}
    where delivery_date is not null

)

select
    -- ids
    hospital_code,
    purchase_month,
    -- amounts
    sum(amount)::numeric(18, 2) as purchase_amount,
    coalesce(sum(amount) filter (where not is_via_platform), 0)::numeric(18, 2) as off_platform_amount,
    -- counts
    count(*)::integer as purchase_line_count,
    count(*) filter (where not is_via_platform)::integer as off_platform_line_count,
    -- rates
    case
        when sum(amount) <> 0
            then round(coalesce(sum(amount) filter (where not is_via_platform), 0) / sum(amount), 4)
    end::numeric(9, 4) as off_platform_share
from purchases
group by 1, 2
