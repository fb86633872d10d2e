-- R7 monthly settlement against the total budget (总额预算月度结算).
-- One row per hospital, insurance type and month of every budget year, up to the as-of month
-- (months without claims included with zeros). declared D_m = sum of (fund_paid -
-- negotiated_drug_amount) of settlements settled in the month (reversals in the month they are
-- settled); reasonable R_m = D_m - deductions of the month; paid P_m = min(R_m, Q_m) (negative
-- = claw-back); deferred E_m = max(0, R_m - Q_m) (暂缓拨付). Quarter ends (季度评估) read the
-- year-to-date columns: cumulative R, Q, P, E and utilisation sum(R) / sum(Q).
-- A month with claims but no budget row fails the test assert_claims_have_fund_budget.
with months as (

    select *
    from {{ ref('int_monthly_quotas') }}
    where settlement_month <= date_trunc('month', {{ as_of_date() }})::date

),

monthly_claims as (

    select
        hospital_code,
        insurance_type_code,
        date_trunc('month', settlement_date)::date as settlement_month,
        sum(settlement_count) as settlement_count,
        sum(declared_amount) as declared_amount,
        sum(deduction_amount) as deduction_amount,
        sum(negotiated_drug_amount) as negotiated_drug_amount
    from {{ ref('int_settlement_daily_totals') }}
    group by 1, 2, 3

),

settled as (

    select
        months.hospital_code,
        months.insurance_type_code,
        months.budget_year,
        months.month_no,
        months.settlement_month,
        months.annual_budget_amount,
        months.monthly_quota_amount,
        coalesce(monthly_claims.settlement_count, 0) as settlement_count,
        coalesce(monthly_claims.declared_amount, 0) as declared_amount,
        coalesce(monthly_claims.deduction_amount, 0) as deduction_amount,
        coalesce(monthly_claims.declared_amount, 0)
            - coalesce(monthly_claims.deduction_amount, 0) as reasonable_amount,
        coalesce(monthly_claims.negotiated_drug_amount, 0) as negotiated_drug_amount
    from months
    left join monthly_claims
        on months.hospital_code = monthly_claims.hospital_code
       and months.insurance_type_code = monthly_claims.insurance_type_code
       and months.settlement_month = monthly_claims.settlement_month

),

paid as (

    select
        *,
        least(reasonable_amount, monthly_quota_amount) as paid_amount,
        greatest(reasonable_amount - monthly_quota_amount, 0) as deferred_amount
    from settled

),

year_to_date as (

    select
        *,
        sum(reasonable_amount) over ytd as ytd_reasonable_amount,
        sum(monthly_quota_amount) over ytd as ytd_quota_amount,
        sum(paid_amount) over ytd as ytd_paid_amount,
        sum(deferred_amount) over ytd as ytd_deferred_amount
    from paid
    window ytd as (
        partition by hospital_code, insurance_type_code, budget_year
        order by month_no
        rows between unbounded preceding and current row
    )

)

select
    -- ids
    year_to_date.hospital_code,
    year_to_date.insurance_type_code as insurance_type,
    insurance_types.insurance_type_name,
    year_to_date.settlement_month,
    year_to_date.budget_year,
    year_to_date.month_no,
    -- amounts
    year_to_date.annual_budget_amount::numeric(18, 2) as annual_budget_amount,
    year_to_date.monthly_quota_amount::numeric(18, 2) as monthly_quota_amount,
    year_to_date.declared_amount::numeric(18, 2) as declared_amount,
    year_to_date.deduction_amount::numeric(18, 2) as deduction_amount,
    year_to_date.reasonable_amount::numeric(18, 2) as reasonable_amount,
    year_to_date.paid_amount::numeric(18, 2) as paid_amount,
    year_to_date.deferred_amount::numeric(18, 2) as deferred_amount,
    year_to_date.negotiated_drug_amount::numeric(18, 2) as negotiated_drug_amount,
    year_to_date.settlement_count::integer as settlement_count,
    -- quarter-end assessment (季度评估): year-to-date figures, read at months 3, 6, 9 and 12
    (year_to_date.month_no % 3 = 0) as is_quarter_end,
    year_to_date.ytd_reasonable_amount::numeric(18, 2) as ytd_reasonable_amount,
    year_to_date.ytd_quota_amount::numeric(18, 2) as ytd_quota_amount,
    year_to_date.ytd_paid_amount::numeric(18, 2) as ytd_paid_amount,
    year_to_date.ytd_deferred_amount::numeric(18, 2) as ytd_deferred_amount,
    case
        when year_to_date.ytd_quota_amount <> 0
            then round(year_to_date.ytd_reasonable_amount / year_to_date.ytd_quota_amount, 4)
    end::numeric(9, 4) as ytd_utilisation_rate
from year_to_date
left join {{ ref('code_insurance_types') }} as insurance_types
    on year_to_date.insurance_type_code = insurance_types.insurance_type_code
