{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_findings_delete_touched(['included_in'], ['hospital_code', 'visit_id'], []) }}"
) }}

-- Smart audit R18 重复收费 (included_in): item_prefix is the included item B, main_item_prefix the
-- main item A. days = 0 (单日): on a visit and charge date where A's matching lines net > 0, every
-- B line of that visit and date is flagged whole; days empty (单次就诊): where A nets > 0 over the
-- visit, every B line of the visit. A's lines match like B's (audited lines, prefix, charge date in
-- the rule's effective dates; int_audit_rule_matches lists them with is_main_item). A days value
-- other than 0 or empty is read as 0 (per day).
--
-- Incremental: re-derives every R18 group of the visits (hospital_code, visit_id) touched by
-- matches written since this table was (macros/audit.sql). By visit, not by visit x rule: a night
-- of 1 M lines touches ~466k groups in ~30k visits, and the pre-hook's delete probed the findings
-- once per group (0.99-1.19 s on a 30 M-line history, 1.4 M buffers, for nothing stored), the
-- model hashed the groups again to keep the touched ones (docs/scale-out.md §7.21). Each touched
-- visit's matches are read by one (hospital_code, visit_id) index probe and its findings derived
-- from them alone, in a lateral join (macro audit_included_in_findings): the visits' matches
-- together were materialised on disk, hashed and sorted (docs/scale-out.md §7.23).

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_findings_everything(wm, []) %}

select
    {{ audit_fee_line_finding_columns('b_lines') }},
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
{%- if everything %}
from (
    {{ audit_included_in_findings(
        "select * from " ~ ref('int_audit_rule_matches') ~ " where rule_type = 'included_in'", true) }}
) as b_lines
{%- else %}
from (
    select distinct hospital_code, visit_id from pg_temp.{{ this.identifier }}__touched
) as touched_visits
cross join lateral (
    {{ audit_included_in_findings(
        audit_matches_probe('touched_visits', ['hospital_code', 'visit_id'], ["probed.rule_type = 'included_in'"]),
        false) }}
) as b_lines
{%- endif %}
