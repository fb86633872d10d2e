-- R10 evaluation indicators (考核指标) per hospital and quarter of settlement date, over
-- settlements that are neither reversals nor reversed. avg_inpatient_cost = average
-- total_amount of inpatient settlements (categories 21-24, 28, 52), 0.01 half-up; its growth on
-- the same quarter of the previous year from the two rounded averages (null without one);
-- visits_per_patient (人次人头比) = settlements / distinct patients; personal_burden_ratio =
-- sum(account_paid + cash_paid) / sum(total_amount). One row per hospital and quarter with
-- settlements.
with settlements as (

    select
        claims.hospital_code,
        date_trunc('quarter', claims.settlement_date)::date as quarter_start,
        claims.patient_key,
        claims.total_amount,
        coalesce(claims.account_paid_amount, 0) + coalesce(claims.cash_paid_amount, 0)
            as personal_paid_amount,
        coalesce(categories.is_inpatient, false) as is_inpatient
    from {{ ref('int_claims_with_deductions') }} as claims
    left join {{ ref('code_medical_categories') }} as categories
        on claims.medical_category_code = categories.medical_category_code
    where not claims.is_reversal
      and not claims.is_reversed
      and claims.settlement_date is not null

),

quarters as (

    select
        hospital_code,
        quarter_start,
        count(*) as settlement_count,
        count(distinct patient_key) as patient_count,
        count(*) filter (where is_inpatient) as inpatient_settlement_count,
        round(avg(total_amount) filter (where is_inpatient), 2) as avg_inpatient_cost_amount,
        sum(personal_paid_amount) as personal_paid_amount,
        sum(total_amount) as total_amount
    from settlements
    group by 1, 2

)

select
    -- ids
    current_quarter.hospital_code,
    current_quarter.quarter_start,
    -- amounts
    current_quarter.avg_inpatient_cost_amount::numeric(18, 2) as avg_inpatient_cost_amount,
    previous_year.avg_inpatient_cost_amount::numeric(18, 2) as prev_year_avg_inpatient_cost_amount,
    current_quarter.total_amount::numeric(18, 2) as total_amount,
    current_quarter.personal_paid_amount::numeric(18, 2) as personal_paid_amount,
    -- rates
    case
        when previous_year.avg_inpatient_cost_amount <> 0
            then round(
                (current_quarter.avg_inpatient_cost_amount - previous_year.avg_inpatient_cost_amount)
                / previous_year.avg_inpatient_cost_amount,
                4
            )
    end::numeric(9, 4) as avg_inpatient_cost_growth,
    case
        when current_quarter.patient_count > 0
            then round(current_quarter.settlement_count::numeric / current_quarter.patient_count, 4)
    end::numeric(9, 4) as visits_per_patient,
    case
        when current_quarter.total_amount <> 0
            then round(current_quarter.personal_paid_amount / current_quarter.total_amount, 4)
    end::numeric(9, 4) as personal_burden_ratio,
    -- counts
    current_quarter.settlement_count::integer as settlement_count,
    current_quarter.patient_count::integer as patient_count,
    current_quarter.inpatient_settlement_count::integer as inpatient_settlement_count
from quarters as current_quarter
left join quarters as previous_year
    on current_quarter.hospital_code = previous_year.hospital_code
   and current_quarter.quarter_start - interval '1 year' = previous_year.quarter_start
