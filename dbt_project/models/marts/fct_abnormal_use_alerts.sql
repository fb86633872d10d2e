-- R9 abnormal use warnings (异常使用预警), one row per alert.
-- single_brand: a doctor's month in a VBP category where the largest brand has >= 80% of the
--   net quantity and the net quantity is >= 10 (metric = share, threshold = 0.80).
-- surgery_cost: a surgery whose net high-value consumable charge is above 3 x the median of the
--   surgeries with the same principal diagnosis in the same month, in groups of >= 5 surgeries
--   (metric = net charge, threshold = 3 x median): int_surgery_consumable_costs (per surgery)
--   joined to its group in int_surgery_cost_groups (size, median).
with single_brand as (

    select
        'single_brand' as alert_type,
        hospital_code,
        doctor_code as subject_id,
        period_month,
        round(top_brand_share, 4) as metric_value,
        0.80 as threshold_value,
        category_prefix,
        top_brand_code,
        net_quantity,
        cast(null as text) as principal_diagnosis_code,
        cast(null as integer) as group_size
    from {{ ref('int_doctor_brand_shares') }}
    where net_quantity >= 10
      and top_brand_quantity >= 0.80 * net_quantity

),

surgery_cost as (

    -- per group of >= 5, only its surgeries above the threshold: a range of the
    -- (principal_diagnosis_code, period_month, net_charge_amount) index per group
    select
        'surgery_cost' as alert_type,
        surgeries.hospital_code,
        surgeries.surgery_id as subject_id,
        surgeries.period_month,
        surgeries.net_charge_amount as metric_value,
        round(groups.threshold_amount, 4) as threshold_value,
        cast(null as text) as category_prefix,
        cast(null as text) as top_brand_code,
        cast(null as numeric) as net_quantity,
        surgeries.principal_diagnosis_code,
        groups.group_size
    from {{ ref('int_surgery_cost_groups') }} as groups
    inner join {{ ref('int_surgery_consumable_costs') }} as surgeries
        on surgeries.principal_diagnosis_code = groups.principal_diagnosis_code
       and surgeries.period_month = groups.period_month
       and surgeries.net_charge_amount > groups.threshold_amount
    where groups.group_size >= 5

),

alerts as (

    select * from single_brand
    union all
    select * from surgery_cost

)

select
    -- ids
    alert_type
        || ':' || hospital_code
        || ':' || subject_id
        || ':' || to_char(period_month, 'YYYY-MM')
        || coalesce(':' || category_prefix, '') as alert_id,
    alert_type,
    hospital_code,
    subject_id,
    period_month,
    -- measures
    metric_value::numeric(18, 4) as metric_value,
    threshold_value::numeric(18, 4) as threshold_value,
    -- context
    category_prefix,
    top_brand_code,
    net_quantity::numeric(18, 4) as net_quantity,
    principal_diagnosis_code,
    group_size
from alerts
