-- 费用明细: latest version of each fee line delivered through the as-of date.
-- Latest = greatest (business_date, load_id, source_row) per (hospital_code, fee_line_id).
-- The charge date is the date of charged_at (Asia/Shanghai local time, as delivered).
-- The columns are macro stg_fee_lines_renamed (macros/staging.sql), which int_audit_rule_matches'
-- pre-hook also applies to the night's rows (macro stg_fee_lines_since).
with latest as (

    {{ latest_version(source('raw', 'fee_detail'), 'fee_line_id') }}

),

renamed as (

    {{ stg_fee_lines_renamed('latest') }}

)

select * from renamed
