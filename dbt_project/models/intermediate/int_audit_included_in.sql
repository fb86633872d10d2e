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
-- matches written since this table was (macros/audit.sql), reading the matches of each touched
-- visit once (macro audit_visit_group_matches). By visit, not by visit x rule: a night of 1 M
-- lines touches ~466k groups in ~30k visits, and the pre-hook's delete probed the findings once per
-- group (0.99-1.19 s on a 30 M-line history, 1.4 M buffers, for nothing stored), the model
-- hashed the groups again to keep the touched ones; every group of a touched visit is in the
-- matches read anyway (docs/scale-out.md §7.21).

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_findings_everything(wm, []) %}

with

group_matches as {% if not everything %}materialized {% endif %}(

    {{ audit_visit_group_matches(everything, ['included_in'], by_rule=false) }}

),

b_lines as (

    select *
    from group_matches
    where not coalesce(is_main_item, false)
      and main_item_prefix is not null
      and visit_id is not null

),

a_net as (

    select
        hospital_code,
        visit_id,
        rule_id,
        case when days is not null then charge_date end as charge_date
    from group_matches
    where is_main_item
      and visit_id is not null
    group by 1, 2, 3, 4
    having sum(quantity) > 0

)

select
    {{ audit_fee_line_finding_columns('b_lines') }},
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from b_lines
where exists (
    select 1
    from a_net
    where a_net.hospital_code = b_lines.hospital_code
      and a_net.visit_id = b_lines.visit_id
      and a_net.rule_id = b_lines.rule_id
      and (a_net.charge_date is null or a_net.charge_date = b_lines.charge_date)
)
