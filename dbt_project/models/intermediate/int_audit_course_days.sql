{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_findings_delete_touched(['course_days'], ['hospital_code', 'visit_id', 'rule_id'], []) }}"
) }}

-- Smart audit R17 限支付疗程 (course_days): per visit and rule, day k of a matching line = its
-- charge date - the first charge date of a matching line with quantity > 0 in the visit + 1;
-- k > days flags the whole line.
--
-- Incremental: re-derives the groups (hospital_code, visit_id, rule_id) touched by matches written since this
-- table was (macros/audit.sql), one probe per touched visit (macro audit_visit_group_matches).

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_findings_everything(wm, []) %}

with

matches as (

    select *
    from ({{ audit_visit_group_matches(everything, ['course_days']) }}) as group_matches
    where visit_id is not null
      and days is not null

),

numbered as (

    select
        matches.*,
        charge_date - min(charge_date) filter (where quantity > 0) over (
            partition by hospital_code, visit_id, rule_id
        ) + 1 as course_day
    from matches

)

select
    {{ audit_fee_line_finding_columns('numbered') }},
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from numbered
where course_day > days
