-- 高值耗材使用(收费)明细: latest version of each usage line delivered through the as-of date.
-- Latest = greatest (business_date, load_id, source_row) per (hospital_code, usage_id).
with latest as (

    {{ latest_version(source('raw', 'usage'), 'usage_id') }}

),

renamed as (

    select
        -- ids
        hospital_code,
        usage_id,
        visit_id,
        surgery_id,
        patient_key,
        -- codes
        dept_code,
        doctor_code,
        consumable_code,
        udi_di,
        batch_no,
        -- patient attributes (pseudonymised at load)
        patient_sex,
        patient_birth_year,
        -- quantities and amounts
        quantity::numeric(18, 4) as quantity,
        charge_unit_price::numeric(18, 4) as charge_unit_price,
        charge_amount::numeric(18, 2) as charge_amount,
        -- timestamps
        used_at,
        -- lineage
        business_date,
        load_id,
        source_row,
        source_file,
        loaded_at,
        extra as extra_columns

    from latest

)

select * from renamed
