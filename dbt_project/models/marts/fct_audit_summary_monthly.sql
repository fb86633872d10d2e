{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'month_start', 'rule_type', 'severity'], 'unique': true},
    ],
    pre_hook="{{ audit_summary_merge_night() }}",
    post_hook="{{ audit_summary_empty_deletions() }}"
) }}

-- Smart audit summary: hospital x month of charge date x rule_type x severity, the number of
-- findings and their flagged amount (net: a refund's finding is negative).
--
-- Incremental, by difference: fct_audit_findings is only appended to and deleted from (its
-- pre-hook), and each of its deletes logs the findings it deleted, counted by this grain, in
-- fct_audit_findings__deletions. A night adds, per group, the findings written since this table
-- was, less the deleted ones that this table had counted (written by then: _row_batch_at), to
-- what the group holds (macro audit_summary_merge_night); a group left with no finding goes. A
-- night reads its own findings and deletions, not the mart's history (a full aggregate of 4.7 M
-- findings took 1.8 s a night on a 30 M-line city, and grew with every night kept). When the
-- findings mart was rebuilt since this table was written (a full refresh, or every finding
-- re-derived for a new rule library: no finding is older than this table), everything is
-- counted again.

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}

with

summary as (

    {% if audit_summary_by_difference(wm) %}
    -- the groups the night changed, with what they hold now (macro audit_summary_merge_night)
    select hospital_code, month_start, rule_type, severity, finding_count, flagged_amount
    from pg_temp.{{ this.identifier }}__merged
    where finding_count <> 0
    {% else %}
    select hospital_code, month_start, rule_type, severity,
           count(*) as finding_count, sum(flagged_amount) as flagged_amount
    from {{ ref('fct_audit_findings') }}
    group by hospital_code, month_start, rule_type, severity
    {% endif %}

)

select
    -- ids
    hospital_code,
    -- dates
    month_start,
    -- codes
    rule_type,
    severity,
    -- counts and amounts
    finding_count::bigint as finding_count,
    flagged_amount::numeric(18, 2) as flagged_amount,
    -- lineage
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from summary
