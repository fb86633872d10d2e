{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_visits_delete_touched() }}",
    post_hook="{{ partial_index(['hospital_code', 'visit_id', 'rule_type'], 'rule_type in (' ~ audit_window_rule_types() ~ ')') }}"
) }}

-- Smart audit → R6: the fee-line findings that can be deducted (severity violation), one row per
-- line and rule, read by int_claims_with_deductions for the visit's deductible base.
-- R14 and R19 depend on the visit's effective settlement, which int_claims_with_deductions itself
-- determines: they are listed here as candidates (every matching line, with the rule's
-- diagnosis_prefixes) and decided there by the same macro as int_audit_claim_rules. Every other
-- fee-line rule is decided already. Suspicious findings never deduct; R22's subject is a
-- settlement, not a fee line, so it never enters the base.
--
-- Incremental: re-derives the visits whose findings may have changed since this table was written
-- (macro audit_touched_visits: the visits of the night's matches and of their prior keys), and the
-- window rules' rows (R15/R16/R20) of the visits with a violation match in the window groups the
-- night touches (re-walking a group can move a finding to another visit; the other rules decide on
-- the visit's own matches, unchanged there unless the visit is touched directly), reading each
-- finding model through its (hospital_code, visit_id) index; a pre-hook writes those visits to
-- analysed temporary tables and deletes their stored rows (the window rules' rows through a
-- (hospital_code, visit_id, rule_type) index partial to them: 0.3 % of the rows, where the full
-- (hospital_code, visit_id) index read every row of each visit). Every visit when the rule library
-- or the hospital registry changed.

-- depends_on: {{ ref('stg_audit_rules') }}
-- depends_on: {{ ref('stg_hospitals') }}
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_everything_since(wm) %}
{%- set decided = [
    'int_audit_line_rules', 'int_audit_daily_quantity', 'int_audit_min_interval',
    'int_audit_course_days', 'int_audit_included_in', 'int_audit_repeat_exam',
] %}
{%- set window_models = ['int_audit_daily_quantity', 'int_audit_min_interval', 'int_audit_repeat_exam'] %}

with

{% if not everything %}
-- written and analysed by the pre-hook (macro audit_touched_visits_tables)
touched_visits as (

    select hospital_code, visit_id from {{ audit_touched_visits_relation() }}

),

window_rule_visits as (

    select hospital_code, visit_id from {{ audit_touched_visits_relation() }}
    union
    select hospital_code, visit_id from {{ audit_touched_visits_relation(windows=true) }}

),
{% endif %}

lines as (

    {% for model in decided %}
    select
        hospital_code,
        visit_id,
        subject_id as fee_line_id,
        rule_id,
        rule_type,
        null::text as diagnosis_prefixes,
        flagged_amount
    from {{ ref(model) }}
    where severity = 'violation'
      and visit_id is not null
      {% if not everything %}
      and (hospital_code, visit_id) in (
          select hospital_code, visit_id
          from {{ 'window_rule_visits' if model in window_models else 'touched_visits' }}
      )
      {% endif %}

    union all
    {% endfor %}

    select
        hospital_code,
        visit_id,
        fee_line_id,
        rule_id,
        rule_type,
        diagnosis_prefixes,
        amount::numeric(18, 2) as flagged_amount
    from {{ ref('int_audit_rule_matches') }}
    where {{ audit_decided_by_settlement() }}
      and severity = 'violation'
      and visit_id is not null
      {% if not everything %}
      and (hospital_code, visit_id) in (select hospital_code, visit_id from touched_visits)
      {% endif %}

)

select
    lines.*,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from lines
