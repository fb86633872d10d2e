-- 医保结算记录: latest version of each settlement delivered through the as-of date.
-- Latest = greatest (business_date, load_id, source_row) per (hospital_code, settlement_id).
with latest as (

    {{ latest_version(source('raw', 'claim'), 'settlement_id') }}

),

renamed as (

    select
        -- ids
        hospital_code,
        settlement_id,
        visit_id,
        patient_key,
        nullif(trim(reversal_of), '') as reversal_of,
        -- codes
        insurance_type as insurance_type_code,
        medical_category as medical_category_code,
        principal_diagnosis as principal_diagnosis_code,
        drg_code,
        -- patient attributes (pseudonymised at load)
        patient_sex,
        patient_birth_year,
        -- amounts
        total_amount::numeric(18, 2) as total_amount,
        fund_paid::numeric(18, 2) as fund_paid_amount,
        other_fund_paid::numeric(18, 2) as other_fund_paid_amount,
        account_paid::numeric(18, 2) as account_paid_amount,
        cash_paid::numeric(18, 2) as cash_paid_amount,
        negotiated_drug_amount::numeric(18, 2) as negotiated_drug_amount,
        -- dates and timestamps
        admission_date,
        discharge_date,
        settled_at,
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
