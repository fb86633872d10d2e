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
-- table was (macros/audit.sql), one probe per touched visit (macro audit_visit_group_matches)
-- that reads the columns a course is numbered with from int_audit_rule_matches' partial index
-- alone (it includes them); only the lines past their course, a few, are then read whole, by
-- date (docs/scale-out.md §7.23). A full build does the same over every course_days match.

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_findings_everything(wm, []) %}

with

group_lines as (

    select hospital_code, visit_id, rule_id, charge_date, quantity, days
    from ({{ audit_visit_group_matches(everything, ['course_days']) }}) as group_matches
    where visit_id is not null
      and days is not null

),

numbered as (

    select
        hospital_code,
        visit_id,
        rule_id,
        charge_date,
        days,
        charge_date - min(charge_date) filter (where quantity > 0) over (
            partition by hospital_code, visit_id, rule_id
        ) + 1 as course_day
    from group_lines

),

days_past_course as (

    select distinct hospital_code, visit_id, rule_id, charge_date, course_day
    from numbered
    where course_day > days

)

select
    {{ audit_fee_line_finding_columns('lines') }},
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from days_past_course
cross join lateral (
    -- through the partial (hospital_code, visit_id, rule_id, charge_date) index, its predicate verbatim
    {{ audit_matches_probe('days_past_course', ['hospital_code', 'visit_id', 'rule_id', 'charge_date'],
                           [audit_visit_partial_predicate(), 'probed.days is not null']) }}
) as lines
where days_past_course.course_day > lines.days
