-- R6 deductions by settlement: one row per effective settlement whose visit carries unreasonable
-- excess, with the excess, the fund share and the deduction that R7 counts in its month.
select
    -- ids
    hospital_code,
    settlement_id,
    visit_id,
    insurance_type_code as insurance_type,
    -- dates
    settled_at,
    date_trunc('month', settlement_date)::date as settlement_month,
    -- amounts
    total_amount,
    fund_paid_amount,
    visit_excess_amount as unreasonable_excess_amount,
    deduction_amount
from {{ ref('int_claims_with_deductions') }}
where is_effective_settlement
  and visit_excess_amount <> 0
