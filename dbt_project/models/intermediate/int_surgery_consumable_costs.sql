-- R9 surgery cost (异常使用预警): per surgery, the net charge of high-value consumables
-- (catalog is_high_value; refunds net out), its month (first use) and the principal diagnosis of
-- the visit's effective settlement; compared with the median of all surgeries with the same
-- principal diagnosis in the same month (exact numeric median: the mean of the middle value(s)).
with high_value_lines as (

    select
        usage_lines.hospital_code,
        usage_lines.surgery_id,
        usage_lines.visit_id,
        usage_lines.used_at,
        usage_lines.charge_amount
    from {{ ref('int_usage_priced_against_payment_standard') }} as usage_lines
    inner join {{ ref('stg_consumable_catalog') }} as catalog
        on usage_lines.consumable_code = catalog.consumable_code
    where catalog.is_high_value
      and usage_lines.surgery_id is not null

),

surgeries as (

    select
        hospital_code,
        surgery_id,
        min(visit_id) as visit_id,
        date_trunc('month', min(used_at))::date as period_month,
        sum(charge_amount) as net_charge_amount,
        count(*) as line_count
    from high_value_lines
    group by 1, 2

),

diagnosed as (

    select
        surgeries.*,
        settlements.principal_diagnosis_code
    from surgeries
    inner join {{ ref('int_claims_with_deductions') }} as settlements
        on surgeries.hospital_code = settlements.hospital_code
       and surgeries.visit_id = settlements.visit_id
       and settlements.is_effective_settlement
    where settlements.principal_diagnosis_code is not null
      and surgeries.period_month is not null

),

ranked as (

    select
        *,
        row_number() over (
            partition by principal_diagnosis_code, period_month order by net_charge_amount
        ) as cost_rank,
        count(*) over (partition by principal_diagnosis_code, period_month) as group_size
    from diagnosed

),

medians as (

    select
        principal_diagnosis_code,
        period_month,
        avg(net_charge_amount) as median_charge_amount
    from ranked
    where cost_rank in ((group_size + 1) / 2, (group_size + 2) / 2)
    group by 1, 2

)

select
    -- ids
    ranked.hospital_code,
    ranked.surgery_id,
    ranked.visit_id,
    -- codes
    ranked.principal_diagnosis_code,
    -- dates
    ranked.period_month,
    -- measures
    ranked.line_count::integer as line_count,
    ranked.net_charge_amount::numeric(18, 2) as net_charge_amount,
    ranked.group_size::integer as group_size,
    medians.median_charge_amount::numeric(18, 4) as median_charge_amount,
    (3 * medians.median_charge_amount)::numeric(18, 4) as threshold_amount,
    ranked.group_size >= 5 and ranked.net_charge_amount > 3 * medians.median_charge_amount
        as is_alert
from ranked
inner join medians
    on ranked.principal_diagnosis_code = medians.principal_diagnosis_code
   and ranked.period_month = medians.period_month
