-- Smart audit, common ground (R11-R21): every audited fee line paired with every rule it matches.
-- Audited lines: the latest versions with item_type <> '31' (consumables are audited from usage by
-- R1, R3, R9). A line matches a rule when its item_code starts with item_prefix and its charge
-- date lies in [effective_from, effective_to] (an empty bound is open).
--
-- The library (15k rules) against tens of millions of lines is an equi-join, never a LIKE nested
-- loop: the few distinct prefix lengths L present in the library are crossed with the lines and
-- (left(item_code, L), L) is hashed against (item_prefix, length(item_prefix)).
-- Readmission (R22) rules have no item_prefix and are read by int_audit_readmission.

with

lines as (

    select *
    from {{ ref('stg_fee_lines') }}
    where item_type is distinct from '31'
      and item_code is not null

),

rules as (

    select *
    from {{ ref('stg_audit_rules') }}
    where item_prefix is not null
      and rule_type <> 'readmission'

),

prefix_lengths as (

    select distinct length(item_prefix) as prefix_length
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
    rules.effective_to
from lines
cross join prefix_lengths
inner join rules
    on rules.item_prefix = left(lines.item_code, prefix_lengths.prefix_length)
   and length(rules.item_prefix) = prefix_lengths.prefix_length
where lines.charge_date >= coalesce(rules.effective_from, date '0001-01-01')
  and lines.charge_date <= coalesce(rules.effective_to, date '9999-12-31')
