{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['patient_key', 'rule_id']},
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_findings_delete_touched(['repeat_exam'], ['patient_key', 'rule_id'], [], from_date=true) }}"
) }}

-- Smart audit R20 重复检查 (repeat_exam, local rules): per patient and rule, the (charge date,
-- hospital) pairs whose matching lines net > 0, ordered by date then hospital_code; a pair dated
-- <= days after the previous pair is a repeat (互认: the earlier result should have served), cross-
-- hospital when the two hospitals differ. The repeat's matching lines are flagged whole.
--
-- Incremental: re-derives the groups (patient_key, rule_id) touched by matches written since this
-- table was (macros/audit.sql), from the earliest date the night touches each at (from_date): its
-- repeats charged on or after from_date, from its matches charged on or after read_from = from_date
-- less the rule's days (a pair's previous pair further back is more than days before it: no
-- repeat either way). The pairs are found from the columns the matches' partial (patient_key,
-- rule_id, charge_date) index includes (hospital_code, quantity, days), so that a history group's
-- probe reads no heap page; only the lines of the repeats are then read whole, one probe per
-- repeat (docs/scale-out.md §7.24). A full build does the same over every repeat_exam match.

-- depends_on: {{ ref('stg_audit_rules') }} (the rules' days, in the pre-hook)
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_findings_everything(wm, []) %}

with

matches as (

    -- only what the index includes (an index-only scan of a history group)
    select patient_key, rule_id, charge_date, hospital_code, quantity, days
    from ({{ audit_window_group_matches(everything, 'repeat_exam') }}) as group_matches
    where patient_key is not null
      and days is not null

),

pairs as (

    select
        patient_key,
        rule_id,
        charge_date,
        hospital_code,
        max(days) as days,
        lag(charge_date) over pair_order as previous_date,
        lag(hospital_code) over pair_order as previous_hospital_code
    from matches
    group by patient_key, rule_id, charge_date, hospital_code
    having sum(quantity) > 0
    window pair_order as (partition by patient_key, rule_id order by charge_date, hospital_code)

),

repeats as (

    select pairs.*
    from pairs
    {%- if not everything %}
    -- the pairs before from_date were read as the previous pairs of the later ones only
    inner join pg_temp.{{ this.identifier }}__touched as groups
        on pairs.patient_key = groups.patient_key
       and pairs.rule_id = groups.rule_id
       and pairs.charge_date >= groups.from_date
    {%- endif %}
    where pairs.previous_date is not null
      and pairs.charge_date - pairs.previous_date <= pairs.days

)

select
    {{ audit_fee_line_finding_columns(
        'lines', is_cross_hospital='repeats.hospital_code <> repeats.previous_hospital_code') }},
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from repeats
cross join lateral (
    -- the repeat's lines, whole, through the partial (patient_key, rule_id, charge_date) index
    {{ audit_matches_probe('repeats', ['patient_key', 'rule_id', 'charge_date', 'hospital_code'],
                           ["probed.rule_type = 'repeat_exam'", 'probed.days is not null']) }}
) as lines
