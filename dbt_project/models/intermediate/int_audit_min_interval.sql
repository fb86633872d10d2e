{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['patient_key', 'rule_id']},
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_findings_delete_touched(['min_interval_days'], ['patient_key', 'rule_id'], []) }}"
) }}

-- Smart audit R16 周期超频次 (min_interval_days): per patient and rule across all hospitals, the
-- charge days whose net quantity (sum of the matching lines) is > 0, in date order. The first is
-- payable; a later day is payable when it is >= days after the last payable day, otherwise it is
-- not. Every matching line of a non-payable day is flagged whole.
-- The walk is sequential (whether a day is payable depends on the last payable day), so it is a
-- recursive CTE that advances every (patient, rule) one charge day per step.
--
-- Incremental: re-derives the groups (patient_key, rule_id) touched by matches written since this
-- table was (macros/audit.sql).

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_findings_everything(wm, []) %}

with

matches as (

    select *
    from {{ ref('int_audit_rule_matches') }}
    where rule_type = 'min_interval_days'
      and {{ audit_touched_filter(wm, everything, ['min_interval_days'], ['patient_key', 'rule_id']) }}
      and patient_key is not null
      and days is not null

),

charge_days as materialized (

    select
        patient_key,
        rule_id,
        charge_date,
        max(days) as days,
        row_number() over (partition by patient_key, rule_id order by charge_date) as day_number
    from matches
    group by patient_key, rule_id, charge_date
    having sum(quantity) > 0

),

walked as (

    -- a nested recursive query (a top-level "with recursive" would not take dbt's unit-test
    -- fixtures)
    with recursive
        walk (patient_key, rule_id, day_number, charge_date, last_payable_date, is_payable) as (

            select patient_key, rule_id, day_number, charge_date, charge_date, true
            from charge_days
            where day_number = 1

            union all

            select
                next_day.patient_key,
                next_day.rule_id,
                next_day.day_number,
                next_day.charge_date,
                case
                    when next_day.charge_date >= walk.last_payable_date + next_day.days then next_day.charge_date
                    else walk.last_payable_date
                end,
                next_day.charge_date >= walk.last_payable_date + next_day.days
            from walk
            inner join charge_days as next_day
                on next_day.patient_key = walk.patient_key
               and next_day.rule_id = walk.rule_id
               and next_day.day_number = walk.day_number + 1

        )

    select * from walk

),

not_payable as (

    select patient_key, rule_id, charge_date
    from walked
    where not is_payable

)

select
    {{ audit_fee_line_finding_columns('matches') }},
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from matches
inner join not_payable
    on matches.patient_key = not_payable.patient_key
   and matches.rule_id = not_payable.rule_id
   and matches.charge_date = not_payable.charge_date
