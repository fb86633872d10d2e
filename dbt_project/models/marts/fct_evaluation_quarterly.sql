{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'quarter_start'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'quarter_start'], 'unique': true},
        {'columns': ['_batch_at']},
    ],
    post_hook="delete from {{ this }} where settlement_count = 0"
) }}

-- R10 evaluation indicators (考核指标) per hospital and quarter of settlement date, over
-- settlements that are neither reversals nor reversed. avg_inpatient_cost = average
-- total_amount of inpatient settlements (categories 21-24, 28, 52), 0.01 half-up; its growth on
-- the same quarter of the previous year from the two rounded averages (null without one);
-- visits_per_patient (人次人头比) = settlements / distinct patients; personal_burden_ratio =
-- sum(account_paid + cash_paid) / sum(total_amount). One row per hospital and quarter with
-- settlements.
--
-- The additive parts (and the distinct patients, kept by difference) come from
-- int_evaluation_quarter_totals. Incremental: the quarters rewritten there since this table was
-- written (its _batch_at) and the same quarters a year later (whose growth compares with them) are
-- read again, one index probe each; the rest of the table is left as it is. A quarter left without
-- settlements is written with settlement_count 0 and removed by the post-hook. A night costs the
-- quarters it touches (at most one row per hospital and quarter), whatever the history.

{%- set wm = incremental_watermark() %}

with

totals as (

    select
        hospital_code,
        quarter_start,
        settlement_count,
        patient_count,
        inpatient_settlement_count,
        case
            when inpatient_amount_count > 0
                then round(inpatient_total_amount / inpatient_amount_count::numeric, 2)
        end as avg_inpatient_cost_amount,
        personal_paid_amount,
        case when amount_count > 0 then total_amount end as total_amount,
        _batch_at
    from {{ ref('int_evaluation_quarter_totals') }}

),

{% if is_incremental() %}

rebuilt_groups as (

    select hospital_code, quarter_start
    from totals
    where _batch_at > '{{ wm.batch_at }}'::timestamptz

    union

    select hospital_code, (quarter_start + interval '1 year')::date
    from totals
    where _batch_at > '{{ wm.batch_at }}'::timestamptz

),

current_groups as (

    select totals.*
    from rebuilt_groups
    inner join totals
        on rebuilt_groups.hospital_code = totals.hospital_code
       and rebuilt_groups.quarter_start = totals.quarter_start

)

{% else %}

current_groups as (

    select * from totals

)

{% endif %}

select
    -- ids
    current_quarter.hospital_code,
    current_quarter.quarter_start,
    -- amounts
    current_quarter.avg_inpatient_cost_amount::numeric(18, 2) as avg_inpatient_cost_amount,
    previous_year.avg_inpatient_cost_amount::numeric(18, 2) as prev_year_avg_inpatient_cost_amount,
    current_quarter.total_amount::numeric(18, 2) as total_amount,
    current_quarter.personal_paid_amount::numeric(18, 2) as personal_paid_amount,
    -- rates
    case
        when previous_year.avg_inpatient_cost_amount <> 0
            then round(
                (current_quarter.avg_inpatient_cost_amount - previous_year.avg_inpatient_cost_amount)
                / previous_year.avg_inpatient_cost_amount,
                4
            )
    end::numeric(9, 4) as avg_inpatient_cost_growth,
    case
        when current_quarter.patient_count > 0
            then round(current_quarter.settlement_count::numeric / current_quarter.patient_count, 4)
    end::numeric(9, 4) as visits_per_patient,
    case
        when current_quarter.total_amount <> 0
            then round(current_quarter.personal_paid_amount / current_quarter.total_amount, 4)
    end::numeric(9, 4) as personal_burden_ratio,
    -- counts
    current_quarter.settlement_count::integer as settlement_count,
    current_quarter.patient_count::integer as patient_count,
    current_quarter.inpatient_settlement_count::integer as inpatient_settlement_count,
    -- lineage
    {{ as_of_date() }} as _through_as_of,
    now() as _batch_at
from current_groups as current_quarter
left join totals as previous_year
    on current_quarter.hospital_code = previous_year.hospital_code
   and (current_quarter.quarter_start - interval '1 year')::date = previous_year.quarter_start
   and previous_year.settlement_count > 0
