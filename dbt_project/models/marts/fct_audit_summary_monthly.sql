-- Smart audit summary: hospital x month of charge date x rule_type x severity, the number of
-- findings and their flagged amount (net: a refund's finding is negative).

select
    -- ids
    hospital_code,
    -- dates
    month_start,
    -- codes
    rule_type,
    severity,
    -- counts and amounts
    count(*) as finding_count,
    sum(flagged_amount)::numeric(18, 2) as flagged_amount
from {{ ref('fct_audit_findings') }}
group by hospital_code, month_start, rule_type, severity
