{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['hospital_code', 'fee_line_id'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'fee_line_id', 'rule_id', 'is_main_item'], 'unique': true},
        {'columns': ['rule_type']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_matches_delete_changed() }}"
) }}

-- Smart audit, common ground (R11-R21): every audited fee line paired with every rule it matches.
-- Audited lines: the latest versions with item_type <> '31' (consumables are audited from usage by
-- R1, R3, R9). A line matches a rule when its item_code starts with item_prefix and its charge
-- date lies in [effective_from, effective_to] (an empty bound is open). For an included_in rule
-- (R18) a line whose item_code starts with main_item_prefix is matched too, as the main item A
-- (is_main_item), so that R18 never reads the lines themselves.
--
-- The library (15k rules) against tens of millions of lines is an equi-join, never a LIKE nested
-- loop: the few distinct prefix lengths L present in the library are crossed with the lines and
-- (left(item_code, L), L) is hashed against (prefix, length(prefix)).
-- Readmission (R22) rules have no item_prefix and are read by int_audit_readmission.
--
-- Incremental: the lines delivered since this table was written (new, late, re-sent or refund
-- lines) are re-matched: the pre-hook removes their stored matches, the new ones are inserted.
-- Every line is re-matched when the rule library changed (a new load of either rule file).

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set changed = audit_matches_changed_lines(wm) if is_incremental() else none %}

with

lines as (

    select *
    from {{ ref('stg_fee_lines') }}
    where item_type is distinct from '31'
      and item_code is not null
      {% if changed is not none %}and {{ changed }}{% endif %}

),

rules as (

    select rules.*, rules.item_prefix as match_prefix, false as is_main_item
    from {{ ref('stg_audit_rules') }} as rules
    where rules.item_prefix is not null
      and rules.rule_type <> 'readmission'

    union all

    select rules.*, rules.main_item_prefix as match_prefix, true as is_main_item
    from {{ ref('stg_audit_rules') }} as rules
    where rules.main_item_prefix is not null
      and rules.rule_type = 'included_in'

),

prefix_lengths as (

    select distinct length(match_prefix) as prefix_length
    from rules

)

select
    -- line
    lines.hospital_code,
    lines.fee_line_id,
    lines.visit_id,
    lines.patient_key,
    lines.patient_sex,
    lines.patient_age_days,
    lines.item_type,
    lines.item_code,
    lines.item_name,
    lines.charged_at,
    lines.charge_date,
    lines.quantity,
    lines.unit_price,
    lines.amount,
    lines.exam_result,
    -- rule
    rules.rule_id,
    rules.rule_type,
    rules.is_main_item,
    rules.severity,
    rules.item_prefix,
    rules.allowed_sex,
    rules.min_age_days,
    rules.max_age_days,
    rules.min_hospital_level,
    rules.max_quantity,
    rules.days,
    rules.main_item_prefix,
    rules.diagnosis_prefixes,
    rules.exam_class,
    rules.threshold,
    rules.effective_from,
    rules.effective_to,
    -- lineage
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from lines
cross join prefix_lengths
inner join rules
    on rules.match_prefix = left(lines.item_code, prefix_lengths.prefix_length)
   and length(rules.match_prefix) = prefix_lengths.prefix_length
where lines.charge_date >= coalesce(rules.effective_from, date '0001-01-01')
  and lines.charge_date <= coalesce(rules.effective_to, date '9999-12-31')
