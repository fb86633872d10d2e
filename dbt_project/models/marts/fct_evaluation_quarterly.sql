{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
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
-- Incremental: the (hospital, quarter) groups of the settlements re-classified upstream since this
-- table was written (their quarter now and the quarters of their earlier settlement dates), and the
-- same quarters a year later (whose growth compares with them), are aggregated again, each by an
-- index range scan of int_claims_with_deductions (hospital_code, settlement_date); the rest of the
-- table is left as it is. A group left without settlements is written with settlement_count 0 and
-- removed by the post-hook. (count(distinct patient_key) is not additive, so a group is always
-- re-aggregated whole; a night touches the current quarter of each hospital, not the history.)

{%- set wm = incremental_watermark() %}

with

{% if is_incremental() %}

reclassified as (

    select hospital_code, settlement_date, _prior_settlement_dates
    from {{ ref('int_claims_with_deductions') }}
    where _batch_at > '{{ wm.batch_at }}'::timestamptz

),

touched as (

    select hospital_code, date_trunc('quarter', settlement_date)::date as quarter_start
    from reclassified
    where settlement_date is not null

    union

    select reclassified.hospital_code, date_trunc('quarter', prior.day::date)::date
    from reclassified
    cross join lateral jsonb_array_elements_text(reclassified._prior_settlement_dates) as prior (day)

),

rebuilt_groups as (

    select hospital_code, quarter_start from touched
    union
    select hospital_code, (quarter_start + interval '1 year')::date from touched

),

needed_groups as (

    select hospital_code, quarter_start from rebuilt_groups
    union
    select hospital_code, (quarter_start - interval '1 year')::date from rebuilt_groups

),

quarters as (

    -- one aggregate per group in a lateral (never flattened into a join: always an index range
    -- scan per group, whatever the planner guesses of the night's size)
    select needed_groups.hospital_code, needed_groups.quarter_start, totals.*
    from needed_groups
    cross join lateral (
        select
            count(*) as settlement_count,
            count(distinct claims.patient_key) as patient_count,
            count(*) filter (where coalesce(categories.is_inpatient, false)) as inpatient_settlement_count,
            round(avg(claims.total_amount) filter (where coalesce(categories.is_inpatient, false)), 2)
                as avg_inpatient_cost_amount,
            sum(coalesce(claims.account_paid_amount, 0) + coalesce(claims.cash_paid_amount, 0))
                as personal_paid_amount,
            sum(claims.total_amount) as total_amount
        from {{ ref('int_claims_with_deductions') }} as claims
        left join {{ ref('code_medical_categories') }} as categories
            on claims.medical_category_code = categories.medical_category_code
        where claims.hospital_code = needed_groups.hospital_code
          and claims.settlement_date >= needed_groups.quarter_start
          and claims.settlement_date < (needed_groups.quarter_start + interval '3 months')::date
          and not claims.is_reversal
          and not claims.is_reversed
    ) as totals

)

{% else %}

settlements as (

    select
        claims.hospital_code,
        date_trunc('quarter', claims.settlement_date)::date as quarter_start,
        claims.patient_key,
        claims.total_amount,
        coalesce(claims.account_paid_amount, 0) + coalesce(claims.cash_paid_amount, 0)
            as personal_paid_amount,
        coalesce(categories.is_inpatient, false) as is_inpatient
    from {{ ref('int_claims_with_deductions') }} as claims
    left join {{ ref('code_medical_categories') }} as categories
        on claims.medical_category_code = categories.medical_category_code
    where not claims.is_reversal
      and not claims.is_reversed
      and claims.settlement_date is not null

),

quarters as (

    select
        hospital_code,
        quarter_start,
        count(*) as settlement_count,
        count(distinct patient_key) as patient_count,
        count(*) filter (where is_inpatient) as inpatient_settlement_count,
        round(avg(total_amount) filter (where is_inpatient), 2) as avg_inpatient_cost_amount,
        sum(personal_paid_amount) as personal_paid_amount,
        sum(total_amount) as total_amount
    from settlements
    group by 1, 2

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
from quarters as current_quarter
left join quarters as previous_year
    on current_quarter.hospital_code = previous_year.hospital_code
   and current_quarter.quarter_start - interval '1 year' = previous_year.quarter_start
{% if is_incremental() %}
where (current_quarter.hospital_code, current_quarter.quarter_start) in (
    select hospital_code, quarter_start from rebuilt_groups
)
{% endif %}
