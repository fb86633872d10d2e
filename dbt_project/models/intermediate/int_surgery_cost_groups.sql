{{ config(post_hook='analyze {{ this }}') }}

-- R9 surgery cost groups (异常使用预警): per principal diagnosis and month, the number of surgeries
-- (int_surgery_consumable_costs) and the exact median of their net high-value charge (the mean of
-- the middle value(s), numeric); a surgery alerts above 3 x the median in a group of >= 5
-- (fct_abnormal_use_alerts).
--
-- A full rebuild, cheap at any history (a few hundred rows a year): the sizes come from one scan
-- of the per-surgery table, and each group's middle value(s) from a walk of half the group in
-- the (principal_diagnosis_code, period_month, net_charge_amount) index (`offset`, no sort);
-- 0.3 s on a year-sized table of 450k surgeries (docs/scale-out.md §6, "R9 per surgery").
with counted as (

    select
        principal_diagnosis_code,
        period_month,
        count(*) as group_size
    from {{ ref('int_surgery_consumable_costs') }}
    group by 1, 2

)

select
    -- codes
    counted.principal_diagnosis_code,
    -- dates
    counted.period_month,
    -- measures
    counted.group_size::integer as group_size,
    middle.median_charge_amount::numeric(18, 4) as median_charge_amount,
    (3 * middle.median_charge_amount)::numeric(18, 4) as threshold_amount
from counted
cross join lateral (
    -- the middle value (odd size) or the two middle values (even size)
    select avg(ordered.net_charge_amount) as median_charge_amount
    from (
        select surgeries.net_charge_amount
        from {{ ref('int_surgery_consumable_costs') }} as surgeries
        where surgeries.principal_diagnosis_code = counted.principal_diagnosis_code
          and surgeries.period_month = counted.period_month
        order by surgeries.net_charge_amount
        offset (counted.group_size - 1) / 2
        limit 2 - counted.group_size % 2
    ) as ordered
) as middle
