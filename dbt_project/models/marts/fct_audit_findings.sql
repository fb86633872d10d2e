{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'subject_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_findings_mart_delete_touched() }}",
    post_hook=[
        "{{ audit_findings_deletions_table(this) }}",
        "{{ partial_index(['patient_key', 'rule_id'], 'rule_type in (' ~ audit_window_rule_types() ~ ')') }}",
        "{{ partial_index(['hospital_code', 'patient_key'], \"rule_type = 'readmission'\") }}",
        "{{ partial_index(['hospital_code', 'visit_id', 'subject_id'], audit_decided_by_settlement()) }}",
        "{{ partial_index(['hospital_code', 'visit_id'], audit_mart_by_visit_types()) }}",
    ]
) }}

-- Smart audit findings (R11-R20, R22): one row per rule x subject (a fee line, or a settlement for
-- R22), with the flagged quantity and amount (docs/marts.md). Severity comes from the rule row:
-- violation findings are deducted through R6 (int_claims_with_deductions), suspicious ones are
-- listed for review and never deducted. R21 is an indicator (fct_exam_positive_rate_monthly).
--
-- Incremental (this schema may lag a night behind), by difference: the pre-hook copies, from the
-- finding models, the findings whose subject may have changed since this table was written, and
-- the stored findings of the same keys, to two analysed temporary tables; it deletes the stored
-- ones the night does not hold as they are, and this query inserts the night's ones not stored as
-- they are (macros audit_findings_mart_keys, audit_findings_mart_delete_touched). The keys: the fee-line findings of every visit of the night's matches and of their prior keys
-- (audit_touched_visits without its window groups), but R11-R13: those by line, the rows
-- int_audit_line_rules wrote since (the lines the night matched) against the stored ones of
-- the lines it re-matched (a late line changes no other line's R11-R13 finding; everything
-- when that model alone was rebuilt since); R14/R19 (int_audit_claim_rules, the only
-- fee-line findings decided on the claim) also of the visits re-settled since, copied as the
-- rows int_audit_claim_rules wrote since (it re-derives exactly those visits); R15/R16/R20
-- by patient x rule, the window groups the night touches, from the earliest date it touches
-- each at (no finding dated before it can change), wherever the visit of their findings
-- (a re-walk can move a finding to another visit: re-copying every finding of every visit
-- holding a match of those groups re-copied 4x the night's findings on a 30 M-line city,
-- docs/scale-out.md §7.5); R22 by hospital x patient and by settlement. Each read goes through an
-- index of the finding model. The pre-hook's delete by patient x rule reads the window rules'
-- findings only, so that index is partial to their rule types (macros/indexes.sql); its R22
-- deletes read the readmission findings (~1 %) through a (hospital_code, patient_key) index partial
-- to them, where they scanned the whole mart; its R14/R19 reads of the re-settled visits read
-- their findings (~6 %) through a (hospital_code, visit_id, subject_id) index partial to them; its
-- reads of the touched visits read their findings but R11-R13 (read by line) through a
-- (hospital_code, visit_id) index partial to them (macro audit_mart_by_visit_types): a full one
-- fetched every R11-R13 finding of a re-opened visit to filter it out, and took a random leaf
-- write for each of the night's R11-R13 findings (~75 % of the findings). Everything when the rule library or the hospital
-- registry changed, or int_audit_line_rules or int_audit_claim_rules alone was rebuilt since. Each delete logs what it deleted, counted by fct_audit_summary_monthly's grain, in
-- the table fct_audit_findings__deletions beside this one (macro audit_findings_delete_logged): the
-- summary follows this table by difference (the night's findings, less the deleted ones).

-- depends_on: {{ ref('int_audit_rule_matches') }}
-- depends_on: {{ ref('int_claims_with_deductions') }}
-- depends_on: {{ ref('stg_audit_rules') }}
-- depends_on: {{ ref('stg_hospitals') }}
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_followers_everything(wm, audit_findings_mart_followed()) %}

{% if not everything %}
-- the touched keys' findings, copied by the pre-hook, less the ones it found stored as they are
-- (a hash anti-join of two analysed temporary tables of the night's size)
select
    night.*,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from pg_temp.fct_audit_findings__night as night
where not exists (
    select 1
    from pg_temp.fct_audit_findings__stored as stored
    where {{ audit_findings_same_row('night', 'stored') }}
)
{% else %}
select
    findings.*,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from ({{ audit_findings_mart_select(true) }}) as findings
{% endif %}
