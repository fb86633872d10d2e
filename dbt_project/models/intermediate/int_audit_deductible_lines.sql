{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_deductible_lines_diff() }}",
    post_hook=[
        "{{ partial_index(['hospital_code', 'visit_id', 'rule_type'], 'rule_type in (' ~ audit_window_rule_types() ~ ')') }}",
        "{{ audit_deductible_lines_rebuilt() }}",
    ]
) }}

-- Smart audit → R6: the fee-line findings that can be deducted (severity violation), one row per
-- line and rule, read by int_claims_with_deductions for the visit's deductible base.
-- R14 and R19 depend on the visit's effective settlement, which int_claims_with_deductions itself
-- determines: they are listed here as candidates (every matching line, with the rule's
-- diagnosis_prefixes) and decided there by the same macro as int_audit_claim_rules. Every other
-- fee-line rule is decided already. Suspicious findings never deduct; R22's subject is a
-- settlement, not a fee line, so it never enters the base.
--
-- Incremental, by difference: re-derives the visits whose findings may have changed since this
-- table was written (macro audit_touched_visits: the visits of the night's matches and of their
-- prior keys), and the window rules' rows (R15/R16/R20) of the visits with a violation match in
-- the window groups the night touches, charged on or after the earliest date it touches the group
-- at (no finding dated before it can change; re-walking a group can move a finding to another visit;
-- the other rules decide on the visit's own matches, unchanged there unless the visit is touched
-- directly), reading each finding model through its (hospital_code, visit_id) index. The pre-hook
-- (macro audit_deductible_lines_diff) writes those visits and their re-derived rows to analysed
-- temporary tables and deletes only the stored rows that changed or are gone, logging their
-- visits in int_audit_deductible_lines__changes beside this table (the window rules' rows through
-- a (hospital_code, visit_id, rule_type) index partial to them); this query inserts the rows not
-- stored yet. So the rows written since a reader's watermark and the log name exactly the visits
-- whose deductible base changed, which is what int_claims_with_deductions re-derives. Every visit
-- when the rule library or the hospital registry changed.

-- depends_on: {{ ref('stg_audit_rules') }}
-- depends_on: {{ ref('stg_hospitals') }}
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_followers_everything(wm, audit_deductible_lines_followed()) %}

{% if not everything %}
-- the touched visits' rows, re-derived by the pre-hook, less the ones it found stored as they are
-- (a hash anti-join of two analysed temporary tables of the night's size)
select
    lines.*,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from pg_temp.{{ this.identifier }}__lines as lines
where not exists (
    select 1
    from pg_temp.{{ this.identifier }}__stored as stored
    where {{ audit_deductible_same_row('lines', 'stored') }}
)
{% else %}
with

lines as (
    {{ audit_deductible_lines_select(true) }}
)

select
    lines.*,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from lines
{% endif %}
