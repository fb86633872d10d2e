{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'insurance_type_code', 'settlement_date'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'insurance_type_code', 'settlement_date'], 'unique': true},
        {'columns': ['_batch_at']},
    ]
) }}

-- R7/R8 daily totals per hospital, insurance type and settlement date: declared
-- (fund_paid - negotiated_drug_amount, reversals included on the day they are settled),
-- negotiated drug amounts and R6 deductions (on the effective settlement's date and type).
--
-- Incremental: recomputes the (hospital, insurance type, date) groups of every settlement
-- re-classified since this table was written, including the groups its earlier versions were in;
-- a group left without settlements stays as a row of zeros so that downstream models see it.

{%- set wm = incremental_watermark() %}

with

{% if is_incremental() %}

changed_groups as (

    select distinct
        changed.hospital_code,
        types.insurance_type_code,
        dates.settlement_date
    from {{ ref('int_claims_with_deductions') }} as changed
    cross join lateral (
        select jsonb_array_elements_text(changed._prior_insurance_type_codes)
        union
        select changed.insurance_type_code
    ) as types (insurance_type_code)
    cross join lateral (
        select jsonb_array_elements_text(changed._prior_settlement_dates)::date
        union
        select changed.settlement_date
    ) as dates (settlement_date)
    where changed._batch_at > '{{ wm.batch_at }}'::timestamptz
      and types.insurance_type_code is not null
      and dates.settlement_date is not null

),

totals as (

    -- one index probe per changed group (an aggregate in a lateral sub-query is never flattened
    -- into a join): with a plain join the planner, expecting 10,000 groups from the set-returning
    -- functions above, merge-joined the whole table's index (O(history)) for ~200 groups
    select
        changed_groups.hospital_code,
        changed_groups.insurance_type_code,
        changed_groups.settlement_date,
        group_totals.*
    from changed_groups
    cross join lateral (
        select
            count(*) as settlement_count,
            count(*) filter (where claims.is_reversal) as reversal_count,
            sum(claims.fund_paid_amount) as fund_paid_amount,
            sum(coalesce(claims.negotiated_drug_amount, 0)) as negotiated_drug_amount,
            sum(claims.declared_amount) as declared_amount,
            sum(claims.deduction_amount) as deduction_amount
        from {{ ref('int_claims_with_deductions') }} as claims
        where claims.hospital_code = changed_groups.hospital_code
          and claims.insurance_type_code = changed_groups.insurance_type_code
          and claims.settlement_date = changed_groups.settlement_date
    ) as group_totals

)

{% else %}

claims as (

    select *
    from {{ ref('int_claims_with_deductions') }}
    where insurance_type_code is not null
      and settlement_date is not null

),

totals as (

    select
        hospital_code,
        insurance_type_code,
        settlement_date,
        count(*) as settlement_count,
        count(*) filter (where is_reversal) as reversal_count,
        sum(fund_paid_amount) as fund_paid_amount,
        sum(coalesce(negotiated_drug_amount, 0)) as negotiated_drug_amount,
        sum(declared_amount) as declared_amount,
        sum(deduction_amount) as deduction_amount
    from claims
    group by 1, 2, 3

)

{% endif %}

select
    -- ids
    hospital_code,
    insurance_type_code,
    settlement_date,
    -- counts
    coalesce(settlement_count, 0)::integer as settlement_count,
    coalesce(reversal_count, 0)::integer as reversal_count,
    -- amounts
    coalesce(fund_paid_amount, 0)::numeric(18, 2) as fund_paid_amount,
    coalesce(negotiated_drug_amount, 0)::numeric(18, 2) as negotiated_drug_amount,
    coalesce(declared_amount, 0)::numeric(18, 2) as declared_amount,
    coalesce(deduction_amount, 0)::numeric(18, 2) as deduction_amount,
    -- lineage
    {{ as_of_date() }} as _through_as_of,
    now() as _batch_at
from totals
