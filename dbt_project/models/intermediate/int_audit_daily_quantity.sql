{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'patient_key']},
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['patient_key', 'rule_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_findings_delete_touched(['daily_quantity'], ['hospital_code', 'patient_key', 'rule_id', 'charge_date'], []) }}"
) }}

-- Smart audit R15 限定频次 (daily_quantity): per hospital, patient, rule and charge date, net = the
-- sum of the matching lines' quantities (refunds net out); net > max_quantity gives one finding on
-- the day's last matching line with quantity > 0 (greatest charged_at, then fee_line_id):
-- flagged_quantity = net - max_quantity, flagged_amount = round(that x the line's unit_price, 2).
--
-- Incremental: re-derives the groups (hospital_code, patient_key, rule_id, charge_date) touched by matches written since this
-- table was (macros/audit.sql).

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_findings_everything(wm, []) %}

with

matches as (

    select *
    from {{ ref('int_audit_rule_matches') }}
    where rule_type = 'daily_quantity'
      and {{ audit_touched_filter(wm, everything, ['daily_quantity'], ['hospital_code', 'patient_key', 'rule_id', 'charge_date']) }}
      and patient_key is not null
      and max_quantity is not null

),

days as (

    select
        matches.*,
        sum(quantity) over day_window as net_quantity,
        row_number() over (
            partition by hospital_code, patient_key, rule_id, charge_date, (quantity > 0)
            order by charged_at desc, fee_line_id desc
        ) as last_rank
    from matches
    window day_window as (partition by hospital_code, patient_key, rule_id, charge_date)

),

over_limit as (

    select *, net_quantity - max_quantity as excess_quantity
    from days
    where quantity > 0
      and last_rank = 1
      and net_quantity > max_quantity

)

select
    {{ audit_fee_line_finding_columns(
        'over_limit',
        flagged_quantity='over_limit.excess_quantity',
        flagged_amount='round(over_limit.excess_quantity * over_limit.unit_price, 2)') }},
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from over_limit
