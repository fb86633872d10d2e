-- R8: fct_budget_consumption has a row for every day of every budget year up to the as-of date.
with expected as (

    select
        hospital_code,
        insurance_type_code as insurance_type,
        budget_year,
        least(make_date(budget_year, 12, 31), {{ as_of_date() }}) - make_date(budget_year, 1, 1) + 1
            as expected_days
    from {{ ref('stg_fund_budgets') }}
    where make_date(budget_year, 1, 1) <= {{ as_of_date() }}

),

actual as (

    select hospital_code, insurance_type, budget_year, count(*) as actual_days
    from {{ ref('fct_budget_consumption') }}
    group by 1, 2, 3

)

select expected.*, coalesce(actual.actual_days, 0) as actual_days
from expected
full join actual
    on expected.hospital_code = actual.hospital_code
   and expected.insurance_type = actual.insurance_type
   and expected.budget_year = actual.budget_year
where coalesce(actual.actual_days, 0) <> coalesce(expected.expected_days, 0)
