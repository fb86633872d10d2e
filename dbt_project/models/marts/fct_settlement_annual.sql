-- R7 year-end settlement (年终清算) per hospital, insurance type and budget year that has ended
-- by the as-of date. R_y = sum of the monthly reasonable amounts. R_y <= B: entitlement =
-- R_y + (B - R_y) x surplus_retention_rate (结余留用); else B + (R_y - B) x
-- overspend_share_rate (超支分担; 超支不补 when 0). Rates default to 1.0 and 0.0 when the year
-- has no settlement_params row. year_end_payment = entitlement - sum of monthly paid amounts.
with months as (

    select *
    from {{ ref('fct_settlement_monthly') }}
    where make_date(budget_year, 12, 31) <= {{ as_of_date() }}

),

years as (

    select
        hospital_code,
        insurance_type,
        budget_year,
        max(annual_budget_amount) as annual_budget_amount,
        sum(declared_amount) as declared_amount,
        sum(deduction_amount) as deduction_amount,
        sum(reasonable_amount) as reasonable_amount,
        sum(paid_amount) as monthly_paid_amount,
        sum(deferred_amount) as deferred_amount,
        sum(negotiated_drug_amount) as negotiated_drug_amount,
        count(*) as month_count
    from months
    group by 1, 2, 3

),

parameters as (

    select
        years.*,
        coalesce(params.surplus_retention_rate, 1.0) as surplus_retention_rate,
        coalesce(params.overspend_share_rate, 0.0) as overspend_share_rate
    from years
    left join {{ ref('stg_settlement_params') }} as params
        on years.budget_year = params.settlement_year

),

entitled as (

    select
        *,
        round(
            case
                when reasonable_amount <= annual_budget_amount
                    then reasonable_amount
                        + (annual_budget_amount - reasonable_amount) * surplus_retention_rate
                else annual_budget_amount
                    + (reasonable_amount - annual_budget_amount) * overspend_share_rate
            end,
            2
        ) as entitlement_amount
    from parameters

)

select
    -- ids
    hospital_code,
    insurance_type,
    budget_year as settlement_year,
    -- amounts
    annual_budget_amount::numeric(18, 2) as annual_budget_amount,
    declared_amount::numeric(18, 2) as declared_amount,
    deduction_amount::numeric(18, 2) as deduction_amount,
    reasonable_amount::numeric(18, 2) as reasonable_amount,
    monthly_paid_amount::numeric(18, 2) as monthly_paid_amount,
    deferred_amount::numeric(18, 2) as deferred_amount,
    entitlement_amount::numeric(18, 2) as entitlement_amount,
    (entitlement_amount - monthly_paid_amount)::numeric(18, 2) as year_end_payment_amount,
    negotiated_drug_amount::numeric(18, 2) as negotiated_drug_amount,
    -- parameters
    (reasonable_amount <= annual_budget_amount) as is_within_budget,
    surplus_retention_rate::numeric(12, 8) as surplus_retention_rate,
    overspend_share_rate::numeric(12, 8) as overspend_share_rate,
    month_count::integer as month_count
from entitled
