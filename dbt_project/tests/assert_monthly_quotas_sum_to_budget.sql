-- R7 invariant: the twelve monthly quotas of a budget sum to the annual budget exactly.
select
    hospital_code,
    insurance_type_code,
    budget_year,
    count(*) as month_count,
    sum(monthly_quota_amount) as quota_total,
    max(annual_budget_amount) as annual_budget_amount
from {{ ref('int_monthly_quotas') }}
group by 1, 2, 3
having count(*) <> 12
    or sum(monthly_quota_amount) <> max(annual_budget_amount)
