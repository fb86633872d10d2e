-- 医保基金总额预算指标: the rows of the latest load of reference/fund_budgets.csv (reference files are whole snapshots).
with source as (

    select *
    from {{ source('raw', 'ref_fund_budgets') }}

),

latest_load as (

    select max(load_id) as load_id
    from source

),

renamed as (

    select
        -- ids
        year as budget_year,
        hospital_code,
        -- codes
        insurance_type as insurance_type_code,
        -- amounts
        annual_budget::numeric(18, 2) as annual_budget_amount,
        -- monthly weights (all twelve or none)
        m01_weight, m02_weight, m03_weight, m04_weight, m05_weight, m06_weight,
        m07_weight, m08_weight, m09_weight, m10_weight, m11_weight, m12_weight,
        -- lineage
        source.load_id,
        source.source_row,
        source.loaded_at

    from source
    inner join latest_load
        on source.load_id = latest_load.load_id

)

select * from renamed
