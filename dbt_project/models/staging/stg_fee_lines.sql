-- 费用明细: latest version of each fee line delivered through the as-of date.
-- Latest = greatest (business_date, load_id, source_row) per (hospital_code, fee_line_id).
-- The charge date is the date of charged_at (Asia/Shanghai local time, as delivered).
with latest as (

    {{ latest_version(source('raw', 'fee_detail'), 'fee_line_id') }}

),

renamed as (

    select
        -- ids
        hospital_code,
        fee_line_id,
        visit_id,
        patient_key,
        -- codes
        item_type,
        item_code,
        dept_code,
        doctor_code,
        exam_result,
        -- descriptions
        item_name,
        -- patient attributes (pseudonymised at load; age in completed days on the charge date)
        patient_sex,
        patient_age_days,
        -- quantities and amounts
        quantity::numeric(18, 4) as quantity,
        unit_price::numeric(18, 4) as unit_price,
        amount::numeric(18, 2) as amount,
        -- dates and timestamps
        charged_at,
        charged_at::date as charge_date,
        -- lineage
        business_date,
        load_id,
        source_row,
        source_file,
        loaded_at

    from latest

)

select * from renamed
