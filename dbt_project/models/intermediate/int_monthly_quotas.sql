-- R7 monthly quotas (月预分额度) per hospital, insurance type, budget year and month:
-- Q_m = round(B x w_m, 2) with w_m = 1/12 unless all twelve weights are given; December takes
-- the rounding remainder so that the twelve quotas sum to the annual budget exactly.
with budgets as (

    select *
    from {{ ref('stg_fund_budgets') }}

),

monthly as (

    select
        budgets.hospital_code,
        budgets.insurance_type_code,
        budgets.budget_year,
        budgets.annual_budget_amount,
        months.month_no,
        num_nonnulls(
            budgets.m01_weight, budgets.m02_weight, budgets.m03_weight, budgets.m04_weight,
            budgets.m05_weight, budgets.m06_weight, budgets.m07_weight, budgets.m08_weight,
            budgets.m09_weight, budgets.m10_weight, budgets.m11_weight, budgets.m12_weight
        ) = 12 as has_weights,
        (array[
            budgets.m01_weight, budgets.m02_weight, budgets.m03_weight, budgets.m04_weight,
            budgets.m05_weight, budgets.m06_weight, budgets.m07_weight, budgets.m08_weight,
            budgets.m09_weight, budgets.m10_weight, budgets.m11_weight, budgets.m12_weight
        ])[months.month_no] as given_weight
    from budgets
    cross join generate_series(1, 12) as months (month_no)

),

rounded as (

    select
        *,
        case
            when has_weights then round(annual_budget_amount * given_weight, 2)
            else round(annual_budget_amount / 12, 2)
        end as rounded_quota_amount
    from monthly

)

select
    -- ids
    hospital_code,
    insurance_type_code,
    budget_year,
    month_no,
    make_date(budget_year, month_no, 1) as settlement_month,
    -- amounts and weights
    annual_budget_amount,
    case when has_weights then given_weight else 1.0 / 12 end::numeric(12, 8) as month_weight,
    has_weights,
    case
        when month_no = 12 then annual_budget_amount
            - sum(rounded_quota_amount) filter (where month_no < 12) over (
                partition by hospital_code, insurance_type_code, budget_year
            )
        else rounded_quota_amount
    end::numeric(18, 2) as monthly_quota_amount
from rounded
