-- 隔离行: row-level rejects of the loader (never holds an ID number).
with source as (

    select *
    from {{ source('raw', 'quarantine') }}

),

renamed as (

    select
        -- ids
        load_id,
        hospital_code,
        natural_key,
        source_row,
        -- codes
        file_kind,
        reason_code,
        column_name,
        -- descriptions
        source_file,
        raw_value,
        reason_detail,
        row_data,
        -- dates and timestamps
        business_date,
        quarantined_at

    from source

)

select * from renamed
