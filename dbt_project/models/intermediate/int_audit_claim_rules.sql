{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_claim_rules_delete_touched() }}"
) }}

-- Smart audit R14 限住院使用 (inpatient_only) and R19 限适应症 (indication): decisions on the visit's
-- effective settlement (R6's, from int_claims_with_deductions).
-- R14: the effective settlement is outpatient (11, 12, 13, 14, 16, 41, 51).
-- R19: its principal_diagnosis starts with none of diagnosis_prefixes.
-- A visit without an effective settlement yet gives no finding until its claim arrives.
-- Flagged: the whole line. The same decision (macro audit_settlement_condition) feeds the R6 base
-- in int_claims_with_deductions through int_audit_deductible_lines.
--
-- Incremental: re-derives the visits touched since this table was written: the visits of the
-- matches written since (current and prior keys) and the visits whose settlements
-- int_claims_with_deductions re-derived since (a late, corrected or reversed claim). A pre-hook
-- writes them to an analysed temporary table and deletes their stored findings; every visit when
-- the rule library or the registry changed.

-- depends_on: {{ ref('stg_audit_rules') }}
-- depends_on: {{ ref('stg_hospitals') }}
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_everything_since(wm) %}

with

{% if not everything %}
touched_visits as (

    -- written and analysed by the pre-hook (macro audit_touched_visits_tables)
    select hospital_code, visit_id from {{ audit_touched_visits_relation() }}

),
{% endif %}

matches as (

    {% if everything %}
    select *
    from {{ ref('int_audit_rule_matches') }}
    -- the predicate of the partial (hospital_code, visit_id, fee_line_id) index, verbatim
    where {{ audit_decided_by_settlement() }}
      and visit_id is not null
    {% else %}
    -- one probe of the partial index per touched visit (`offset 0`: never a hash join; as a
    -- semi-join the planner read the whole partial index and hashed it, as it did every effective
    -- settlement below: 0.90 s against 0.25 s probed for 59k visits on a 30 M-line city,
    -- docs/scale-out.md §7.22)
    select visit_matches.*
    from touched_visits
    cross join lateral (
        {{ audit_matches_probe('touched_visits', ['hospital_code', 'visit_id'], [audit_decided_by_settlement()]) }}
    ) as visit_matches
    {% endif %}

),

effective_settlements as (

    {% if everything %}
    select hospital_code, visit_id, medical_category_code, principal_diagnosis_code
    from {{ ref('int_claims_with_deductions') }}
    where is_effective_settlement
    {% else %}
    -- one (hospital_code, visit_id) probe per touched visit, not a scan of every settlement
    select settlements.*
    from touched_visits
    cross join lateral (
        select claims.hospital_code, claims.visit_id, claims.medical_category_code, claims.principal_diagnosis_code
        from {{ ref('int_claims_with_deductions') }} as claims
        where claims.hospital_code = touched_visits.hospital_code
          and claims.visit_id = touched_visits.visit_id
          and claims.is_effective_settlement
        offset 0
    ) as settlements
    {% endif %}

)

select
    {{ audit_fee_line_finding_columns('matches') }},
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from matches
inner join effective_settlements
    on matches.hospital_code = effective_settlements.hospital_code
   and matches.visit_id = effective_settlements.visit_id
where {{ audit_settlement_condition(
    'matches.rule_type', 'matches.diagnosis_prefixes',
    'effective_settlements.medical_category_code', 'effective_settlements.principal_diagnosis_code') }}
