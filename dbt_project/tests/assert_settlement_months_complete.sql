-- R7: fct_settlement_monthly has a row for every month of every budget year up to the as-of
-- month. Returns the budgets whose month count differs.
with expected as (

    select
        hospital_code,
        insurance_type_code as insurance_type,
        budget_year,
        least(
            12,
            (extract(year from {{ as_of_date() }})::int - budget_year) * 12
                + extract(month from {{ as_of_date() }})::int
        ) as expected_months
    from {{ ref('stg_fund_budgets') }}
    where budget_year <= extract(year from {{ as_of_date() }})::int

),

actual as (

    select hospital_code, insurance_type, budget_year, count(*) as actual_months
    from {{ ref('fct_settlement_monthly') }}
    group by 1, 2, 3

)

select expected.*, coalesce(actual.actual_months, 0) as actual_months
from expected
left join actual
    on expected.hospital_code = actual.hospital_code
   and expected.insurance_type = actual.insurance_type
   and expected.budget_year = actual.budget_year
where coalesce(actual.actual_months, 0) <> expected.expected_months
