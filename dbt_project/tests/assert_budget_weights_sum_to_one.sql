-- fund_budgets: monthly weights are all twelve or none, and sum to 1 (December absorbs any
-- difference in the quota, so this is a warning about the reference file, not a blocker).
{{ config(severity='warn') }}

select
    hospital_code,
    insurance_type_code,
    budget_year,
    num_nonnulls(
        m01_weight, m02_weight, m03_weight, m04_weight, m05_weight, m06_weight,
        m07_weight, m08_weight, m09_weight, m10_weight, m11_weight, m12_weight
    ) as weights_given,
    coalesce(m01_weight, 0) + coalesce(m02_weight, 0) + coalesce(m03_weight, 0)
        + coalesce(m04_weight, 0) + coalesce(m05_weight, 0) + coalesce(m06_weight, 0)
        + coalesce(m07_weight, 0) + coalesce(m08_weight, 0) + coalesce(m09_weight, 0)
        + coalesce(m10_weight, 0) + coalesce(m11_weight, 0) + coalesce(m12_weight, 0) as weight_sum
from {{ ref('stg_fund_budgets') }}
where num_nonnulls(
        m01_weight, m02_weight, m03_weight, m04_weight, m05_weight, m06_weight,
        m07_weight, m08_weight, m09_weight, m10_weight, m11_weight, m12_weight
    ) not in (0, 12)
   or (
        num_nonnulls(
            m01_weight, m02_weight, m03_weight, m04_weight, m05_weight, m06_weight,
            m07_weight, m08_weight, m09_weight, m10_weight, m11_weight, m12_weight
        ) = 12
        and abs(
            m01_weight + m02_weight + m03_weight + m04_weight + m05_weight + m06_weight
            + m07_weight + m08_weight + m09_weight + m10_weight + m11_weight + m12_weight - 1
        ) > 0.000001
   )
