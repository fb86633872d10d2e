-- R6/R7 invariant: the deductions listed per settlement add up to each month's deduction_amount.
with by_settlement as (

    select hospital_code, insurance_type, settlement_month, sum(deduction_amount) as deduction_amount
    from {{ ref('fct_settlement_deduction') }}
    group by 1, 2, 3

)

select
    monthly.hospital_code,
    monthly.insurance_type,
    monthly.settlement_month,
    monthly.deduction_amount as monthly_deduction_amount,
    coalesce(by_settlement.deduction_amount, 0) as listed_deduction_amount
from {{ ref('fct_settlement_monthly') }} as monthly
left join by_settlement
    on monthly.hospital_code = by_settlement.hospital_code
   and monthly.insurance_type = by_settlement.insurance_type
   and monthly.settlement_month = by_settlement.settlement_month
where monthly.deduction_amount <> coalesce(by_settlement.deduction_amount, 0)
