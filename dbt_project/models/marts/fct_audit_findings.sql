-- Smart audit findings (R11-R20, R22): one row per rule x subject (a fee line, or a settlement for
-- R22), with the flagged quantity and amount (docs/marts.md). Severity comes from the rule row:
-- violation findings are deducted through R6 (int_claims_with_deductions), suspicious ones are
-- listed for review and never deducted. R21 is an indicator (fct_exam_positive_rate_monthly).

{%- set finding_models = [
    'int_audit_line_rules', 'int_audit_claim_rules', 'int_audit_daily_quantity',
    'int_audit_min_interval', 'int_audit_course_days', 'int_audit_included_in',
    'int_audit_repeat_exam', 'int_audit_readmission',
] %}

with findings as (

    {% for model in finding_models %}
    select
        rule_id, rule_type, severity, hospital_code, subject_type, subject_id, visit_id,
        patient_key, charge_date, item_code, item_name, line_quantity, line_amount,
        flagged_quantity, flagged_amount, is_cross_hospital
    from {{ ref(model) }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select
    -- ids
    rule_id,
    hospital_code,
    subject_type,
    subject_id,
    visit_id,
    patient_key,
    -- codes
    rule_type,
    severity,
    item_code,
    -- descriptions
    item_name,
    -- dates
    charge_date,
    date_trunc('month', charge_date)::date as month_start,
    -- quantities and amounts
    line_quantity::numeric(18, 4) as line_quantity,
    line_amount::numeric(18, 2) as line_amount,
    flagged_quantity::numeric(18, 4) as flagged_quantity,
    flagged_amount::numeric(18, 2) as flagged_amount,
    -- flags
    is_cross_hospital
from findings
