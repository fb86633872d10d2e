-- Smart audit R14 限住院使用 (inpatient_only) and R19 限适应症 (indication): decisions on the visit's
-- effective settlement (R6's, from int_claims_with_deductions).
-- R14: the effective settlement is outpatient (11, 12, 13, 14, 16, 41, 51).
-- R19: its principal_diagnosis starts with none of diagnosis_prefixes.
-- A visit without an effective settlement yet gives no finding until its claim arrives.
-- Flagged: the whole line. The same decision (macro audit_settlement_condition) feeds the R6 base
-- in int_claims_with_deductions through int_audit_deductible_lines.

with

matches as (

    select *
    from {{ ref('int_audit_rule_matches') }}
    where rule_type in ('inpatient_only', 'indication')
      and visit_id is not null

),

effective_settlements as (

    select hospital_code, visit_id, medical_category_code, principal_diagnosis_code
    from {{ ref('int_claims_with_deductions') }}
    where is_effective_settlement

)

select
    {{ audit_fee_line_finding_columns('matches') }}
from matches
inner join effective_settlements
    on matches.hospital_code = effective_settlements.hospital_code
   and matches.visit_id = effective_settlements.visit_id
where {{ audit_settlement_condition(
    'matches.rule_type', 'matches.diagnosis_prefixes',
    'effective_settlements.medical_category_code', 'effective_settlements.principal_diagnosis_code') }}
