-- 医保结算记录: latest version of each settlement delivered through the as-of date.
-- Latest = greatest (business_date, load_id, source_row) per (hospital_code, settlement_id).
-- The columns are macro stg_claims_renamed (macros/staging.sql), which int_claims_with_deductions'
-- pre-hook also applies to the night's rows (macro stg_claims_since).
with latest as (

    {{ latest_version(source('raw', 'claim'), 'settlement_id') }}

),

renamed as (

    {{ stg_claims_renamed('latest') }}

)

select * from renamed
