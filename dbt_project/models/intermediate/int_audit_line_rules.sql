{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'subject_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_findings_delete_touched(['sex', 'age', 'hospital_level'], ['hospital_code', 'fee_line_id'], ['stg_hospitals']) }}",
    post_hook="{{ drop_index_on(['hospital_code', 'visit_id']) }}"
) }}

-- Smart audit R11 限定性别, R12 限定年龄, R13 限医疗机构级别: decisions on the line alone.
-- R11 sex: patient_sex <> allowed_sex ('M'/'F'; an unknown sex gives no finding).
-- R12 age: patient_age_days < min_age_days or > max_age_days (an empty bound is open; an unknown
--     age gives no finding).
-- R13 hospital_level: rank(hospital level) < rank(min_hospital_level), 基层 1 < 一级 2 < 二级 3 <
--     三级 4 (a hospital or level not in the registry gives no finding).
-- Flagged: the whole line (a refund line is flagged negative and nets out its original).
--
-- Incremental: re-derives the groups (hospital_code, fee_line_id) touched by matches written since this
-- table was (macros/audit.sql), and everything when stg_hospitals changed; the touched lines'
-- matches are read as the rows written since (below). Its followers (the findings mart, the
-- deductible base) read its rows written since (the _batch_at index); its pre-hook deletes by
-- line (the (hospital_code, subject_id) index). Nothing reads it by visit any more: the
-- (hospital_code, visit_id) index of earlier versions is dropped (post-hook), its random leaf
-- writes were a third of the night's insert on a 30 M-line city (docs/scale-out.md §7.27).

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_findings_everything(wm, ['stg_hospitals']) %}

with

matches as (

    select *
    from {{ ref('int_audit_rule_matches') }}
    where rule_type in ('sex', 'age', 'hospital_level')
      {% if not everything %}
      -- the touched groups are lines, and int_audit_rule_matches rewrites every row of a line it
      -- re-matches: the groups' matches are exactly the rows written since this table was (read
      -- through the _batch_at index, the night's end of the heap; no probe per line)
      and _batch_at > '{{ wm.batch_at }}'::timestamptz
      {% endif %}

),

hospitals as (

    select hospital_code, {{ hospital_level_rank('hospital_level') }} as level_rank
    from {{ ref('stg_hospitals') }}

)

select
    {{ audit_fee_line_finding_columns('matches') }},
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from matches
left join hospitals
    on matches.hospital_code = hospitals.hospital_code
where
    (matches.rule_type = 'sex'
        and matches.patient_sex in ('M', 'F')
        and matches.allowed_sex in ('M', 'F')
        and matches.patient_sex <> matches.allowed_sex)
    or (matches.rule_type = 'age'
        and matches.patient_age_days is not null
        and (matches.patient_age_days < matches.min_age_days
             or matches.patient_age_days > matches.max_age_days))
    or (matches.rule_type = 'hospital_level'
        and hospitals.level_rank < {{ hospital_level_rank('matches.min_hospital_level') }})
