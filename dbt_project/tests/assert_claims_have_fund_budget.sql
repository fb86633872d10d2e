-- R7: a month with claims but no budget row is an error, never a silent zero. Returns one row
-- per hospital, insurance type and month that has settlements (through the as-of date) but no
-- fund_budgets row for its year.
{{ config(severity='error') }}

select
    daily.hospital_code,
    daily.insurance_type_code,
    date_trunc('month', daily.settlement_date)::date as settlement_month,
    sum(daily.settlement_count) as settlement_count,
    sum(daily.declared_amount) as declared_amount
from {{ ref('int_settlement_daily_totals') }} as daily
left join {{ ref('stg_fund_budgets') }} as budgets
    on daily.hospital_code = budgets.hospital_code
   and daily.insurance_type_code = budgets.insurance_type_code
   and extract(year from daily.settlement_date)::int = budgets.budget_year
where daily.settlement_count > 0
  and daily.settlement_date <= {{ as_of_date() }}
  and budgets.budget_year is null
group by 1, 2, 3
